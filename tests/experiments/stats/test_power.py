import math

import pytest
from scipy import optimize
from statsmodels.stats.power import NormalIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import power_proportions_2indep

from experiments.stats.power import (
    minimum_detectable_effect,
    minimum_detectable_effect_for_proportion,
    sample_size_for_proportion,
    sample_size_per_variant,
)


@pytest.mark.parametrize(
    ("mean", "sd", "mde", "alpha", "power"),
    [
        (4.0, 22.0, 0.10, 0.05, 0.8),
        (50.0, 40.0, 0.02, 0.05, 0.9),
        (1.0, 1.0, 0.5, 0.01, 0.8),
        (10.0, 3.0, -0.05, 0.1, 0.7),
    ],
)
def test_sample_size_per_variant_is_statsmodels_normal_power_rounded_up(mean, sd, mde, alpha, power):
    # when
    units = sample_size_per_variant(baseline_mean=mean, baseline_sd=sd, relative_mde=mde, alpha=alpha, power=power)

    # then
    effect = abs(mde) * mean / sd
    reference = NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=1.0)
    assert units == math.ceil(reference)
    assert units == math.ceil(zt_ind_solve_power(effect_size=effect, alpha=alpha, power=power))


def test_sample_size_with_several_treatments_uses_bonferroni_over_the_treatment_arms():
    # when
    units = sample_size_per_variant(baseline_mean=4.0, baseline_sd=22.0, relative_mde=0.1, variants=4)

    # then
    reference = NormalIndPower().solve_power(effect_size=0.4 / 22.0, alpha=0.05 / 3, power=0.8)
    assert units == math.ceil(reference)
    assert units > sample_size_per_variant(baseline_mean=4.0, baseline_sd=22.0, relative_mde=0.1)


@pytest.mark.parametrize(("rate", "mde"), [(0.05, 0.10), (0.3, -0.1), (0.01, 0.5), (0.5, 0.02)])
def test_sample_size_for_proportion_reaches_statsmodels_power_for_the_pooled_z_test(rate, mde):
    # when
    units = sample_size_for_proportion(baseline_rate=rate, relative_mde=mde)

    # then: statsmodels' power (pooled null, unpooled alternative) crosses 80% between units − 1 and units
    difference = rate * mde

    def power_at(n):
        return power_proportions_2indep(difference, rate, n, alpha=0.05, return_results=False)

    assert power_at(units) >= 0.8
    assert power_at(units - 1) < 0.8
    reference = optimize.brentq(lambda n: power_at(n) - 0.8, 2, 1e9)
    assert units == math.ceil(reference)


def test_minimum_detectable_effect_inverts_the_sample_size():
    # given
    units = sample_size_per_variant(baseline_mean=4.0, baseline_sd=22.0, relative_mde=0.1)

    # when
    mde = minimum_detectable_effect(n_per_variant=units, baseline_mean=4.0, baseline_sd=22.0)

    # then: just below 10% (units were rounded up), and statsmodels gives the same power there
    assert 0.0999 < mde <= 0.1
    assert NormalIndPower().power(effect_size=mde * 4.0 / 22.0, nobs1=units, alpha=0.05) == pytest.approx(0.8, rel=1e-9)


def test_minimum_detectable_effect_matches_statsmodels_solve_power():
    # when
    mde = minimum_detectable_effect(n_per_variant=10_000, baseline_mean=4.0, baseline_sd=22.0, power=0.9, variants=3)

    # then
    effect = NormalIndPower().solve_power(nobs1=10_000, alpha=0.025, power=0.9)
    assert mde == pytest.approx(effect * 22.0 / 4.0, rel=1e-3)


def test_minimum_detectable_effect_for_proportion_inverts_its_sample_size():
    # given
    units = sample_size_for_proportion(baseline_rate=0.05, relative_mde=0.10)

    # when
    mde = minimum_detectable_effect_for_proportion(n_per_variant=units, baseline_rate=0.05)

    # then
    assert mde == pytest.approx(0.10, abs=1e-4)


def test_a_sample_too_small_for_any_rise_of_the_rate_has_no_detectable_effect():
    assert minimum_detectable_effect_for_proportion(n_per_variant=3, baseline_rate=0.6) is None


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        (dict(baseline_mean=4.0, baseline_sd=0.0, relative_mde=0.1), "baseline_sd"),
        (dict(baseline_mean=4.0, baseline_sd=2.0, relative_mde=0.0), "relative_mde"),
        (dict(baseline_mean=4.0, baseline_sd=2.0, relative_mde=0.1, alpha=1.5), "alpha"),
        (dict(baseline_mean=4.0, baseline_sd=2.0, relative_mde=0.1, power=1.0), "power"),
        (dict(baseline_mean=4.0, baseline_sd=2.0, relative_mde=0.1, variants=1), "variants"),
        (dict(baseline_mean=4.0, baseline_sd=2.0, relative_mde=1e-9), "relative_mde"),
    ],
)
def test_invalid_plans_name_the_field(arguments, field):
    with pytest.raises(ValueError, match=field):
        sample_size_per_variant(**arguments)


@pytest.mark.parametrize(("rate", "mde"), [(0.0, 0.1), (1.2, 0.1), (0.6, 0.8)])
def test_invalid_rates_name_the_field(rate, mde):
    with pytest.raises(ValueError, match="baseline_rate|relative_mde"):
        sample_size_for_proportion(baseline_rate=rate, relative_mde=mde)
