import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from experiments.stats.frequentist import two_proportion_z_test, welch_t_test
from experiments.stats.multiple import holm_adjust, holm_adjusted_alphas, holm_adjusted_intervals
from experiments.stats.sequential import sequential_lift
from experiments.stats.summaries import MeanEstimate, SampleSums


@pytest.mark.parametrize("seed", range(5))
def test_holm_adjust_equals_statsmodels(seed):
    # given: random p-values with ties and ones
    rng = np.random.default_rng(seed)
    p_values = list(np.round(rng.beta(0.4, 1.0, 12), 3)) + [1.0, 0.0004, 0.0004]

    # when
    adjusted = holm_adjust(p_values)

    # then
    _, reference, _, _ = multipletests(p_values, method="holm")
    assert adjusted == pytest.approx(list(reference), rel=1e-12)


def test_holm_adjust_of_nothing_is_nothing():
    assert holm_adjust([]) == []


def _random_welch(rng: np.random.Generator):
    n = int(rng.integers(200, 5000))
    mean = rng.uniform(2, 20)
    sd = mean * rng.uniform(0.5, 5)
    shift = rng.normal(0, 3.5) * sd * np.sqrt(2 / n)
    control = SampleSums(n=n, y_sum=n * mean, y_sum_squares=(n - 1) * sd**2 + n * mean**2)
    treated_mean = mean + shift
    treated_sd = sd * rng.uniform(0.7, 1.4)
    treatment = SampleSums(n=n, y_sum=n * treated_mean, y_sum_squares=(n - 1) * treated_sd**2 + n * treated_mean**2)
    return welch_t_test(control, treatment)


def _random_proportions(rng: np.random.Generator):
    n = int(rng.integers(500, 20_000))
    rate = rng.uniform(0.02, 0.3)
    control = int(rng.binomial(n, rate))
    treatment = int(rng.binomial(n, min(rate * rng.uniform(0.8, 1.3), 0.99)))
    return two_proportion_z_test(control_successes=control, control_n=n, treatment_successes=treatment, treatment_n=n)


def test_an_adjusted_interval_excludes_zero_exactly_when_the_adjusted_p_value_is_below_alpha():
    # given: 400 random families of 2–12 comparisons (Welch means and pooled-z proportions mixed)
    rng = np.random.default_rng(11)
    checked = 0
    disagreements = 0
    significant = 0
    for _ in range(400):
        lifts = [
            _random_welch(rng) if rng.random() < 0.5 else _random_proportions(rng)
            for _ in range(int(rng.integers(2, 13)))
        ]
        alpha = float(rng.choice([0.01, 0.05, 0.1]))

        # when
        adjusted = holm_adjusted_intervals(lifts, alpha=alpha)

        # then
        for adjusted_p, lift in adjusted:
            checked += 1
            significant += adjusted_p < alpha
            disagreements += lift.absolute_interval.contains(0) == (adjusted_p < alpha)
            disagreements += lift.relative_interval.contains(0) == (adjusted_p < alpha)
    assert disagreements == 0
    assert 0.15 < significant / checked < 0.85


def test_adjusted_intervals_are_wider_than_the_plain_ones_and_keep_the_raw_p_value():
    # given
    rng = np.random.default_rng(3)
    lifts = [_random_welch(rng) for _ in range(6)]

    # when
    adjusted = holm_adjusted_intervals(lifts, alpha=0.05)

    # then
    for plain, (adjusted_p, wider) in zip(lifts, adjusted, strict=True):
        assert wider.p_value == plain.p_value
        assert adjusted_p >= plain.p_value
        assert wider.absolute_interval.low <= plain.absolute_interval.low
        assert wider.absolute_interval.high >= plain.absolute_interval.high
        assert wider.confidence >= 0.95


def test_a_single_welch_comparison_keeps_its_plain_interval():
    # given
    lift = _random_welch(np.random.default_rng(5))

    # when
    [(adjusted_p, adjusted)] = holm_adjusted_intervals([lift], alpha=0.05)

    # then
    assert adjusted_p == lift.p_value
    assert adjusted.absolute_interval.low == pytest.approx(lift.absolute_interval.low, rel=1e-9)
    assert adjusted.relative_interval.high == pytest.approx(lift.relative_interval.high, rel=1e-9)
    assert adjusted.confidence == pytest.approx(0.95)


def test_holm_adjusted_alphas_make_confidence_sequences_agree_with_adjusted_always_valid_p_values():
    # given: 300 families of always-valid comparisons
    rng = np.random.default_rng(8)
    disagreements = 0
    for _ in range(300):
        pairs = []
        for _ in range(int(rng.integers(2, 8))):
            variance = rng.uniform(0.001, 0.01)
            control = MeanEstimate(n=10_000, value=5.0, variance_of_value=variance)
            treatment = MeanEstimate(
                n=10_000, value=5.0 + rng.normal(0, 4) * np.sqrt(2 * variance), variance_of_value=variance
            )
            pairs.append((control, treatment))
        results = [sequential_lift(control, treatment) for control, treatment in pairs]
        p_values = [result.p_value for result in results]

        # when
        alphas = holm_adjusted_alphas(p_values, alpha=0.05)
        adjusted = holm_adjust(p_values)

        # then
        for (control, treatment), result, level, adjusted_p in zip(pairs, results, alphas, adjusted, strict=True):
            interval = sequential_lift(
                control, treatment, alpha=level, mixture_variance=result.mixture_variance
            ).absolute_interval
            disagreements += interval.contains(0) == (adjusted_p < 0.05)
    assert disagreements == 0
