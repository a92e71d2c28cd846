"""A contextual bandit: linear Thompson sampling with one Bayesian linear regression per arm.

Each arm's expected reward is θ_a · x, x the one-hot (or numeric) features of the request's context
(device, segment, hour-of-day band, new/returning visitor, plus an intercept). The posterior of θ_a is
Normal(B_a⁻¹ b_a, σ² B_a⁻¹) with B_a = λI + Σ x xᵀ and b_a = Σ r x over the arm's rewarded decisions
(Agrawal & Goyal, "Thompson Sampling for Contextual Bandits with Linear Payoffs", 2013, with v = 1).

Why Thompson sampling and not LinUCB: rewards arrive late (an order within a day) and the model is
refreshed in batches, so between two updates LinUCB would send every request of a context to the same
arm, while Thompson sampling keeps spreading them by posterior probability; it is the same idea as the
non-contextual bandit; and its choice is random, so every arm has a known, non-zero probability — what
off-policy evaluation (inverse propensity weighting) needs.

The propensity is exact for what the policy does: for a context, `draws` posterior samples of each
arm's reward estimate the probability that each arm is best, the arm floor is applied, and the arm is
drawn from *those* probabilities, so the logged propensity is the probability with which the arm was
chosen (and never below the floor). Everything comes from one seeded numpy Generator: a stored state
and a logged seed replay the choice (`replay`).

No Django here: states are plain JSON (`ContextualPolicy.to_json` / `from_json`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from .thompson import apply_floor

BIAS = "bias"
HOUR_BANDS: tuple[tuple[str, int, int], ...] = (
    ("night", 0, 6),
    ("morning", 6, 12),
    ("afternoon", 12, 18),
    ("evening", 18, 24),
)
# Features beyond this many are ignored: a bound on the state's size (a d×d matrix per arm) whatever
# the storefront sends as attributes.
MAX_FEATURES = 64
DEFAULT_DRAWS = 1_000
STATE_VERSION = 1
# The noise variance's prior is worth this many rewards (so a run of zeros cannot make it collapse).
NOISE_PRIOR_WEIGHT = 10.0


def hour_band(hour: int) -> str:
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be 0..23, got {hour}")
    return next(name for name, start, end in HOUR_BANDS if start <= hour < end)


def context_features(context: Mapping[str, object]) -> dict[str, float]:
    """{"device": "mobile", "hour": 14, "returning": True, "cart_value": 1.2} →
    {"bias": 1, "device=mobile": 1, "hour=afternoon": 1, "returning=true": 1, "cart_value": 1.2}.

    Strings and booleans are one-hot, `hour` (0..23) becomes its band, other numbers are kept as they
    are (scale them to about ±1 before sending), None is left out."""
    features: dict[str, float] = {BIAS: 1.0}
    for key in sorted(context):
        value = context[key]
        if value is None or value == "":
            continue
        if key == "hour" and isinstance(value, int) and not isinstance(value, bool):
            features[f"hour={hour_band(value)}"] = 1.0
        elif isinstance(value, bool):
            features[f"{key}={'true' if value else 'false'}"] = 1.0
        elif isinstance(value, int | float):
            if math.isfinite(value):
                features[key] = float(value)
        else:
            features[f"{key}={value}"] = 1.0
    return features


@dataclass(frozen=True)
class LoggedDecision:
    """A decision as logged: what the policy saw, the seed it drew with, what it chose, what happened."""

    context: Mapping[str, object]
    seed: int
    arm: str | None = None
    propensity: float | None = None
    reward: float | None = None


@dataclass(frozen=True)
class ArmModel:
    precision: np.ndarray  # B = λI + Σ x xᵀ
    b: np.ndarray  # Σ r x


@dataclass(frozen=True)
class ContextualPolicy:
    arms: tuple[str, ...]  # sorted
    features: tuple[str, ...]
    models: Mapping[str, ArmModel]
    noise_variance: float
    floor: float
    draws: int = DEFAULT_DRAWS
    prior_precision: float = 1.0
    prior_noise_variance: float = 0.25
    reward_count: int = 0
    reward_sum: float = 0.0
    reward_sum_squares: float = 0.0

    # --- construction ------------------------------------------------------------------------------
    @classmethod
    def prior(
        cls,
        *,
        arms: Sequence[str],
        floor: float,
        noise_variance: float = 0.25,
        draws: int = DEFAULT_DRAWS,
        prior_precision: float = 1.0,
    ) -> ContextualPolicy:
        """Knows nothing yet: every arm's θ ~ Normal(0, σ²/λ I) over the intercept alone.
        `noise_variance` is the reward's variance before any is seen (0.25 bounds a conversion's)."""
        keys = tuple(sorted(arms))
        if len(keys) < 2 or len(set(keys)) != len(keys):
            raise ValueError("a bandit needs two or more distinct arms")
        if noise_variance <= 0 or prior_precision <= 0 or draws < 1:
            raise ValueError("noise_variance, prior_precision and draws must be positive")
        apply_floor(dict.fromkeys(keys, 1.0), floor=floor)  # validates the floor for this many arms
        features = (BIAS,)
        models = {key: ArmModel(precision=np.eye(1) * prior_precision, b=np.zeros(1)) for key in keys}
        return cls(
            arms=keys,
            features=features,
            models=models,
            noise_variance=noise_variance,
            floor=floor,
            draws=draws,
            prior_precision=prior_precision,
            prior_noise_variance=noise_variance,
        )

    # --- choosing ----------------------------------------------------------------------------------
    def encode(self, context: Mapping[str, object]) -> np.ndarray:
        """The context as this state's feature vector; features the state has not learnt yet are left out."""
        values = context_features(context)
        return np.array([values.get(name, 0.0) for name in self.features])

    @cached_property
    def _posterior_means(self) -> dict[str, np.ndarray]:
        return {key: np.linalg.solve(self.models[key].precision, self.models[key].b) for key in self.arms}

    @cached_property
    def _posterior_covariances(self) -> dict[str, np.ndarray]:
        return {key: np.linalg.inv(self.models[key].precision) for key in self.arms}

    def reward_distribution(self, context: Mapping[str, object]) -> dict[str, tuple[float, float]]:
        """Per arm, the posterior mean and standard deviation of θ_a · x for this context."""
        x = self.encode(context)
        result = {}
        for key in self.arms:
            mean = float(x @ self._posterior_means[key])
            variance = float(self.noise_variance * (x @ self._posterior_covariances[key] @ x))
            result[key] = (mean, math.sqrt(max(variance, 0.0)))
        return result

    def action_probabilities(self, context: Mapping[str, object], rng: np.random.Generator) -> dict[str, float]:
        """The probability each arm is chosen for this context: best-arm frequencies over `draws`
        posterior samples, floored. Consumes `draws × arms` normal variates of `rng`."""
        distribution = self.reward_distribution(context)
        means = np.array([distribution[key][0] for key in self.arms])
        deviations = np.array([distribution[key][1] for key in self.arms])
        samples = means + deviations * rng.standard_normal((self.draws, len(self.arms)))
        wins = np.bincount(np.argmax(samples, axis=1), minlength=len(self.arms))
        return apply_floor(
            {key: float(w) / self.draws for key, w in zip(self.arms, wins, strict=True)}, floor=self.floor
        )

    def choose(self, context: Mapping[str, object], rng: np.random.Generator) -> tuple[str, float]:
        """(arm, the exact probability it had of being chosen)."""
        probabilities = self.action_probabilities(context, rng)
        u = rng.random()
        cumulative = 0.0
        for key in self.arms:
            cumulative += probabilities[key]
            if u < cumulative:
                return key, probabilities[key]
        # u is just below 1 and the probabilities' float sum a hair below it.
        last = max(key for key in self.arms if probabilities[key] > 0)
        return last, probabilities[last]

    def choose_seeded(self, context: Mapping[str, object], seed: int) -> tuple[str, float]:
        return self.choose(context, np.random.default_rng(seed))

    # --- learning ----------------------------------------------------------------------------------
    def update(self, decisions: Iterable[LoggedDecision]) -> ContextualPolicy:
        """A new state with the rewarded decisions added (decisions without an arm or a reward are skipped)."""
        rewarded = [d for d in decisions if d.reward is not None and d.arm is not None]
        unknown_arms = {d.arm for d in rewarded} - set(self.arms)
        if unknown_arms:
            raise ValueError(f"decisions name arms this policy does not have: {sorted(unknown_arms)}")
        if not rewarded:
            return self
        contexts = [context_features(d.context) for d in rewarded]
        features = list(self.features)
        known = set(features)
        for name in sorted({name for values in contexts for name in values} - known):
            if len(features) >= MAX_FEATURES:
                break
            features.append(name)
        grown = len(features) - len(self.features)
        design = np.array([[values.get(name, 0.0) for name in features] for values in contexts])
        rewards = np.array([float(d.reward) for d in rewarded])
        arm_of = np.array([d.arm for d in rewarded])
        models = {}
        for key in self.arms:
            old = self.models[key]
            # New features start from the prior: an uncorrelated block λI, nothing learnt.
            precision = np.pad(old.precision, (0, grown)) + np.diag(
                [0.0] * len(self.features) + [self.prior_precision] * grown
            )
            b = np.pad(old.b, (0, grown))
            rows = design[arm_of == key]
            if len(rows):
                precision = precision + rows.T @ rows
                b = b + rows.T @ rewards[arm_of == key]
            models[key] = ArmModel(precision=precision, b=b)
        count = self.reward_count + len(rewards)
        reward_sum = self.reward_sum + float(rewards.sum())
        reward_sum_squares = self.reward_sum_squares + float((rewards**2).sum())
        return replace(
            self,
            features=tuple(features),
            models=models,
            noise_variance=_noise_variance(
                prior=self.prior_noise_variance, count=count, total=reward_sum, total_squares=reward_sum_squares
            ),
            reward_count=count,
            reward_sum=reward_sum,
            reward_sum_squares=reward_sum_squares,
        )

    # --- storage -----------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {
            "version": STATE_VERSION,
            "features": list(self.features),
            "arms": {
                key: {"precision": self.models[key].precision.tolist(), "b": self.models[key].b.tolist()}
                for key in self.arms
            },
            "noise_variance": self.noise_variance,
            "prior_noise_variance": self.prior_noise_variance,
            "prior_precision": self.prior_precision,
            "floor": self.floor,
            "draws": self.draws,
            "reward_count": self.reward_count,
            "reward_sum": self.reward_sum,
            "reward_sum_squares": self.reward_sum_squares,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> ContextualPolicy:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown contextual state version {data.get('version')!r}")
        arms = tuple(sorted(data["arms"]))
        models = {
            key: ArmModel(
                precision=np.array(data["arms"][key]["precision"], dtype=float).reshape(
                    len(data["features"]), len(data["features"])
                ),
                b=np.array(data["arms"][key]["b"], dtype=float),
            )
            for key in arms
        }
        return cls(
            arms=arms,
            features=tuple(data["features"]),
            models=models,
            noise_variance=float(data["noise_variance"]),
            prior_noise_variance=float(data["prior_noise_variance"]),
            prior_precision=float(data["prior_precision"]),
            floor=float(data["floor"]),
            draws=int(data["draws"]),
            reward_count=int(data["reward_count"]),
            reward_sum=float(data["reward_sum"]),
            reward_sum_squares=float(data["reward_sum_squares"]),
        )


def _noise_variance(*, prior: float, count: int, total: float, total_squares: float) -> float:
    """The rewards' variance, shrunk towards the prior guess (worth NOISE_PRIOR_WEIGHT rewards)."""
    squared_deviations = max(total_squares - total**2 / count, 0.0) if count else 0.0
    return (NOISE_PRIOR_WEIGHT * prior + squared_deviations) / (NOISE_PRIOR_WEIGHT + count)


def replay(state: ContextualPolicy | Mapping, decisions: Iterable[LoggedDecision]) -> list[str]:
    """The arms the policy in `state` chooses for the decisions' contexts and seeds: equal to the
    logged arms when the decisions were made with this state."""
    policy = state if isinstance(state, ContextualPolicy) else ContextualPolicy.from_json(state)
    return [policy.choose_seeded(decision.context, decision.seed)[0] for decision in decisions]
