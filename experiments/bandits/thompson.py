"""Thompson sampling over independent arms: the traffic share of each arm is the posterior
probability that it is the best one, estimated from seeded posterior draws, with a floor per arm.

Two reward models, both conjugate so the posterior is a handful of numbers that can be stored and replayed:

- conversion (a PROPORTION metric): Beta-Bernoulli, prior Beta(1, 1), posterior
  Beta(1 + successes, 1 + failures);
- revenue (a MEAN metric): Normal-inverse-gamma on the unknown mean *and* variance of the per-unit
  value (Murphy, "Conjugate Bayesian analysis of the Gaussian distribution", 2007, §3). We do not use
  the normal approximation with a plugged-in variance: revenue per unit is mostly zeros with a long
  tail, and for arms with few units the Student-t marginal of the NIG posterior keeps the extra
  uncertainty about the variance instead of trusting a noisy estimate of it. The prior is weak and
  shared by the arms: centred on the pooled mean with the pooled variance as its scale, worth one
  unit (kappa0 = 1, alpha0 = 1), so it has the data's units (dollars or yen alike) and is forgotten
  after a few dozen units.

Everything is a function of the arms' posterior parameters plus an integer seed, in sorted key order,
so a stored reallocation re-computes to the same weights (and PostgreSQL's jsonb, which does not keep
key order, cannot change the result).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from experiments.stats.summaries import SampleSums

# Weights are rounded to millionths: readable in the allocation log, and their sum is exactly 1.
WEIGHT_RESOLUTION = 1_000_000
DEFAULT_DRAWS = 10_000


@dataclass(frozen=True)
class BetaArm:
    """Posterior of a conversion rate."""

    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.beta(self.alpha, self.beta, size=size)

    def as_dict(self) -> dict[str, float | str]:
        return {"kind": "beta", "alpha": self.alpha, "beta": self.beta}


@dataclass(frozen=True)
class NormalInverseGammaPrior:
    mean: float = 0.0
    kappa: float = 1.0
    alpha: float = 1.0
    beta: float = 1.0


@dataclass(frozen=True)
class GaussianArm:
    """Normal-inverse-gamma posterior of a per-unit mean: variance ~ InvGamma(alpha, beta),
    mean | variance ~ Normal(mean, variance / kappa)."""

    mean: float
    kappa: float
    alpha: float
    beta: float
    n: int

    @property
    def mean_variance(self) -> float:
        """Variance of the Student-t marginal of the mean (finite for alpha > 1)."""
        if self.alpha <= 1:
            return math.inf
        return self.beta / (self.kappa * (self.alpha - 1))

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        # 1 / Gamma(alpha, rate=beta) is InvGamma(alpha, beta); numpy's gamma takes the scale 1/rate.
        variance = 1.0 / rng.gamma(self.alpha, 1.0 / self.beta, size=size)
        return rng.normal(self.mean, np.sqrt(variance / self.kappa))

    def as_dict(self) -> dict[str, float | str]:
        return {
            "kind": "normal_inverse_gamma",
            "mean": self.mean,
            "kappa": self.kappa,
            "alpha": self.alpha,
            "beta": self.beta,
            "n": self.n,
        }


Arm = BetaArm | GaussianArm


def beta_posterior(*, successes: float, trials: float, prior_alpha: float = 1.0, prior_beta: float = 1.0) -> BetaArm:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    return BetaArm(alpha=prior_alpha + successes, beta=prior_beta + trials - successes)


def normal_inverse_gamma_posterior(*, sums: SampleSums, prior: NormalInverseGammaPrior) -> GaussianArm:
    """Murphy (2007) eqs. 85-89 from the sufficient statistics n, Σy, Σy²."""
    n = sums.n
    if n == 0:
        return GaussianArm(mean=prior.mean, kappa=prior.kappa, alpha=prior.alpha, beta=prior.beta, n=0)
    sample_mean = sums.y_sum / n
    # Σ(y - ȳ)², clipped: the textbook identity can go a hair negative in floating point.
    squared_deviations = max(sums.y_sum_squares - n * sample_mean**2, 0.0)
    kappa = prior.kappa + n
    return GaussianArm(
        mean=(prior.kappa * prior.mean + n * sample_mean) / kappa,
        kappa=kappa,
        alpha=prior.alpha + n / 2,
        beta=prior.beta + squared_deviations / 2 + prior.kappa * n * (sample_mean - prior.mean) ** 2 / (2 * kappa),
        n=n,
    )


def pooled_prior(sums: Mapping[str, SampleSums]) -> NormalInverseGammaPrior:
    """A weak prior shared by the arms, on the scale of the data: centred on the pooled mean, with the
    prior expectation of the precision 1 / pooled variance (alpha / beta), worth one unit."""
    n = sum(s.n for s in sums.values())
    if n < 2:
        return NormalInverseGammaPrior()
    mean = sum(s.y_sum for s in sums.values()) / n
    variance = max(sum(s.y_sum_squares for s in sums.values()) / n - mean**2, 0.0)
    return NormalInverseGammaPrior(mean=mean, kappa=1.0, alpha=1.0, beta=variance if variance > 0 else 1.0)


def arms_from_sums(sums: Mapping[str, SampleSums], *, reward: str) -> dict[str, Arm]:
    """Posteriors per arm from the database's sums; `reward` is "proportion" (y_sum = successes) or "mean"."""
    if reward == "proportion":
        return {key: beta_posterior(successes=s.y_sum, trials=s.n) for key, s in sums.items()}
    if reward == "mean":
        prior = pooled_prior(sums)
        return {key: normal_inverse_gamma_posterior(sums=s, prior=prior) for key, s in sums.items()}
    raise ValueError(f"a bandit rewards a proportion or a mean, not {reward!r}")


