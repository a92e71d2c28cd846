import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from experiments.stats.frequentist import (
    lift,
    mean_estimate,
    proportion_estimate,
    ratio_estimate,
    two_proportion_z_test,
    welch_t_test,
    winsorized,
)
from experiments.stats.summaries import MeanEstimate, SampleSums
from tests.experiments.stats.data import ratio_sums_of, shop_revenue, sums_of


def test_mean_estimate_is_the_mean_and_the_variance_of_the_mean():
    # given
    values = np.random.default_rng(1).lognormal(3.0, 1.0, 500)

    # when
    estimate = mean_estimate(sums_of(values))

    # then
    assert estimate.n == 500
    assert estimate.value == pytest.approx(values.mean(), rel=1e-12)
    assert estimate.variance_of_value == pytest.approx(values.var(ddof=1) / 500, rel=1e-9)


@pytest.mark.parametrize("n", [0, 1])
def test_a_mean_of_fewer_than_two_units_has_infinite_variance(n):
    # when
    estimate = mean_estimate(SampleSums(n=n, y_sum=5.0 * n, y_sum_squares=25.0 * n))

    # then
    assert estimate.variance_of_value == math.inf


def test_proportion_estimate_is_p_and_p_q_over_n():
    # when
    estimate = proportion_estimate(30, 200)

    # then
    assert estimate.value == pytest.approx(0.15)
    assert estimate.variance_of_value == pytest.approx(0.15 * 0.85 / 200)


def test_ratio_estimate_is_the_ratio_of_sums_with_the_delta_method_variance_of_the_linearised_units():
    # given: revenue and orders per buyer (AOV = Σ revenue / Σ orders)
    rng = np.random.default_rng(2)
    orders = rng.poisson(1.5, 800) + 1
    revenue = orders * rng.lognormal(np.log(50), 0.6, 800)

    # when
    estimate = ratio_estimate(ratio_sums_of(revenue, orders))

    # then: Deng et al. 2018 — Var(R) = Var(x − R·y) / (n · ȳ²), computed here from the units themselves
    ratio = revenue.sum() / orders.sum()
    linearised = revenue - ratio * orders
    assert estimate.value == pytest.approx(ratio, rel=1e-12)
    assert estimate.variance_of_value == pytest.approx(linearised.var(ddof=1) / (800 * orders.mean() ** 2), rel=1e-8)


def test_the_delta_method_variance_of_a_ratio_matches_its_spread_over_repeated_samples():
    # given: 2,000 independent samples of 400 buyers
    rng = np.random.default_rng(3)
    orders = rng.poisson(1.2, (2000, 400)) + 1
    revenue = orders * rng.lognormal(np.log(50), 0.8, (2000, 400))

    # when
    estimates = [ratio_estimate(ratio_sums_of(revenue[i], orders[i])) for i in range(2000)]

    # then: the predicted variance equals the observed variance of the ratio within Monte-Carlo error (~3%)
    observed = np.var([estimate.value for estimate in estimates], ddof=1)
    predicted = np.mean([estimate.variance_of_value for estimate in estimates])
    assert predicted == pytest.approx(observed, rel=0.08)


@pytest.mark.parametrize(
    ("n_control", "n_treatment", "conversion"), [(300, 300, 0.2), (1000, 1500, 0.1), (40, 90, 0.5)]
)
def test_welch_t_test_equals_scipy_and_statsmodels(n_control, n_treatment, conversion):
    # given
    rng = np.random.default_rng(n_control)
    control = shop_revenue(rng, n=n_control, conversion=conversion)
    treatment = shop_revenue(rng, n=n_treatment, conversion=conversion) * 1.2

    # when
    result = welch_t_test(sums_of(control), sums_of(treatment), confidence=0.9)

    # then
    reference = stats.ttest_ind(treatment, control, equal_var=False)
    reference_interval = reference.confidence_interval(0.9)
    compare = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.absolute == pytest.approx(treatment.mean() - control.mean(), rel=1e-12)
    assert result.absolute_interval.low == pytest.approx(reference_interval.low, rel=1e-9)
    assert result.absolute_interval.high == pytest.approx(reference_interval.high, rel=1e-9)
    assert result.degrees_of_freedom == pytest.approx(reference.df, rel=1e-9)
    assert (result.absolute_interval.low, result.absolute_interval.high) == pytest.approx(
        compare.tconfint_diff(alpha=0.1, usevar="unequal"), rel=1e-9
    )
    assert result.relative == pytest.approx(treatment.mean() / control.mean() - 1, rel=1e-12)
    assert result.confidence == 0.9


