import math

import numpy as np
import pytest
from scipy import integrate, stats

from experiments.stats.sequential import (
    DEFAULT_TUNING_UNITS_PER_VARIANT,
    always_valid_p_value_running,
    mixture_variance_for,
    sequential_lift,
)
from experiments.stats.summaries import MeanEstimate

CONTROL = MeanEstimate(n=4000, value=10.0, variance_of_value=0.04)
TREATMENT = MeanEstimate(n=4000, value=10.5, variance_of_value=0.05)


def _growthbook(*, difference, variance, total_units, tuning_units, alpha):
    """GrowthBook's gbstats SequentialTwoSidedTTest (halfwidth and p-value, Howard et al. 2021 eq. 155)."""
    rho_squared = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_units
    s2 = variance * total_units
    half_width = (
        math.sqrt(s2)
        * math.sqrt(2 * (total_units * rho_squared + 1) * math.log(math.sqrt(total_units * rho_squared + 1) / alpha))
        / (total_units * math.sqrt(rho_squared))
    )
    st2 = difference**2 * total_units / variance
    tr2p1 = total_units * rho_squared + 1
    evalue = math.exp(rho_squared * st2 / (2 * tr2p1)) / math.sqrt(tr2p1)
    return min(1 / evalue, 1.0), half_width, rho_squared * s2


def test_the_sequential_test_equals_growthbook_s_with_its_default_tuning():
    # when
    result = sequential_lift(CONTROL, TREATMENT, alpha=0.05)

    # then: GrowthBook tunes for 5,000 units in all; revopt's default is 2,500 per variant
    p_value, half_width, mixture_variance = _growthbook(
        difference=0.5, variance=0.09, total_units=8000, tuning_units=2 * DEFAULT_TUNING_UNITS_PER_VARIANT, alpha=0.05
    )
    assert result.mixture_variance == pytest.approx(mixture_variance, rel=1e-12)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert result.absolute_interval.low == pytest.approx(0.5 - half_width, rel=1e-9)
    assert result.absolute_interval.high == pytest.approx(0.5 + half_width, rel=1e-9)


def test_the_p_value_is_one_over_the_mixture_likelihood_ratio_integrated_numerically():
    # given
    tau_squared = 0.3

    # when
    result = sequential_lift(CONTROL, TREATMENT, mixture_variance=tau_squared)

    # then: Λ = ∫ N(Δ̂; θ, V) N(θ; 0, τ²) dθ / N(Δ̂; 0, V) (Johari et al. 2017)
    variance = 0.09
    numerator, _ = integrate.quad(
        lambda theta: (
            stats.norm.pdf(0.5, theta, math.sqrt(variance)) * stats.norm.pdf(theta, 0, math.sqrt(tau_squared))
        ),
        -10,
        10,
        points=[0.5],
    )
    likelihood_ratio = numerator / stats.norm.pdf(0.5, 0, math.sqrt(variance))
    assert result.p_value == pytest.approx(1 / likelihood_ratio, rel=1e-7)
    assert result.mixture_variance == tau_squared


def test_the_confidence_sequence_ends_where_the_likelihood_ratio_reaches_one_over_alpha():
    # given
    tau_squared = 0.3
    alpha = 0.05

    # when
    result = sequential_lift(CONTROL, TREATMENT, alpha=alpha, mixture_variance=tau_squared)

    # then: shifting the estimate by the half-width gives Λ(0) = 1/α exactly
    half_width = result.absolute_interval.high - 0.5
    variance = 0.09
    log_ratio = 0.5 * math.log(variance / (variance + tau_squared)) + tau_squared * half_width**2 / (
        2 * variance * (variance + tau_squared)
    )
    assert math.exp(log_ratio) == pytest.approx(1 / alpha, rel=1e-9)
    assert half_width > stats.norm.ppf(0.975) * math.sqrt(variance)