def arm_from_dict(data: Mapping[str, object]) -> Arm:
    kind = data.get("kind", "beta")
    if kind == "beta":
        return BetaArm(alpha=float(data["alpha"]), beta=float(data["beta"]))
    if kind == "normal_inverse_gamma":
        return GaussianArm(
            mean=float(data["mean"]),
            kappa=float(data["kappa"]),
            alpha=float(data["alpha"]),
            beta=float(data["beta"]),
            n=int(data["n"]),
        )
    raise ValueError(f"unknown arm kind {kind!r}")


def probability_best(arms: Mapping[str, Arm], *, draws: int, rng: np.random.Generator) -> dict[str, float]:
    """Share of joint posterior draws in which each arm has the highest value (arms in sorted key order)."""
    if not arms:
        raise ValueError("no arms")
    if draws < 1:
        raise ValueError("draws must be positive")
    keys = sorted(arms)
    samples = np.column_stack([arms[key].sample(rng, draws) for key in keys])
    wins = np.bincount(np.argmax(samples, axis=1), minlength=len(keys))
    return {key: float(count) / draws for key, count in zip(keys, wins, strict=True)}


def apply_floor(probabilities: Mapping[str, float], *, floor: float) -> dict[str, float]:
    """Every arm keeps at least `floor`; the rest is shared in proportion to the probabilities.

    Arms below the floor are raised to it and the others give up the difference in proportion to
    their weight, repeated until no arm is below (at most one pass per arm). Then rounded to
    millionths with the largest-remainder method, so the weights are exact decimals summing to 1.
    """
    keys = sorted(probabilities)
    if not keys:
        raise ValueError("no arms")
    if floor < 0 or floor * len(keys) > 1 + 1e-12:
        raise ValueError(f"a floor of {floor} cannot hold for {len(keys)} arms")
    total = sum(probabilities.values())
    if total <= 0 or any(p < 0 for p in probabilities.values()):
        raise ValueError("probabilities must be non-negative with a positive sum")
    weights = {key: probabilities[key] / total for key in keys}
    floored: set[str] = set()
    for _ in keys:
        below = {key for key in keys if key not in floored and weights[key] < floor}
        if not below:
            break
        floored |= below
        free = [key for key in keys if key not in floored]
        free_mass = sum(weights[key] for key in free)
        remaining = 1.0 - floor * len(floored)
        for key in floored:
            weights[key] = floor
        for key in free:
            weights[key] = weights[key] / free_mass * remaining if free_mass > 0 else remaining / len(free)
    return _round_to_resolution(weights, minimum=floor)


def _round_to_resolution(weights: Mapping[str, float], *, minimum: float) -> dict[str, float]:
    keys = sorted(weights)
    scaled = {key: weights[key] * WEIGHT_RESOLUTION for key in keys}
    minimum_units = min(math.ceil(minimum * WEIGHT_RESOLUTION - 1e-6), WEIGHT_RESOLUTION // len(keys))
    units = {key: max(math.floor(scaled[key]), minimum_units) for key in keys}
    shortfall = WEIGHT_RESOLUTION - sum(units.values())
    by_remainder = sorted(keys, key=lambda key: (-(scaled[key] - math.floor(scaled[key])), key))
    index = 0
    while shortfall > 0:
        units[by_remainder[index % len(keys)]] += 1
        shortfall -= 1
        index += 1
    while shortfall < 0:
        # Only when the floor's rounding-up overshot: take from the largest arms.
        largest = max(keys, key=lambda key: (units[key], key))
        units[largest] -= 1
        shortfall += 1
    return {key: units[key] / WEIGHT_RESOLUTION for key in keys}


def allocation(arms: Mapping[str, Arm], *, floor: float, draws: int = DEFAULT_DRAWS, seed: int) -> dict[str, float]:
    """Traffic weights: the probability each arm is best (from `draws` posterior samples drawn with
    `numpy.random.default_rng(seed)`), then the floor. Same arms and seed, same weights."""
    rng = np.random.default_rng(seed)
    return apply_floor(probability_best(arms, draws=draws, rng=rng), floor=floor)
