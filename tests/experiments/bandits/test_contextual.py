import json

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from experiments.bandits.contextual import (
    MAX_FEATURES,
    NOISE_PRIOR_WEIGHT,
    ContextualPolicy,
    LoggedDecision,
    context_features,
    hour_band,
    replay,
)

ARMS = ("hybrid", "popularity", "trending")
# The best arm depends on the device: popularity on mobile, hybrid on desktop.
RATES = {
    ("mobile", "hybrid"): 0.05,
    ("mobile", "popularity"): 0.30,
    ("mobile", "trending"): 0.10,
    ("desktop", "hybrid"): 0.35,
    ("desktop", "popularity"): 0.10,
    ("desktop", "trending"): 0.15,
}


def _learnt_policy(*, rounds: int = 3_000, batch: int = 500, seed: int = 0) -> ContextualPolicy:
    rng = np.random.default_rng(seed)
    policy = ContextualPolicy.prior(arms=ARMS, floor=0.02, draws=500)
    for start in range(0, rounds, batch):
        decisions = []
        for i in range(start, start + batch):
            context = {"device": "mobile" if rng.random() < 0.5 else "desktop", "hour": int(rng.integers(0, 24))}
            arm, propensity = policy.choose_seeded(context, i)
            reward = float(rng.random() < RATES[(context["device"], arm)])
            decisions.append(LoggedDecision(context=context, seed=i, arm=arm, propensity=propensity, reward=reward))
        policy = policy.update(decisions)
    return policy


@pytest.mark.parametrize(
    ("hour", "band"), [(0, "night"), (5, "night"), (6, "morning"), (12, "afternoon"), (23, "evening")]
)
def test_hour_band(hour, band):
    # given / when / then
    assert hour_band(hour) == band


def test_context_features_one_hot_strings_and_booleans_band_the_hour_and_keep_numbers():
    # given
    context = {
        "device": "mobile",
        "segment": "Champions",
        "hour": 14,
        "returning": True,
        "cart_value": 1.5,
        "x": None,
        "y": "",
    }

    # when
    features = context_features(context)

    # then
    assert features == {
        "bias": 1.0,
        "device=mobile": 1.0,
        "segment=Champions": 1.0,
        "hour=afternoon": 1.0,
        "returning=true": 1.0,
        "cart_value": 1.5,
    }


def test_prior_policy_treats_every_arm_alike_and_respects_the_floor():
    # given
    policy = ContextualPolicy.prior(arms=ARMS, floor=0.05, draws=20_000)

    # when
    probabilities = policy.action_probabilities({"device": "mobile"}, np.random.default_rng(0))

    # then
    assert set(probabilities) == set(ARMS)
    assert all(p == pytest.approx(1 / 3, abs=0.015) for p in probabilities.values())
    assert min(probabilities.values()) >= 0.05


def test_prior_refuses_fewer_than_two_arms_and_an_impossible_floor():
    # given / when / then
    with pytest.raises(ValueError, match="two or more"):
        ContextualPolicy.prior(arms=["only"], floor=0.0)
    with pytest.raises(ValueError, match="floor"):
        ContextualPolicy.prior(arms=ARMS, floor=0.5)


def test_logged_propensity_is_the_probability_the_arm_was_chosen_with():
    # given a policy that has learnt something (unequal probabilities)
    policy = _learnt_policy(rounds=1_000)
    context = {"device": "mobile", "hour": 9}

    # when choosing with many seeds
    choices = [policy.choose_seeded(context, seed) for seed in range(6_000)]

    # then inverse-propensity weights are unbiased: E[1{arm = a} / propensity] = 1 for every arm
    for arm in ARMS:
        weighted = np.mean([1.0 / propensity if chosen == arm else 0.0 for chosen, propensity in choices])
        assert weighted == pytest.approx(1.0, abs=0.1)
    # and the propensity is the one action_probabilities gives for that seed's draws
    seed = 17
    chosen, propensity = policy.choose_seeded(context, seed)
    assert propensity == policy.action_probabilities(context, np.random.default_rng(seed))[chosen]