@pytest.mark.parametrize(
    ("control", "treatment"), [((120, 2400), (150, 2380)), ((5, 90), (14, 110)), ((900, 1000), (870, 1000))]
)
def test_two_proportion_z_test_has_the_pooled_p_value_and_the_unpooled_wald_interval(control, treatment):
    # when
    result = two_proportion_z_test(
        control_successes=control[0], control_n=control[1], treatment_successes=treatment[0], treatment_n=treatment[1]
    )

    # then
    _, p_value = proportions_ztest([treatment[0], control[0]], [treatment[1], control[1]])
    low, high = confint_proportions_2indep(treatment[0], treatment[1], control[0], control[1], method="wald")
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert result.absolute_interval.low == pytest.approx(low, rel=1e-9)
    assert result.absolute_interval.high == pytest.approx(high, rel=1e-9)
    assert result.relative == pytest.approx((treatment[0] / treatment[1]) / (control[0] / control[1]) - 1)


def test_two_proportion_z_test_without_any_conversion_is_not_significant():
    # when
    result = two_proportion_z_test(control_successes=0, control_n=500, treatment_successes=0, treatment_n=400)

    # then
    assert result.p_value == 1.0
    assert result.absolute == 0.0


def test_lift_without_degrees_of_freedom_is_the_z_test_of_statsmodels():
    # given
    rng = np.random.default_rng(7)
    control, treatment = rng.normal(10, 3, 2000), rng.normal(10.3, 4, 2500)

    # when
    result = lift(mean_estimate(sums_of(control)), mean_estimate(sums_of(treatment)))

    # then
    compare = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    _, p_value = compare.ztest_ind(usevar="unequal")
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert (result.absolute_interval.low, result.absolute_interval.high) == pytest.approx(
        compare.zconfint_diff(usevar="unequal"), rel=1e-9
    )
    assert result.degrees_of_freedom is None


def test_the_relative_interval_is_fieller_s_the_ratios_the_same_test_does_not_reject():
    # given
    control = MeanEstimate(n=1000, value=4.0, variance_of_value=0.09)
    treatment = MeanEstimate(n=1000, value=4.8, variance_of_value=0.12)

    # when
    result = lift(control, treatment)

    # then: at each end ρ = 1 + relative, the z statistic of treatment − ρ·control is exactly 1.96
    for end in (result.relative_interval.low, result.relative_interval.high):
        ratio = 1 + end
        statistic = (treatment.value - ratio * control.value) / math.sqrt(
            treatment.variance_of_value + ratio**2 * control.variance_of_value
        )
        assert abs(statistic) == pytest.approx(stats.norm.ppf(0.975), rel=1e-9)
    assert result.relative_interval.contains(result.relative)


@pytest.mark.parametrize("relative_standard_error", [0.03, 0.015, 0.0075])
def test_the_relative_interval_approaches_the_delta_method_interval_as_units_grow(relative_standard_error):
    # given: each arm's mean known to ±relative_standard_error (quartering the variance = 4× the units)
    control = MeanEstimate(n=10_000, value=10.0, variance_of_value=(10.0 * relative_standard_error) ** 2)
    treatment = MeanEstimate(n=10_000, value=10.5, variance_of_value=(10.5 * relative_standard_error) ** 2)

    # when
    result = lift(control, treatment)

    # then: GrowthBook's delta-method interval, t/c − 1 ± 1.96·√(v_t/c² + t²·v_c/c⁴), differs by O(1/n),
    # i.e. by about 1.96²·v_c/c²·t/c (the shift of Fieller's centre), while the width shrinks as O(1/√n)
    ratio = treatment.value / control.value
    delta_half_width = stats.norm.ppf(0.975) * math.sqrt(
        treatment.variance_of_value / control.value**2 + ratio**2 * control.variance_of_value / control.value**2
    )
    gap = 1.96**2 * relative_standard_error**2 * ratio
    assert result.relative_interval.low == pytest.approx(ratio - 1 - delta_half_width, abs=1.2 * gap)
    assert result.relative_interval.high == pytest.approx(ratio - 1 + delta_half_width, abs=1.2 * gap)
    assert gap < 0.1 * delta_half_width