def test_the_sequential_intervals_exclude_zero_exactly_when_the_p_value_is_below_alpha():
    # given
    rng = np.random.default_rng(2)
    disagreements = 0
    rejected = 0
    for _ in range(2000):
        control_variance = rng.uniform(0.01, 0.1)
        control = MeanEstimate(n=int(rng.integers(100, 50_000)), value=10.0, variance_of_value=control_variance)
        treatment = MeanEstimate(
            n=control.n,
            value=10.0 + rng.normal(0, 3) * math.sqrt(2 * control_variance),
            variance_of_value=control_variance * rng.uniform(0.5, 2),
        )

        # when
        result = sequential_lift(control, treatment)

        # then
        rejected += result.p_value < 0.05
        disagreements += result.absolute_interval.contains(0) == (result.p_value < 0.05)
        disagreements += result.relative_interval.contains(0) != result.absolute_interval.contains(0)
    assert disagreements == 0
    assert 0.2 < rejected / 2000 < 0.8


def test_the_confidence_sequence_covers_the_truth_at_every_look_with_probability_one_minus_alpha():
    # given: 2,000 Gaussian experiments with a true difference of 0.3, looked at 50 times as units arrive
    rng = np.random.default_rng(4)
    experiments, looks, batch = 2000, 50, 40
    control = rng.normal(1.0, 2.0, (experiments, looks, batch)).sum(axis=2).cumsum(axis=1)
    treatment = rng.normal(1.3, 2.0, (experiments, looks, batch)).sum(axis=2).cumsum(axis=1)
    tau_squared = mixture_variance_for(
        control=MeanEstimate(n=1, value=1.0, variance_of_value=4.0),
        treatment=MeanEstimate(n=1, value=1.3, variance_of_value=4.0),
        units_per_variant=looks * batch,
    )

    # when
    missed = 0
    for index in range(experiments):
        for look in range(looks):
            n = (look + 1) * batch
            result = sequential_lift(
                MeanEstimate(n=n, value=control[index, look] / n, variance_of_value=4.0 / n),
                MeanEstimate(n=n, value=treatment[index, look] / n, variance_of_value=4.0 / n),
                mixture_variance=tau_squared,
            )
            if not result.absolute_interval.contains(0.3):
                missed += 1
                break

    # then: Ville's inequality bounds the share ever missed by α (3 standard errors of slack)
    assert missed / experiments <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / experiments)


def test_the_mixture_variance_is_tuned_to_the_planned_units():
    # when
    tuned = sequential_lift(CONTROL, TREATMENT, planned_units_per_variant=40_000)

    # then: τ² = s·V*, V* the variance at 40,000 units per variant, s = −2 log α + log(1 − 2 log α)
    scale = -2 * math.log(0.05) + math.log(1 - 2 * math.log(0.05))
    per_unit = 0.04 * 4000 + 0.05 * 4000
    assert tuned.mixture_variance == pytest.approx(scale * per_unit / 40_000, rel=1e-12)


def test_the_tuned_boundary_is_narrowest_at_the_planned_sample():
    # given: the variance at the plan, and τ² tuned to it
    at_plan = MeanEstimate(n=5000, value=10.0, variance_of_value=0.02)
    tuned = mixture_variance_for(control=at_plan, treatment=at_plan, units_per_variant=5000)

    # when
    widths = {
        factor: sequential_lift(at_plan, at_plan, mixture_variance=tuned * factor).absolute_interval.high
        for factor in (0.5, 1.0, 2.0)
    }

    # then
    assert widths[1.0] < widths[0.5]
    assert widths[1.0] < widths[2.0]


def test_an_arm_without_variance_information_gives_no_evidence():
    # when
    result = sequential_lift(MeanEstimate(n=1, value=5.0, variance_of_value=math.inf), TREATMENT)

    # then
    assert result.p_value == 1.0
    assert result.absolute_interval.contains(0)


@pytest.mark.parametrize(
    ("history", "expected"), [([0.4, 0.03, 0.2], 0.03), ([1.0], 1.0), ([], 1.0), ([0.5, 0.6, 0.7], 0.5)]
)
def test_the_always_valid_p_value_is_the_running_minimum(history, expected):
    # when
    running = always_valid_p_value_running(history)

    # then
    assert running == expected
