"""How much the bandits lose against an oracle that always knows the best arm (cumulative regret).

Two synthetic problems, documented here because they are the evidence for the bandits' worth:

1. Bernoulli arms (conversion rates, default 4.0%, 5.0%, 6.0%, 4.5%). Traffic arrives in batches
   ("an hour of visitors") and every policy re-decides its split between batches, as production does
   on its hourly schedule: Thompson sampling through `thompson.allocation` (the code production runs,
   with an arm floor), ε-greedy (explores ε of the traffic evenly, sends the rest to the best mean so
   far) with the textbook ε = 0.1 and with ε = arms × floor (the same guaranteed share per arm as
   Thompson's floor), and a uniform split (a plain A/B/n test).
   A floor costs floor × Σ gaps per round for ever, whatever the policy: at revopt's default 5% floor
   and these four arms that is 0.00225 per round, more than ε-greedy's whole exploration at ε = 0.1,
   and it makes Thompson and ε-greedy with the same floor equal in the long run. So the comparison runs
   with a 1% floor, where the policies' learning, not the insurance, decides the regret.
2. A context-dependent problem where the best of three recommendation strategies differs by segment
   and device: P(reward) = 0.10 + segment effect + device effect per arm (below), so with a segment
   and a device one-hot the per-arm linear model is well specified; devices arrive in the revopt
   simulator's default mix (60% mobile, 35% desktop, 5% tablet), the hour of day is noise. The
   contextual policy (`contextual.ContextualPolicy`, choosing per request, its model refreshed after
   each batch) races non-contextual Thompson sampling and a uniform split.

Regret is the expected (pseudo-) regret: Σ over rounds of p(best arm | context) − p(chosen arm | context),
averaged over independent replications, reported at checkpoints for a chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from experiments.stats.summaries import SampleSums

from .contextual import ContextualPolicy, LoggedDecision
from .thompson import allocation, arms_from_sums

DEFAULT_ARMS = (0.040, 0.050, 0.060, 0.045)
CHECKPOINTS = 10

CONTEXT_ARMS = ("popularity", "hybrid", "trending")
SEGMENTS = ("new", "loyal", "at_risk")
SEGMENT_SHARES = (0.40, 0.35, 0.25)
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARES = (0.60, 0.35, 0.05)
CONTEXT_BASE_RATE = 0.10
# [arm][segment]: popularity suits new visitors, hybrid (personal) loyal ones, trending wins back the at-risk.
SEGMENT_EFFECTS = np.array(
    [
        [0.04, -0.02, 0.00],
        [-0.03, 0.05, 0.01],
        [0.00, 0.00, 0.03],
    ]
)
# [arm][device]: trending lists do better on mobile, the personal mix on desktop.
DEVICE_EFFECTS = np.array(
    [
        [0.00, 0.00, 0.00],
        [-0.02, 0.02, 0.00],
        [0.02, -0.02, 0.00],
    ]
)


@dataclass(frozen=True)
class PolicyRegret:
    policy: str
    final_regret: float  # mean cumulative regret after all rounds
    final_regret_sd: float  # its standard deviation across replications
    reward_rate: float  # mean expected reward per round
    regret_at_checkpoints: tuple[float, ...]


@dataclass(frozen=True)
class ProblemRegret:
    problem: str
    rounds: int
    replications: int
    batch_size: int
    oracle_reward_rate: float
    checkpoints: tuple[int, ...]
    policies: tuple[PolicyRegret, ...]

    def regret(self, policy: str) -> float:
        return next(p.final_regret for p in self.policies if p.policy == policy)

    def table(self) -> str:
        width = max(len(p.policy) for p in self.policies)
        lines = [
            f"{self.problem}: {self.rounds:,} rounds in batches of {self.batch_size}, "
            f"{self.replications} replications, oracle reward rate {self.oracle_reward_rate:.4f}",
            f"  {'policy':<{width}}  {'regret':>9}  {'± sd':>7}  {'reward/round':>12}",
        ]
        for p in sorted(self.policies, key=lambda p: p.final_regret):
            lines.append(
                f"  {p.policy:<{width}}  {p.final_regret:>9.1f}  {p.final_regret_sd:>7.1f}  {p.reward_rate:>12.4f}"
            )
        lines.append("  cumulative regret at " + ", ".join(f"{c:,}" for c in self.checkpoints) + " rounds:")
        for p in self.policies:
            lines.append(f"  {p.policy:<{width}}  " + " ".join(f"{r:8.1f}" for r in p.regret_at_checkpoints))
        return "\n".join(lines)


@dataclass(frozen=True)
class RegretReport:
    bernoulli: ProblemRegret
    contextual: ProblemRegret

    @property
    def thompson_beats_baselines(self) -> bool:
        """The issue's bar: below ε-greedy (ε = 0.1) and uniform. Against ε-greedy with the same floor
        Thompson is level on the mean but far steadier (100 replications of 300,000 rounds: 199 ± 32
        against 197 ± 126; greedy sometimes settles on a wrong arm for a long time), which the table
        shows but this does not require."""
        return self.bernoulli.regret("thompson") < min(
            self.bernoulli.regret("epsilon_greedy"), self.bernoulli.regret("uniform")
        )

    @property
    def contextual_beats_baselines(self) -> bool:
        return self.contextual.regret("contextual_thompson") < min(
            self.contextual.regret("thompson"), self.contextual.regret("uniform")
        )

    def table(self) -> str:
        return self.bernoulli.table() + "\n\n" + self.contextual.table()

    def as_dict(self) -> dict:
        return asdict(self)


def regret_comparison(
    *,
    arms: Sequence[float] = DEFAULT_ARMS,
    rounds: int = 300_000,
    batch_size: int = 1_000,
    replications: int = 20,
    floor: float = 0.01,
    epsilon: float = 0.1,
    contextual_rounds: int = 12_000,
    contextual_batch_size: int = 500,
    contextual_replications: int = 3,
    draws: int = 2_000,
    seed: int = 0,
) -> RegretReport:
    """Both problems with the same seed; a few seconds with the defaults on one core."""
    bernoulli_seed, contextual_seed = np.random.SeedSequence(seed).spawn(2)
    return RegretReport(
        bernoulli=bernoulli_regret(
            arms=arms,
            rounds=rounds,
            batch_size=batch_size,
            replications=replications,
            floor=floor,
            epsilon=epsilon,
            draws=draws,
            seed=bernoulli_seed,
        ),
        contextual=contextual_regret(
            rounds=contextual_rounds,
            batch_size=contextual_batch_size,
            replications=contextual_replications,
            floor=floor,
            draws=draws,
            seed=contextual_seed,
        ),
    )


# --- problem 1: Bernoulli arms ------------------------------------------------------------------------


def bernoulli_regret(
    *,
    arms: Sequence[float],
    rounds: int,
    batch_size: int,
    replications: int,
    floor: float,
    epsilon: float,
    draws: int,
    seed: int | np.random.SeedSequence,
) -> ProblemRegret:
    rates = np.asarray(arms, dtype=float)
    if len(rates) < 2 or np.any(rates < 0) or np.any(rates > 1):
        raise ValueError("need two or more arms with rates in [0, 1]")
    same_floor_epsilon = min(1.0, len(rates) * floor)
    batches = math.ceil(rounds / batch_size)
    policies = {
        "thompson": lambda rng, trials, successes: _thompson_weights(trials, successes, floor, draws, rng),
        "epsilon_greedy": lambda rng, trials, successes: _epsilon_greedy_weights(trials, successes, epsilon),
        "epsilon_greedy_same_floor": lambda rng, trials, successes: _epsilon_greedy_weights(
            trials, successes, same_floor_epsilon
        ),
        "uniform": lambda rng, trials, successes: np.full(len(rates), 1.0 / len(rates)),
    }
    gaps = rates.max() - rates
    curves = {name: np.zeros((replications, batches)) for name in policies}
    streams = _seed_sequence(seed).spawn(replications * len(policies))
    for replication in range(replications):
        for policy_index, (name, weights_for) in enumerate(policies.items()):
            rng = np.random.default_rng(streams[replication * len(policies) + policy_index])
            trials = np.zeros(len(rates), dtype=np.int64)
            successes = np.zeros(len(rates), dtype=np.int64)
            regret = 0.0
            for batch in range(batches):
                size = min(batch_size, rounds - batch * batch_size)
                counts = rng.multinomial(size, weights_for(rng, trials, successes))
                successes += rng.binomial(counts, rates)
                trials += counts
                regret += float(counts @ gaps)
                curves[name][replication, batch] = regret
    rounds_after = np.minimum(np.arange(1, batches + 1) * batch_size, rounds)
    return _problem(
        problem="Bernoulli arms " + ", ".join(f"{r:.3f}" for r in rates),
        curves=curves,
        rounds_after=rounds_after,
        oracle_reward_rate=float(rates.max()),
        batch_size=batch_size,
    )


def _thompson_weights(
    trials: np.ndarray, successes: np.ndarray, floor: float, draws: int, rng: np.random.Generator
) -> np.ndarray:
    sums = {
        f"arm-{i}": SampleSums(n=int(t), y_sum=float(s), y_sum_squares=float(s))
        for i, (t, s) in enumerate(zip(trials, successes, strict=True))
    }
    weights = allocation(
        arms_from_sums(sums, reward="proportion"), floor=floor, draws=draws, seed=int(rng.integers(2**63))
    )
    return np.array([weights[f"arm-{i}"] for i in range(len(trials))])


def _epsilon_greedy_weights(trials: np.ndarray, successes: np.ndarray, epsilon: float) -> np.ndarray:
    arms = len(trials)
    if not trials.any():
        return np.full(arms, 1.0 / arms)
    means = np.where(trials > 0, successes / np.maximum(trials, 1), np.inf)  # an untried arm is tried first
    weights = np.full(arms, epsilon / arms)
    weights[int(np.argmax(means))] += 1.0 - epsilon
    return weights


# --- problem 2: context-dependent best arm ---------------------------------------------------------


def context_reward_rates() -> np.ndarray:
    """P(reward) indexed [arm, segment, device]."""
    return CONTEXT_BASE_RATE + SEGMENT_EFFECTS[:, :, None] + DEVICE_EFFECTS[:, None, :]


def contextual_regret(
    *,
    rounds: int,
    batch_size: int,
    replications: int,
    floor: float,
    draws: int,
    seed: int | np.random.SeedSequence,
) -> ProblemRegret:
    rates = context_reward_rates()
    best = rates.max(axis=0)
    batches = math.ceil(rounds / batch_size)
    names = ("contextual_thompson", "thompson", "uniform")
    curves = {name: np.zeros((replications, batches)) for name in names}
    oracle_total = 0.0
    streams = _seed_sequence(seed).spawn(replications)
    for replication in range(replications):
        environment_rng, *policy_rngs = (np.random.default_rng(s) for s in streams[replication].spawn(4))
        # The same visitors for every policy (common random numbers), drawn up front.
        segments = environment_rng.choice(len(SEGMENTS), size=rounds, p=SEGMENT_SHARES)
        devices = environment_rng.choice(len(DEVICES), size=rounds, p=DEVICE_SHARES)
        hours = environment_rng.integers(0, 24, size=rounds)
        oracle_total += float(best[segments, devices].sum())
        for name, rng in zip(names, policy_rngs, strict=True):
            curves[name][replication] = _contextual_run(
                name,
                rng=rng,
                segments=segments,
                devices=devices,
                hours=hours,
                batch_size=batch_size,
                floor=floor,
                draws=draws,
            )
    rounds_after = np.minimum(np.arange(1, batches + 1) * batch_size, rounds)
    return _problem(
        problem="Context-dependent best arm (3 strategies × 3 segments × 3 devices)",
        curves=curves,
        rounds_after=rounds_after,
        oracle_reward_rate=oracle_total / (rounds * replications),
        batch_size=batch_size,
    )


def _contextual_run(
    name: str,
    *,
    rng: np.random.Generator,
    segments: np.ndarray,
    devices: np.ndarray,
    hours: np.ndarray,
    batch_size: int,
    floor: float,
    draws: int,
) -> np.ndarray:
    rates = context_reward_rates()
    best = rates.max(axis=0)
    arm_count = len(CONTEXT_ARMS)
    policy = ContextualPolicy.prior(arms=CONTEXT_ARMS, floor=floor, draws=draws)
    arm_index = {key: i for i, key in enumerate(CONTEXT_ARMS)}
    trials = np.zeros(arm_count, dtype=np.int64)
    successes = np.zeros(arm_count, dtype=np.int64)
    regret = 0.0
    curve = []
    for start in range(0, len(segments), batch_size):
        stop = min(start + batch_size, len(segments))
        if name == "contextual_thompson":
            decisions = []
            chosen = np.empty(stop - start, dtype=np.int64)
            for offset, visitor in enumerate(range(start, stop)):
                context = {
                    "segment": SEGMENTS[segments[visitor]],
                    "device": DEVICES[devices[visitor]],
                    "hour": int(hours[visitor]),
                }
                decision_seed = int(rng.integers(2**63))
                arm, propensity = policy.choose_seeded(context, decision_seed)
                chosen[offset] = arm_index[arm]
                decisions.append(LoggedDecision(context=context, seed=decision_seed, arm=arm, propensity=propensity))
        elif name == "thompson":
            weights = _thompson_weights(trials, successes, floor, draws, rng)
            chosen = rng.choice(arm_count, size=stop - start, p=weights / weights.sum())
        else:
            chosen = rng.integers(0, arm_count, size=stop - start)
        probabilities = rates[chosen, segments[start:stop], devices[start:stop]]
        rewards = (rng.random(stop - start) < probabilities).astype(float)
        regret += float((best[segments[start:stop], devices[start:stop]] - probabilities).sum())
        curve.append(regret)
        np.add.at(trials, chosen, 1)
        np.add.at(successes, chosen, rewards.astype(np.int64))
        if name == "contextual_thompson":
            policy = policy.update(
                LoggedDecision(context=d.context, seed=d.seed, arm=d.arm, propensity=d.propensity, reward=r)
                for d, r in zip(decisions, rewards, strict=True)
            )
    return np.array(curve)


def _seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def _problem(
    *, problem: str, curves: dict[str, np.ndarray], rounds_after: np.ndarray, oracle_reward_rate: float, batch_size: int
) -> ProblemRegret:
    batches = len(rounds_after)
    marks = sorted({max(0, math.ceil(batches * k / CHECKPOINTS) - 1) for k in range(1, CHECKPOINTS + 1)})
    total_rounds = int(rounds_after[-1])
    policies = tuple(
        PolicyRegret(
            policy=name,
            final_regret=float(curve[:, -1].mean()),
            final_regret_sd=float(curve[:, -1].std(ddof=1)) if len(curve) > 1 else 0.0,
            reward_rate=oracle_reward_rate - float(curve[:, -1].mean()) / total_rounds,
            regret_at_checkpoints=tuple(float(curve[:, m].mean()) for m in marks),
        )
        for name, curve in curves.items()
    )
    return ProblemRegret(
        problem=problem,
        rounds=total_rounds,
        replications=len(next(iter(curves.values()))),
        batch_size=batch_size,
        oracle_reward_rate=oracle_reward_rate,
        checkpoints=tuple(int(rounds_after[m]) for m in marks),
        policies=policies,
    )
