"""The shop's own free-shipping threshold in the incentive decision (loyalty/services/offers.py `offer_decide`):
a cart at or above it already ships free, so neither the uplift model, the exploration draw nor an experiment
arm offers it free shipping. Kept apart from test_services_offers.py, which another change edits."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_start
from loyalty.models import DecisionReason, IncentiveKind
from loyalty.services.offers import offer_decide, offer_settings_save
from revopt.tenancy.models import AuditLogEntry
from tests.factories.funnel import OfferSettingsFactory
from tests.loyalty.offers_support import request_for, stub_collaborators, stub_uplift

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
# On these carts (35% margin m) free shipping pays most, 0.75·(m − 6.95); without it 10% off, 0.60·(m − value/10):
# on 75.00, 14.48 and 11.25 against 10.50 for no offer, 10.13 for 5% off and 9.94 for points.
FREE_SHIPPING_WINS = {"none": 0.40, "free_shipping": 0.75, "percent_5": 0.45, "percent_10": 0.60, "points": 0.41}


@pytest.fixture
def uplift(monkeypatch):
    stub = stub_uplift(monkeypatch)
    stub.probabilities = dict(FREE_SHIPPING_WINS)
    return stub


@pytest.fixture(autouse=True)
def _collaborators(monkeypatch):
    stub_collaborators(monkeypatch)


@pytest.fixture
def offer_settings(merchant):
    return OfferSettingsFactory(
        merchant=merchant,
        exploration_share=0.0,
        daily_budget=Decimal("100000"),
        max_offers_per_customer=100000,
        free_shipping_threshold=Decimal("75.00"),
    )


# --- the uplift model's choice -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["75.00", "100.00"])
def test_a_cart_at_or_above_the_threshold_is_never_offered_free_shipping_by_the_model(
    merchant, offer_settings, uplift, value
):
    # when
    decision = offer_decide(merchant=merchant, request=request_for(value=value), now=NOW).decision

    # then: the next best kind (10% off), free shipping neither asked of the model nor scored
    assert (decision.kind, decision.reason) == (IncentiveKind.PERCENT_10, DecisionReason.BEST_EXPECTED_MARGIN)
    assert uplift.asked == [("none", "percent_5", "percent_10", "points")]
    assert "free_shipping" not in decision.scores
    assert decision.explanation.endswith(f"; already ships free: cart ${value} ≥ threshold $75.00")


def test_a_cart_just_under_the_threshold_can_be_offered_free_shipping(merchant, offer_settings, uplift):
    # when
    decision = offer_decide(merchant=merchant, request=request_for(value="74.99"), now=NOW).decision

    # then
    assert (decision.kind, decision.reason) == (IncentiveKind.FREE_SHIPPING, DecisionReason.BEST_EXPECTED_MARGIN)
    assert decision.cost == Decimal("6.95")
    assert decision.code.startswith("RVO-")
    assert decision.explanation.endswith("; $0.01 short of free shipping (threshold $75.00)")


def test_without_a_threshold_the_decision_is_what_it_always_was(merchant, offer_settings, uplift):
    # given
    offer_settings.free_shipping_threshold = None
    offer_settings.save()

    # when
    decision = offer_decide(merchant=merchant, request=request_for(value="400.00"), now=NOW).decision

    # then
    assert decision.kind == IncentiveKind.FREE_SHIPPING
    assert set(uplift.asked[0]) == set(IncentiveKind.values)
    assert decision.explanation == (
        "Free shipping: order chance 40% → 75%, +$43.79 expected margin vs no offer; abandonment risk 72%"
    )


def test_a_qualifying_cart_where_free_shipping_is_the_only_incentive_gets_none_saying_why(
    merchant, offer_settings, uplift
):
    # given every decision would explore
    offer_settings.allowed_kinds = ["free_shipping"]
    offer_settings.exploration_share = 1.0
    offer_settings.save()

    # when
    decision = offer_decide(merchant=merchant, request=request_for(value="82.00"), now=NOW).decision

    # then: no draw with a single possible arm, no model asked
    assert (decision.kind, decision.reason) == (IncentiveKind.NONE, DecisionReason.ALREADY_SHIPS_FREE)
    assert decision.explanation == "No offer: already ships free: cart $82.00 ≥ threshold $75.00; abandonment risk 72%"
    assert (decision.randomized, decision.propensity) == (False, None)
    assert decision.code == ""
    assert uplift.asked == []


def test_a_decision_that_never_looked_at_the_cart_says_nothing_of_the_threshold(merchant, offer_settings, uplift):
    # given
    offer_settings.enabled = False
    offer_settings.save()

    # when
    decision = offer_decide(merchant=merchant, request=request_for(value="82.00"), now=NOW).decision

    # then
    assert (decision.kind, decision.reason) == (IncentiveKind.NONE, DecisionReason.DISABLED)
    assert decision.explanation == "No offer: offers switched off"


# --- exploration ---------------------------------------------------------------------------------------------


def _explore(merchant, *, value: str, count: int) -> list:
    return [
        offer_decide(
            merchant=merchant, request=request_for(f"cart-{value}-{n}", user_id=f"user-{n % 9}", value=value), now=NOW
        ).decision
        for n in range(count)
    ]


def test_exploration_on_a_qualifying_cart_draws_uniformly_among_the_other_arms_with_their_true_propensity(
    merchant, offer_settings, uplift
):
    # given every decision explores
    offer_settings.exploration_share = 1.0
    offer_settings.save()

    # when
    decisions = _explore(merchant, value="90.00", count=120)

    # then: 4 arms ("none" included), about 30 each, each recorded with probability 1/4
    counts = Counter(decision.kind for decision in decisions)
    assert set(counts) == {"none", "percent_5", "percent_10", "points"}
    assert all(15 <= count <= 45 for count in counts.values()), counts
    assert all(decision.randomized and decision.propensity == pytest.approx(0.25) for decision in decisions)
    assert {decision.reason for decision in decisions} == {DecisionReason.EXPLORATION}
    assert uplift.asked == []


def test_exploration_below_the_threshold_still_draws_free_shipping_among_five_arms(merchant, offer_settings, uplift):
    # given
    offer_settings.exploration_share = 1.0
    offer_settings.save()

    # when
    decisions = _explore(merchant, value="60.00", count=60)

    # then
    assert Counter(decision.kind for decision in decisions)[IncentiveKind.FREE_SHIPPING] > 0
    assert all(decision.propensity == pytest.approx(0.2) for decision in decisions)


# --- experiment arms -----------------------------------------------------------------------------------------


def test_a_blanket_free_shipping_arm_gives_a_qualifying_cart_nothing_and_keeps_it_in_the_arm(
    merchant, offer_settings, uplift
):
    # given
    variants = [
        VariantSpec(key="control", name="No offers", weight=0.5, config={"policy": "none"}),
        VariantSpec(key="shipping", name="Free shipping for all", weight=0.5,
                    config={"policy": "blanket", "kind": "free_shipping"}),
    ]  # fmt: skip
    experiment = experiment_create(
        merchant=merchant, key="shipping-test", name="Shipping", variants=variants, surface="offers"
    )
    experiment_start(experiment=experiment, actor=None, now=timezone.now() - timedelta(days=1))

    # when: the same shoppers with a qualifying cart and, later, a small one
    big = [
        offer_decide(merchant=merchant, request=request_for(f"big-{n}", user_id=f"user-{n}", value="80.00")).decision
        for n in range(12)
    ]
    small = [
        offer_decide(merchant=merchant, request=request_for(f"small-{n}", user_id=f"user-{n}", value="40.00")).decision
        for n in range(12)
    ]

    # then
    def arms(decisions: list) -> dict:
        seen: dict[str, set] = {}
        for decision in decisions:
            seen.setdefault(decision.variant_key, set()).add((decision.kind, decision.reason))
        return seen

    assert arms(big) == {
        "control": {(IncentiveKind.NONE, DecisionReason.EXPERIMENT_ARM)},
        "shipping": {(IncentiveKind.NONE, DecisionReason.ALREADY_SHIPS_FREE)},
    }
    assert arms(small) == {
        "control": {(IncentiveKind.NONE, DecisionReason.EXPERIMENT_ARM)},
        "shipping": {(IncentiveKind.FREE_SHIPPING, DecisionReason.EXPERIMENT_ARM)},
    }
    assert all(decision.experiment_key == "shipping-test" for decision in big)
    shipped_free = next(decision for decision in big if decision.variant_key == "shipping")
    assert shipped_free.explanation.startswith("No offer: already ships free: cart $80.00 ≥ threshold $75.00")
    assert uplift.asked == []


# --- settings ------------------------------------------------------------------------------------------------


def test_saving_the_threshold_is_audited(merchant):
    # given
    settings = OfferSettingsFactory(merchant=merchant)
    settings.free_shipping_threshold = Decimal("75.00")

    # when
    offer_settings_save(settings=settings, actor=None)

    # then
    entry = AuditLogEntry.objects.get(merchant=merchant, action="offers.settings_changed")
    assert entry.detail["free_shipping_threshold"] == "75.00"
