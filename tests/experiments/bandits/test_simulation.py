import numpy as np
import pytest

from experiments.bandits.simulation import (
    CONTEXT_ARMS,
    DEVICE_SHARES,
    SEGMENT_SHARES,
    bernoulli_regret,
    context_reward_rates,
    contextual_regret,
    regret_comparison,
)

ARMS = (0.040, 0.050, 0.060, 0.045)


@pytest.fixture(scope="module")
def bernoulli():
    return bernoulli_regret(
        arms=ARMS, rounds=200_000, batch_size=1_000, replications=10, floor=0.01, epsilon=0.1, draws=2_000, seed=7
    )


@pytest.fixture(scope="module")
def contextual():
    return contextual_regret(rounds=8_000, batch_size=500, replications=2, floor=0.01, draws=1_000, seed=7)


def test_thompson_sampling_has_less_regret_than_epsilon_greedy_and_uniform(bernoulli):
    # given / when: 200,000 visitors in hourly batches of 1,000, 10 replications
    thompson = bernoulli.regret("thompson")

    # then (measured: Thompson ≈ 151, ε-greedy ≈ 244, uniform ≈ 2,251)
    assert thompson < 0.85 * bernoulli.regret("epsilon_greedy")
    assert thompson < 0.15 * bernoulli.regret("uniform")


def test_uniform_regret_is_the_rounds_times_the_mean_gap(bernoulli):
    # given a uniform split, whose expected regret is known in closed form
    expected = 200_000 * (max(ARMS) - np.mean(ARMS))

    # when / then
    assert bernoulli.regret("uniform") == pytest.approx(expected, rel=0.01)


def test_regret_curves_never_fall_and_end_at_the_final_regret(bernoulli):
    # given / when / then
    assert bernoulli.checkpoints[-1] == 200_000
    assert len(bernoulli.checkpoints) == 10
    for policy in bernoulli.policies:
        curve = policy.regret_at_checkpoints
        assert all(later >= earlier for earlier, later in zip(curve, curve[1:], strict=False))
        assert curve[-1] == pytest.approx(policy.final_regret)


def test_the_best_arm_differs_by_context_in_the_contextual_problem():
    # given / when
    best = context_reward_rates().argmax(axis=0)

    # then every strategy is the best somewhere, and the oracle beats the best single arm
    assert {CONTEXT_ARMS[i] for i in best.flat} == set(CONTEXT_ARMS)
    weights = np.outer(SEGMENT_SHARES, DEVICE_SHARES)
    oracle = float((context_reward_rates().max(axis=0) * weights).sum())
    best_single = max(float((context_reward_rates()[arm] * weights).sum()) for arm in range(len(CONTEXT_ARMS)))
    assert oracle > best_single + 0.02


def test_contextual_policy_has_less_regret_than_non_contextual_thompson_and_uniform(contextual):
    # given / when
    regret = contextual.regret("contextual_thompson")

    # then (measured: ≈ 86 against ≈ 254 and ≈ 272)
    assert regret < 0.6 * contextual.regret("thompson")
    assert regret < 0.6 * contextual.regret("uniform")


def test_regret_comparison_reports_both_problems_in_a_table():
    # given / when
    report = regret_comparison(
        rounds=20_000, replications=2, contextual_rounds=1_000, contextual_batch_size=250, contextual_replications=1
    )

    # then
    table = report.table()
    for name in ("thompson", "epsilon_greedy", "epsilon_greedy_same_floor", "uniform", "contextual_thompson"):
        assert name in table
    assert report.as_dict()["bernoulli"]["rounds"] == 20_000
    assert isinstance(report.thompson_beats_baselines, bool)


def test_regret_comparison_is_reproducible_for_a_seed():
    # given / when
    first = regret_comparison(rounds=10_000, replications=2, contextual_rounds=500, contextual_replications=1, seed=3)
    again = regret_comparison(rounds=10_000, replications=2, contextual_rounds=500, contextual_replications=1, seed=3)

    # then
    assert first == again
