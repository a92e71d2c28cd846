from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from freezegun import freeze_time

from events.models import OrderStatus
from experiments.models import (
    AllocationChange,
    AllocationSource,
    ContextualDecision,
    ContextualModelState,
    ExperimentKind,
    ExperimentStatus,
    Exposure,
    Variant,
)
from experiments.services.assignment import assignments_for_unit
from experiments.services.bandits import (
    bandit_allocation_replay,
    bandit_reallocate,
    contextual_bandit_learn,
    contextual_decision_make,
    contextual_decisions_replay,
    contextual_model_update,
    contextual_rewards_attribute,
    reallocation_seed,
)
from experiments.services.lifecycle import ExperimentTransitionError, ExperimentValidationError
from experiments.tasks import bandits_reallocate_running, contextual_bandits_update_running
from revopt.tenancy.models import AuditLogEntry
from tests.factories.events import CustomerFactory, OrderFactory, OrderLineFactory
from tests.factories.experiments import ExposureFactory, experiment_with_variants

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, tzinfo=UTC)
NOW = START + timedelta(days=7)
HOUR = timedelta(hours=1)


def _bandit(merchant, **fields):
    defaults = {
        "merchant": merchant,
        "kind": ExperimentKind.BANDIT,
        "status": ExperimentStatus.RUNNING,
        "started_at": START,
        "reward_metric": "conversion",
        "arm_floor": 0.1,
        "key": "hero-banner",
    }
    return experiment_with_variants(**(defaults | fields))


def _order(merchant, customer, at, total="80.00", status=OrderStatus.COMPLETED):
    return OrderFactory(
        merchant=merchant, customer=customer, placed_at=at, total=Decimal(total), subtotal=Decimal(total), status=status
    )


def _expose(experiment, variant_key, count, *, converting, total="80.00"):
    """`count` units exposed to the variant on day one; the first `converting` order two days later."""
    variant = experiment.variants.get(key=variant_key)
    for i in range(count):
        customer = CustomerFactory(merchant=experiment.merchant, external_id=f"{experiment.key}-{variant_key}-{i}")
        ExposureFactory(variant=variant, customer=customer, exposed_at=START + HOUR)
        if i < converting:
            _order(experiment.merchant, customer, START + timedelta(days=2), total=total)


@pytest.fixture
def bandit_shop(merchant):
    """60 units per arm: the control converts 3 of them, the variant 15."""
    experiment = _bandit(merchant)
    _expose(experiment, "control", 60, converting=3)
    _expose(experiment, "variant-1", 60, converting=15)
    return experiment


# --- Thompson sampling reallocation ------------------------------------------------------------------


def test_reallocation_moves_traffic_to_the_better_arm_and_logs_posterior_and_seed(bandit_shop):
    # given
    before = dict(Exposure.objects.filter(experiment=bandit_shop).values_list("customer_id", "variant__key"))

    # when
    change = bandit_reallocate(experiment=bandit_shop, now=NOW)

    # then P(variant-1 best) > 0.9, so the control is held at its 10% floor
    assert change.source == AllocationSource.BANDIT
    assert change.effective_at == NOW
    assert change.weights == {"control": 0.1, "variant-1": 0.9}
    assert dict(Variant.objects.filter(experiment=bandit_shop).values_list("key", "weight")) == change.weights
    assert change.detail["arms"] == {
        "control": {"kind": "beta", "alpha": 4.0, "beta": 58.0},
        "variant-1": {"kind": "beta", "alpha": 16.0, "beta": 46.0},
    }
    assert change.detail["seed"] == reallocation_seed(experiment_id=bandit_shop.pk, now=NOW)
    assert change.detail["units"] == {"control": 60, "variant-1": 60}
    assert (change.detail["draws"], change.detail["floor"]) == (10_000, 0.1)
    # already exposed units keep their arm
    after = dict(Exposure.objects.filter(experiment=bandit_shop).values_list("customer_id", "variant__key"))
    assert after == before
    assert AuditLogEntry.objects.filter(action="experiment.weights_update", target_id=str(bandit_shop.pk)).exists()


def test_after_a_reallocation_new_units_follow_the_new_weights_and_exposed_units_stay(bandit_shop):
    # given
    bandit_reallocate(experiment=bandit_shop, now=NOW)

    # when 400 new visitors and 20 of the already exposed ones ask for their assignment
    new = [
        assignments_for_unit(merchant=bandit_shop.merchant, anonymous_id=f"new-{i}", at=NOW + HOUR)[0]
        for i in range(400)
    ]
    exposed = [
        assignments_for_unit(
            merchant=bandit_shop.merchant, customer_external_id=f"hero-banner-control-{i}", at=NOW + HOUR
        )[0]
        for i in range(20)
    ]

    # then about 90% of the new ones get the variant; the exposed ones keep the control
    shares = Counter(assignment.variant_key for assignment in new)
    assert 0.85 < shares["variant-1"] / 400 < 0.95
    assert {(a.variant_key, a.reason) for a in exposed} == {("control", "sticky")}