def test_the_relative_interval_excludes_zero_exactly_when_the_absolute_one_does():
    # given: many random comparisons around the significance boundary
    rng = np.random.default_rng(5)
    disagreements = 0
    significant = 0
    for _ in range(3000):
        control_value = rng.uniform(1, 10)
        control_variance = (control_value * rng.uniform(0.01, 0.2)) ** 2
        treatment_variance = control_variance * rng.uniform(0.3, 3)
        treatment_value = control_value + rng.normal(0, 2.2) * math.sqrt(control_variance + treatment_variance)

        # when
        result = lift(
            MeanEstimate(n=100, value=control_value, variance_of_value=control_variance),
            MeanEstimate(n=100, value=treatment_value, variance_of_value=treatment_variance),
            degrees_of_freedom=rng.choice([None, 50.0]),
        )

        # then
        significant += result.p_value < 0.05
        disagreements += result.absolute_interval.contains(0) != result.relative_interval.contains(0)
        disagreements += result.absolute_interval.contains(0) != (result.p_value >= 0.05)
    assert disagreements == 0
    assert 0.2 < significant / 3000 < 0.8


def test_the_relative_interval_covers_the_true_relative_lift_95_percent_of_the_time():
    # given: 4,000 experiments with a true +10% lift, 2,000 units per arm
    rng = np.random.default_rng(9)
    control = rng.normal(5.0, 4.0, (4000, 2000))
    treatment = rng.normal(5.5, 4.0, (4000, 2000))

    # when
    covered = 0
    for index in range(4000):
        result = welch_t_test(sums_of(control[index]), sums_of(treatment[index]))
        covered += result.relative_interval.contains(0.10)

    # then: 95% ± 3 standard errors of 4,000 draws
    assert covered / 4000 == pytest.approx(0.95, abs=0.011)


def test_a_comparison_without_variance_information_is_unbounded_and_not_significant():
    # when
    result = lift(
        MeanEstimate(n=1, value=3.0, variance_of_value=math.inf),
        MeanEstimate(n=1, value=9.0, variance_of_value=math.inf),
    )

    # then
    assert result.p_value == 1.0
    assert result.absolute_interval.contains(0)
    assert result.relative_interval.contains(0)


def test_a_zero_control_has_an_unbounded_relative_lift():
    # when
    result = lift(
        MeanEstimate(n=100, value=0.0, variance_of_value=0.0), MeanEstimate(n=100, value=0.1, variance_of_value=0.001)
    )

    # then
    assert result.relative == math.inf
    assert result.relative_interval.low == -math.inf and result.relative_interval.high == math.inf


def test_winsorized_caps_at_the_percentile_of_the_positive_values_only():
    # given: 90 zero-revenue units and 1..10 for the buyers
    values = np.concatenate([np.zeros(90), np.arange(1.0, 11.0)])

    # when
    capped = winsorized(values, 0.9)

    # then: the cap is the 90th percentile of 1..10 (PostgreSQL percentile_cont: 9.1), zeros stay
    assert capped.max() == pytest.approx(9.1)
    assert (capped[:90] == 0).all()
    assert list(capped[90:99]) == list(values[90:99])


def test_winsorized_at_one_leaves_the_values_alone():
    # given
    values = np.array([0.0, 3.0, 1000.0])

    # when
    capped = winsorized(values, 1.0)

    # then
    assert list(capped) == [0.0, 3.0, 1000.0]