def test_update_adds_each_rewarded_decision_to_its_arms_precision_and_b_as_ridge_regression_does():
    # given
    policy = ContextualPolicy.prior(arms=ARMS, floor=0.0, prior_precision=2.0)
    decisions = [
        LoggedDecision(context={"device": "mobile"}, seed=1, arm="hybrid", reward=1.0),
        LoggedDecision(context={"device": "desktop"}, seed=2, arm="hybrid", reward=0.0),
        LoggedDecision(context={"device": "desktop"}, seed=3, arm="hybrid", reward=1.0),
        LoggedDecision(context={"device": "mobile", "segment": "vip"}, seed=4, arm="trending", reward=3.0),
        LoggedDecision(context={"device": "mobile"}, seed=5, arm="popularity", reward=None),  # not yet rewarded
    ]

    # when
    learnt = policy.update(decisions)

    # then the features grew in sorted order after the intercept
    assert learnt.features == ("bias", "device=desktop", "device=mobile", "segment=vip")
    design = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=float)
    rewards = np.array([1.0, 0.0, 1.0])
    hybrid = learnt.models["hybrid"]
    np.testing.assert_allclose(hybrid.precision, 2.0 * np.eye(4) + design.T @ design)
    np.testing.assert_allclose(hybrid.b, design.T @ rewards)
    # the posterior mean is the ridge regression's coefficients (penalty = prior precision, no intercept term)
    ridge = Ridge(alpha=2.0, fit_intercept=False).fit(design, rewards)
    means = learnt.reward_distribution({"device": "desktop"})
    assert means["hybrid"][0] == pytest.approx(float(ridge.predict([[1, 1, 0, 0]])[0]))
    # an arm without rewarded decisions keeps its prior
    np.testing.assert_allclose(learnt.models["popularity"].precision, 2.0 * np.eye(4))
    assert learnt.reward_count == 4


def test_update_estimates_the_noise_variance_shrunk_towards_its_prior():
    # given
    policy = ContextualPolicy.prior(arms=ARMS, floor=0.0, noise_variance=0.25)
    rewards = [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    decisions = [LoggedDecision(context={}, seed=i, arm="hybrid", reward=r) for i, r in enumerate(rewards)]

    # when
    learnt = policy.update(decisions)

    # then
    squared_deviations = float(np.sum((np.array(rewards) - np.mean(rewards)) ** 2))
    expected = (NOISE_PRIOR_WEIGHT * 0.25 + squared_deviations) / (NOISE_PRIOR_WEIGHT + len(rewards))
    assert learnt.noise_variance == pytest.approx(expected)


def test_update_refuses_decisions_of_unknown_arms_and_ignores_unrewarded_ones():
    # given
    policy = ContextualPolicy.prior(arms=ARMS, floor=0.0)

    # when / then
    with pytest.raises(ValueError, match="arms this policy does not have"):
        policy.update([LoggedDecision(context={}, seed=1, arm="mystery", reward=1.0)])
    assert policy.update([LoggedDecision(context={}, seed=1, arm="hybrid")]) is policy


def test_update_stops_adding_features_at_the_cap():
    # given a storefront sending a new segment with every request
    policy = ContextualPolicy.prior(arms=ARMS, floor=0.0)
    decisions = [
        LoggedDecision(context={"segment": f"s-{i:03d}"}, seed=i, arm="hybrid", reward=1.0) for i in range(200)
    ]

    # when
    learnt = policy.update(decisions)

    # then
    assert len(learnt.features) == MAX_FEATURES
    assert learnt.models["trending"].precision.shape == (MAX_FEATURES, MAX_FEATURES)


def test_a_learnt_policy_prefers_the_best_arm_of_each_context():
    # given / when
    policy = _learnt_policy()

    # then
    mobile = policy.action_probabilities({"device": "mobile", "hour": 10}, np.random.default_rng(1))
    desktop = policy.action_probabilities({"device": "desktop", "hour": 10}, np.random.default_rng(1))
    assert mobile["popularity"] > 0.9
    assert desktop["hybrid"] > 0.9
    assert min(mobile.values()) >= 0.02


def test_state_round_trips_through_json_and_replays_the_logged_choices():
    # given a learnt policy and decisions it made
    policy = _learnt_policy(rounds=1_000)
    contexts = [{"device": d, "hour": h, "segment": "vip"} for d in ("mobile", "desktop") for h in (1, 13, 20)]
    logged = []
    for seed, context in enumerate(contexts * 5, start=1_000):
        arm, propensity = policy.choose_seeded(context, seed)
        logged.append(LoggedDecision(context=context, seed=seed, arm=arm, propensity=propensity))

    # when the state went through JSON text (as the database stores it)
    stored = json.loads(json.dumps(policy.to_json()))
    replayed = replay(stored, logged)

    # then
    assert replayed == [decision.arm for decision in logged]
    assert ContextualPolicy.from_json(stored).to_json() == policy.to_json()
    assert len(set(replayed)) > 1


def test_from_json_refuses_an_unknown_version():
    # given
    stored = ContextualPolicy.prior(arms=ARMS, floor=0.0).to_json() | {"version": 99}

    # when / then
    with pytest.raises(ValueError, match="version"):
        ContextualPolicy.from_json(stored)