def test_reallocation_replays_to_the_stored_weights(bandit_shop):
    # given
    change = bandit_reallocate(experiment=bandit_shop, now=NOW, seed=42)
    stored = AllocationChange.objects.get(pk=change.pk)

    # when
    replayed = bandit_allocation_replay(change=stored)

    # then
    assert stored.detail["seed"] == 42
    assert replayed == stored.weights


def test_reallocation_of_revenue_uses_normal_inverse_gamma_arms_and_replays(merchant):
    # given the same conversion but the variant's buyers spend three times as much
    experiment = _bandit(merchant, reward_metric="revenue_per_user", winsorize_percentile=1.0)
    _expose(experiment, "control", 50, converting=10, total="40.00")
    _expose(experiment, "variant-1", 50, converting=10, total="120.00")

    # when
    change = bandit_reallocate(experiment=experiment, now=NOW)

    # then
    assert change.detail["arms"]["variant-1"]["kind"] == "normal_inverse_gamma"
    assert change.detail["arms"]["variant-1"]["n"] == 50
    assert change.weights["variant-1"] > change.weights["control"]
    assert bandit_allocation_replay(change=AllocationChange.objects.get(pk=change.pk)) == change.weights


def test_reallocation_is_idempotent_for_the_same_time_and_seeds_differ_over_time(bandit_shop):
    # given
    first = bandit_reallocate(experiment=bandit_shop, now=NOW)

    # when
    again = bandit_reallocate(experiment=bandit_shop, now=NOW)
    later = bandit_reallocate(experiment=bandit_shop, now=NOW + HOUR)

    # then
    assert again.pk == first.pk
    assert later.detail["seed"] != first.detail["seed"]
    assert AllocationChange.objects.filter(experiment=bandit_shop, source=AllocationSource.BANDIT).count() == 2


def test_reallocation_refuses_what_is_not_a_running_bandit_with_a_proportion_or_mean_reward(merchant):
    # given
    draft = _bandit(merchant, key="draft", status=ExperimentStatus.DRAFT)
    ab_test = _bandit(merchant, key="ab", kind=ExperimentKind.AB)
    ratio_reward = _bandit(merchant, key="aov", reward_metric="aov")

    # when / then
    with pytest.raises(ExperimentTransitionError):
        bandit_reallocate(experiment=draft, now=NOW)
    with pytest.raises(ExperimentValidationError) as not_a_bandit:
        bandit_reallocate(experiment=ab_test, now=NOW)
    assert not_a_bandit.value.field == "kind"
    with pytest.raises(ExperimentValidationError) as bad_reward:
        bandit_reallocate(experiment=ratio_reward, now=NOW)
    assert bad_reward.value.field == "reward_metric"
    assert not AllocationChange.objects.filter(source=AllocationSource.BANDIT).exists()


def test_reallocation_reads_only_its_own_merchants_units(bandit_shop, other_merchant):
    # given another merchant's bandit with the same key where the control wins
    other = _bandit(other_merchant)
    _expose(other, "control", 60, converting=20)
    _expose(other, "variant-1", 60, converting=1)

    # when
    change = bandit_reallocate(experiment=bandit_shop, now=NOW)
    other_change = bandit_reallocate(experiment=other, now=NOW)

    # then
    assert change.detail["arms"]["variant-1"] == {"kind": "beta", "alpha": 16.0, "beta": 46.0}
    assert other_change.weights == {"control": 0.9, "variant-1": 0.1}
    assert change.merchant_id != other_change.merchant_id


@freeze_time("2025-03-08 10:40:00+00:00")
def test_scheduled_reallocation_covers_running_bandits_only_and_once_per_hour(bandit_shop, merchant):
    # given a draft bandit and a running A/B test beside the running bandit
    _bandit(merchant, key="draft-bandit", status=ExperimentStatus.DRAFT)
    _bandit(merchant, key="plain-ab", kind=ExperimentKind.AB)

    # when the beat task runs, and is retried
    started = bandits_reallocate_running()
    bandits_reallocate_running()

    # then
    changes = AllocationChange.objects.filter(source=AllocationSource.BANDIT)
    assert started == 1
    assert [(c.experiment_id, c.effective_at) for c in changes] == [
        (bandit_shop.pk, datetime(2025, 3, 8, 10, tzinfo=UTC))
    ]


# --- contextual bandit -------------------------------------------------------------------------------


