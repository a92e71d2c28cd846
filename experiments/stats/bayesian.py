"""The Bayesian view a merchant reads beside the p-value: the chance the variant beats the control, and what
shipping it would cost if it does not (expected loss, GrowthBook's "risk"), both on the relative scale.

Proportions use Beta posteriors; means use the normal approximation with a flat prior (the posterior of
each arm's mean is N(ȳ, s²/n), as in GrowthBook and Stucchio's "Bayesian A/B testing at VWO"). Expected loss
and the credible interval come from seeded posterior draws, so a snapshot reproduces exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from experiments.stats.summaries import Interval, MeanEstimate


@dataclass(frozen=True)
class BayesianResult:
    probability_to_beat_control: float  # P(treatment better than control), "better" per higher_is_better
    expected_loss: float  # E[max(0, relative harm)] if the treatment is shipped, e.g. 0.004 = 0.4%
    relative_interval: Interval  # credible interval of treatment / control − 1


def bayesian_proportions(
    *,
    control_successes: int,
    control_n: int,
    treatment_successes: int,
    treatment_n: int,
    prior: tuple[float, float] = (1.0, 1.0),
    draws: int = 100_000,
    seed: int = 0,
    credibility: float = 0.95,
    higher_is_better: bool = True,
) -> BayesianResult:
    """Beta(a + successes, b + failures) posteriors; everything from `draws` joint posterior draws."""
    prior_successes, prior_failures = prior
    rng = np.random.default_rng(seed)
    control = rng.beta(prior_successes + control_successes, prior_failures + control_n - control_successes, draws)
    treatment = rng.beta(
        prior_successes + treatment_successes, prior_failures + treatment_n - treatment_successes, draws
    )
    return _from_draws(control, treatment, credibility=credibility, higher_is_better=higher_is_better)


def bayesian_means(
    control: MeanEstimate,
    treatment: MeanEstimate,
    *,
    draws: int = 100_000,
    seed: int = 0,
    credibility: float = 0.95,
    higher_is_better: bool = True,
) -> BayesianResult:
    """Flat prior, normal posteriors N(value, variance_of_value). The probability to beat control is the
    closed form Φ((t − c)/√(v_c + v_t)); expected loss and the interval of the ratio come from draws."""
    variance = control.variance_of_value + treatment.variance_of_value
    if not math.isfinite(variance):
        return BayesianResult(
            probability_to_beat_control=0.5, expected_loss=math.inf, relative_interval=Interval(-math.inf, math.inf)
        )
    rng = np.random.default_rng(seed)
    control_draws = control.value + math.sqrt(control.variance_of_value) * rng.standard_normal(draws)
    treatment_draws = treatment.value + math.sqrt(treatment.variance_of_value) * rng.standard_normal(draws)
    result = _from_draws(control_draws, treatment_draws, credibility=credibility, higher_is_better=higher_is_better)
    difference = treatment.value - control.value
    if variance > 0:
        probability_higher = float(special.ndtr(difference / math.sqrt(variance)))
    else:
        probability_higher = 0.5 if difference == 0 else float(difference > 0)
    probability = probability_higher if higher_is_better else 1.0 - probability_higher
    return BayesianResult(
        probability_to_beat_control=probability,
        expected_loss=result.expected_loss,
        relative_interval=result.relative_interval,
    )


def _from_draws(
    control: np.ndarray, treatment: np.ndarray, *, credibility: float, higher_is_better: bool
) -> BayesianResult:
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = treatment / control - 1.0
    relative = relative[np.isfinite(relative)]
    if relative.size == 0:
        return BayesianResult(
            probability_to_beat_control=0.5, expected_loss=math.inf, relative_interval=Interval(-math.inf, math.inf)
        )
    harm = -relative if higher_is_better else relative
    better = treatment > control if higher_is_better else treatment < control
    tail = (1.0 - credibility) / 2.0
    low, high = np.quantile(relative, [tail, 1.0 - tail])
    return BayesianResult(
        probability_to_beat_control=float(np.mean(better)),
        expected_loss=float(np.mean(np.maximum(harm, 0.0))),
        relative_interval=Interval(float(low), float(high)),
    )
