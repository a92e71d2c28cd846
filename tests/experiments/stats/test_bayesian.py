import math

import numpy as np
import pytest
from scipy import special, stats

from experiments.stats.bayesian import bayesian_means, bayesian_proportions
from experiments.stats.summaries import MeanEstimate


def _miller_probability_b_beats_a(alpha_a, beta_a, alpha_b, beta_b):
    """Evan Miller's closed form for P(p_B > p_A) with Beta posteriors (integer alpha_b)."""
    total = 0.0
    for i in range(int(alpha_b)):
        total += math.exp(
            special.betaln(alpha_a + i, beta_a + beta_b)
            - math.log(beta_b + i)
            - special.betaln(1 + i, beta_b)
            - special.betaln(alpha_a, beta_a)
        )
    return total


@pytest.mark.parametrize(
    ("control", "treatment"), [((40, 1000), (55, 1000)), ((12, 300), (9, 280)), ((200, 2000), (200, 2000))]
)
def test_probability_to_beat_control_matches_the_closed_form_for_beta_posteriors(control, treatment):
    # when
    result = bayesian_proportions(
        control_successes=control[0],
        control_n=control[1],
        treatment_successes=treatment[0],
        treatment_n=treatment[1],
        draws=200_000,
    )

    # then: within 4 Monte-Carlo standard errors
    expected = _miller_probability_b_beats_a(
        1 + control[0], 1 + control[1] - control[0], 1 + treatment[0], 1 + treatment[1] - treatment[0]
    )
    assert result.probability_to_beat_control == pytest.approx(expected, abs=4 * math.sqrt(0.25 / 200_000))


def test_bayesian_proportions_are_reproducible_for_a_seed():
    # when
    first = bayesian_proportions(control_successes=40, control_n=1000, treatment_successes=55, treatment_n=1000, seed=3)
    again = bayesian_proportions(control_successes=40, control_n=1000, treatment_successes=55, treatment_n=1000, seed=3)

    # then
    assert first == again


def test_a_clearly_better_treatment_has_a_high_probability_and_almost_no_expected_loss():
    # when
    result = bayesian_proportions(control_successes=100, control_n=2000, treatment_successes=160, treatment_n=2000)

    # then
    assert result.probability_to_beat_control > 0.999
    assert result.expected_loss < 1e-4
    assert result.relative_interval.low > 0.2


def test_the_relative_interval_of_proportions_is_centred_on_the_observed_lift():
    # when
    result = bayesian_proportions(
        control_successes=500, control_n=10_000, treatment_successes=550, treatment_n=10_000, prior=(0.0001, 0.0001)
    )

    # then
    assert result.relative_interval.contains(0.10)
    assert (result.relative_interval.low + result.relative_interval.high) / 2 == pytest.approx(0.10, abs=0.01)


def test_bayesian_means_give_the_normal_closed_forms_when_the_control_is_known_exactly():
    # given: with the control's mean certain, treatment / control − 1 ~ N(μ, σ²)
    control = MeanEstimate(n=10**9, value=10.0, variance_of_value=0.0)
    treatment = MeanEstimate(n=1000, value=9.8, variance_of_value=0.09)
    mu, sigma = -0.02, 0.03

    # when
    result = bayesian_means(control, treatment, draws=400_000)

    # then: P(beat) = Φ(μ/σ), expected loss = σφ(μ/σ) − μΦ(−μ/σ), interval μ ± 1.96σ
    assert result.probability_to_beat_control == pytest.approx(stats.norm.cdf(mu / sigma), rel=1e-12)
    loss = sigma * stats.norm.pdf(mu / sigma) - mu * stats.norm.cdf(-mu / sigma)
    assert result.expected_loss == pytest.approx(loss, rel=0.01)
    assert result.relative_interval.low == pytest.approx(mu - 1.959964 * sigma, abs=0.001)
    assert result.relative_interval.high == pytest.approx(mu + 1.959964 * sigma, abs=0.001)


def test_bayesian_means_probability_uses_both_arms_variances():
    # given
    control = MeanEstimate(n=5000, value=4.0, variance_of_value=0.01)
    treatment = MeanEstimate(n=5000, value=4.2, variance_of_value=0.02)

    # when
    result = bayesian_means(control, treatment)

    # then
    assert result.probability_to_beat_control == pytest.approx(stats.norm.cdf(0.2 / math.sqrt(0.03)))
    draws = np.random.default_rng(99)
    ratio = (4.2 + math.sqrt(0.02) * draws.standard_normal(400_000)) / (4.0 + 0.1 * draws.standard_normal(400_000))
    assert result.expected_loss == pytest.approx(np.mean(np.maximum(1 - ratio, 0)), rel=0.05)


def test_for_a_lower_is_better_metric_the_probability_and_the_loss_flip():
    # given: refund rate rises from 2% to 3%
    arguments = dict(control_successes=40, control_n=2000, treatment_successes=60, treatment_n=2000)

    # when
    higher = bayesian_proportions(**arguments)
    lower = bayesian_proportions(**arguments, higher_is_better=False)

    # then
    assert lower.probability_to_beat_control == pytest.approx(1 - higher.probability_to_beat_control, abs=1e-9)
    assert lower.expected_loss > 0.3
    assert higher.expected_loss < 0.01