@pytest.fixture
def contextual(merchant):
    merchant.timezone = "Europe/Berlin"
    merchant.save(update_fields=["timezone"])
    return _bandit(
        merchant,
        key="cart-offer",
        kind=ExperimentKind.CONTEXTUAL_BANDIT,
        weights=(0.5, 0.5),
        arm_floor=0.05,
    )


def test_a_decision_is_logged_with_its_context_propensity_seed_and_the_prior_state(contextual):
    # given
    customer = CustomerFactory(merchant=contextual.merchant)

    # when
    decision = contextual_decision_make(
        experiment=contextual, customer=customer, context={"device": "mobile", "nested": {"x": 1}}, at=NOW
    )

    # then the hour is the merchant's local hour (00:00 UTC is 01:00 in Berlin in March)
    decision.refresh_from_db()
    assert decision.context == {"device": "mobile", "hour": 1}
    assert 0.05 <= decision.propensity <= 0.95
    assert decision.variant.experiment_id == contextual.pk
    assert 0 <= decision.seed < 2**63
    state = ContextualModelState.objects.get(experiment=contextual)
    assert decision.model_state == state
    assert state.state["features"] == ["bias"]


def test_a_decision_costs_one_query_and_one_insert_once_the_state_is_known(contextual, django_assert_num_queries):
    # given a first decision (it writes the prior state and reads it)
    customer = CustomerFactory(merchant=contextual.merchant)
    contextual_decision_make(experiment=contextual, customer=customer, context={"device": "mobile"}, at=NOW)

    # when / then
    with django_assert_num_queries(2):
        contextual_decision_make(experiment=contextual, customer=customer, context={"device": "tablet"}, at=NOW)


def test_decisions_replay_from_their_stored_state_and_seed(contextual):
    # given decisions made with a learnt state
    customer = CustomerFactory(merchant=contextual.merchant)
    for i in range(30):
        contextual_decision_make(
            experiment=contextual, customer=customer, context={"device": "mobile"}, at=START + i * HOUR
        )
    ContextualDecision.objects.filter(experiment=contextual, variant__key="variant-1").update(
        reward=1.0, rewarded_at=NOW
    )
    ContextualDecision.objects.filter(experiment=contextual, variant__key="control").update(reward=0.0, rewarded_at=NOW)
    learnt = contextual_model_update(experiment=contextual, now=NOW)
    for i in range(40):
        device = "mobile" if i % 2 else "desktop"
        contextual_decision_make(
            experiment=contextual, customer=customer, context={"device": device}, at=NOW + i * HOUR
        )

    # when
    replayed = contextual_decisions_replay(state=learnt)

    # then
    assert len(replayed) == 40
    assert all(logged == again for _, logged, again in replayed)
    assert len({logged for _, logged, _ in replayed}) == 2


def test_decisions_are_refused_for_a_stopped_or_non_contextual_experiment(contextual, merchant):
    # given
    ab_test = _bandit(merchant, key="ab", kind=ExperimentKind.AB)
    contextual.status = ExperimentStatus.STOPPED
    contextual.save(update_fields=["status"])

    # when / then
    with pytest.raises(ExperimentTransitionError):
        contextual_decision_make(experiment=contextual, customer=None, context={}, at=NOW)
    with pytest.raises(ExperimentValidationError):
        contextual_decision_make(experiment=ab_test, customer=None, context={}, at=NOW)
    assert not ContextualDecision.objects.exists()


def _decide(experiment, customer, at, variant_key="control"):
    decision = contextual_decision_make(experiment=experiment, customer=customer, context={"device": "mobile"}, at=at)
    # The arm is random; pin it so that the test knows which decision an order rewards.
    ContextualDecision.objects.filter(pk=decision.pk).update(variant=experiment.variants.get(key=variant_key))
    return decision


@pytest.mark.parametrize(
    ("metric", "first", "second"),
    [("conversion", 1.0, 1.0), ("revenue_per_user", 100.0, 30.0), ("margin_per_user", 60.0, 30.0)],
)
def test_rewards_go_to_the_last_decision_before_each_order_within_the_window(contextual, metric, first, second):
    # given customer A decided twice an hour apart and ordered after each; B decided and never ordered
    contextual.reward_metric = metric
    contextual.save(update_fields=["reward_metric"])
    merchant = contextual.merchant
    a, b = CustomerFactory(merchant=merchant), CustomerFactory(merchant=merchant)
    t = START
    a_first, a_second = _decide(contextual, a, t), _decide(contextual, a, t + HOUR)
    b_only = _decide(contextual, b, t)
    recent = _decide(contextual, b, NOW - HOUR)  # its window is still open
    order = _order(merchant, a, t + 0.5 * HOUR, total="100.00")
    OrderLineFactory(order=order, quantity=2, unit_cost=Decimal("20.00"))
    _order(merchant, a, t + 2 * HOUR, total="30.00")
    _order(merchant, a, t + 3 * HOUR, total="500.00", status=OrderStatus.REFUNDED)
    _order(merchant, a, t + 30 * HOUR, total="900.00")  # after the window
    _order(merchant, b, t - HOUR, total="70.00")  # before the decision

    # when
    rewarded = contextual_rewards_attribute(experiment=contextual, now=NOW, window_hours=24)

    # then
    rewards = dict(ContextualDecision.objects.values_list("pk", "reward"))
    assert rewarded == 3
    assert rewards == {a_first.pk: first, a_second.pk: second, b_only.pk: 0.0, recent.pk: None}
    assert set(ContextualDecision.objects.exclude(reward=None).values_list("rewarded_at", flat=True)) == {NOW}


def test_model_update_learns_from_rewarded_decisions_once(contextual):
    # given 200 decisions where variant-1 converts on mobile and the control on desktop
    customer = CustomerFactory(merchant=contextual.merchant)
    for i in range(200):
        device = "mobile" if i % 2 else "desktop"
        contextual_decision_make(
            experiment=contextual,
            customer=customer,
            context={"device": device},
            at=START + i * 60 * timedelta(seconds=1),
        )
    decisions = ContextualDecision.objects.filter(experiment=contextual)
    decisions.filter(context__device="mobile", variant__key="variant-1").update(reward=1.0, rewarded_at=NOW)
    decisions.filter(context__device="desktop", variant__key="control").update(reward=1.0, rewarded_at=NOW)
    decisions.filter(reward=None).update(reward=0.0, rewarded_at=NOW)

    # when
    state = contextual_model_update(experiment=contextual, now=NOW)
    again = contextual_model_update(experiment=contextual, now=NOW)

    # then
    assert again.pk == state.pk
    assert state.decisions_used == 200
    assert "device=mobile" in state.state["features"]
    mobile = [
        contextual_decision_make(experiment=contextual, customer=customer, context={"device": "mobile"}, at=NOW + HOUR)
        for _ in range(40)
    ]
    assert all(decision.model_state_id == state.pk for decision in mobile)
    assert Counter(decision.variant.key for decision in mobile)["variant-1"] >= 34


@freeze_time("2025-03-08 10:40:00+00:00")
def test_scheduled_contextual_update_rewards_and_learns_for_this_merchant_only(contextual, other_merchant):
    # given a decision two days ago with an order, and another merchant's contextual bandit
    customer = CustomerFactory(merchant=contextual.merchant)
    _decide(contextual, customer, START + timedelta(days=5))
    _order(contextual.merchant, customer, START + timedelta(days=5, hours=1))
    other = _bandit(other_merchant, key="cart-offer", kind=ExperimentKind.CONTEXTUAL_BANDIT)
    other_customer = CustomerFactory(merchant=other_merchant)
    other_decision = contextual_decision_make(experiment=other, customer=other_customer, context={}, at=START)
    other.status = ExperimentStatus.STOPPED
    other.save(update_fields=["status"])

    # when
    updated = contextual_bandits_update_running()

    # then
    assert updated == 1
    latest = ContextualModelState.objects.filter(experiment=contextual).order_by("-created_at").first()
    assert latest.decisions_used == 1
    assert latest.created_at == datetime(2025, 3, 8, 10, tzinfo=UTC)
    other_decision.refresh_from_db()
    assert other_decision.reward is None
    assert ContextualModelState.objects.filter(experiment=other).count() == 1  # its prior only


def test_learn_rewards_then_updates(contextual):
    # given
    customer = CustomerFactory(merchant=contextual.merchant)
    _decide(contextual, customer, START, variant_key="variant-1")
    _order(contextual.merchant, customer, START + HOUR)

    # when
    state = contextual_bandit_learn(experiment=contextual, now=NOW)

    # then
    assert state.decisions_used == 1
    assert state.state["reward_count"] == 1
    assert state.state["reward_sum"] == 1.0


def test_the_assignment_path_logs_a_contextual_decision_per_request(contextual):
    # given
    merchant = contextual.merchant

    # when the same visitor asks twice
    answers = [
        assignments_for_unit(merchant=merchant, anonymous_id="device-1", attributes={"device": "tablet"}, at=NOW)[0]
        for _ in range(2)
    ]

    # then each request is decided and logged, with no sticky exposure
    decisions = list(ContextualDecision.objects.filter(experiment=contextual).order_by("pk"))
    assert [a.reason for a in answers] == ["decided", "decided"]
    assert [a.variant_key for a in answers] == [d.variant.key for d in decisions]
    assert decisions[0].context["device"] == "tablet"
    assert decisions[0].customer_id is not None
    assert not Exposure.objects.filter(experiment=contextual).exists()
