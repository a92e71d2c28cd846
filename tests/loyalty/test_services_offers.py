from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from events.models import Customer
from events.services import event_batch_ingest
from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_start
from loyalty.models import DecisionReason, IncentiveKind, OfferBudgetDay, OfferDecision
from loyalty.services.offers import (
    incentive_cost,
    offer_code_redeem,
    offer_decide,
    offer_outcomes_record,
)
from tests.events.conftest import make_order
from tests.factories.catalog import ProductFactory
from tests.factories.events import CustomerFactory, OrderFactory, SessionFactory
from tests.factories.funnel import OfferDecisionFactory, OfferSettingsFactory
from tests.loyalty.offers_support import RISK, request_for, stub_collaborators, stub_uplift

pytestmark = pytest.mark.django_db


@pytest.fixture
def uplift(monkeypatch):
    return stub_uplift(monkeypatch)


@pytest.fixture(autouse=True)
def _collaborators(monkeypatch):
    stub_collaborators(monkeypatch)


NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture
def offer_settings(merchant):
    return OfferSettingsFactory(merchant=merchant, exploration_share=0.0, daily_budget=Decimal("1000"))


# --- the uplift policy -------------------------------------------------------------------------------------


def test_the_kind_of_highest_expected_margin_is_offered_with_a_one_time_code(merchant, offer_settings, uplift):
    # given a 100.00 cart of an unknown sku: margin 35.00 at the default rate

    # when
    outcome = offer_decide(merchant=merchant, request=request_for(), now=NOW)

    # then
    decision = outcome.decision
    assert (decision.kind, decision.reason) == (IncentiveKind.PERCENT_10, DecisionReason.BEST_EXPECTED_MARGIN)
    assert decision.value == 10.0
    assert decision.cost == Decimal("10.00")
    assert decision.cart_margin == Decimal("35.00")
    assert decision.code.startswith("RVO-") and len(decision.code) == 12
    assert decision.expires_at == NOW + timedelta(hours=24)
    assert decision.scores["none"] == {"p_order": 0.4, "expected_margin": 14.0}
    assert decision.scores["percent_10"]["expected_margin"] == pytest.approx(0.65 * 25)
    assert decision.expected_uplift == pytest.approx(0.25)
    assert decision.expected_margin_gain == pytest.approx(0.65 * 25 - 14.0)
    assert decision.abandonment_probability == RISK
    assert decision.features["cart_value"] == 100.0
    assert decision.explanation == (
        "10% off: order chance 40% → 65%, +$2.25 expected margin vs no offer; abandonment risk 72%"
    )
    assert OfferBudgetDay.objects.get(merchant=merchant).spent == Decimal("10.00")
    assert set(uplift.asked[0]) == {"none", "free_shipping", "percent_5", "percent_10", "points"}


def test_the_margin_uses_the_product_cost_when_the_catalog_knows_it(merchant, offer_settings, uplift):
    # given a product bought at 90: a 10% discount on 100 would leave nothing
    ProductFactory(merchant=merchant, sku="THIN", price=Decimal("100"), cost=Decimal("90"))

    # when
    decision = offer_decide(merchant=merchant, request=request_for(sku="THIN"), now=NOW).decision

    # then: 0.40·10 = 4.00 without offer beats 0.44·(10 − 2) = 3.52 with points and every other kind
    assert decision.cart_margin == Decimal("10.00")
    assert (decision.kind, decision.reason) == (IncentiveKind.NONE, DecisionReason.NO_OFFER_PAYS)
    assert decision.code == ""
    assert decision.explanation.startswith("No offer: the best incentive")
    assert not OfferBudgetDay.objects.filter(merchant=merchant, spent__gt=0).exists()


def test_no_uplift_model_means_no_offer(merchant, offer_settings, uplift):
    # given
    uplift.probabilities = None

    # when
    decision = offer_decide(merchant=merchant, request=request_for(), now=NOW).decision

    # then
    assert (decision.kind, decision.reason) == (IncentiveKind.NONE, DecisionReason.NO_MODEL)
    assert decision.explanation == "No offer: no uplift model trained yet; abandonment risk 72%"


def test_only_the_allowed_kinds_are_considered(merchant, offer_settings, uplift):
    # given
    offer_settings.allowed_kinds = ["free_shipping", "points"]
    offer_settings.save()

    # when
    decision = offer_decide(merchant=merchant, request=request_for(), now=NOW).decision

    # then: points 0.44·33 = 14.52 beats none 14.00 and free shipping 0.42·28.05
    assert decision.kind == IncentiveKind.POINTS
    assert decision.value == 200.0
    assert set(decision.scores) == {"none", "free_shipping", "points"}


def test_a_kind_the_model_was_not_trained_on_is_not_scored(merchant, offer_settings, uplift):
    # given a model that knows only none and free shipping (points allowed after it was trained)
    uplift.probabilities = {"none": 0.40, "free_shipping": 0.60}

    # when
    decision = offer_decide(merchant=merchant, request=request_for(), now=NOW).decision

    # then
    assert decision.kind == IncentiveKind.FREE_SHIPPING
    assert set(decision.scores) == {"none", "free_shipping"}


@pytest.mark.parametrize(
    ("kind", "cost"),
    [("percent_5", "4.00"), ("percent_10", "8.00"), ("free_shipping", "6.95"), ("points", "2.00"), ("none", "0.00")],
)
def test_incentive_costs(merchant, offer_settings, kind, cost):
    # when / then
    assert incentive_cost(kind=kind, cart_value=Decimal("80.00"), settings=offer_settings) == Decimal(cost)


# --- who gets nothing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("trait", [{"personalization_opt_out": True}, {"erased_at": NOW - timedelta(days=1)}])
def test_opted_out_and_erased_customers_get_no_offer_and_nothing_about_them_is_kept(
    merchant, offer_settings, uplift, trait
):
    # given
    CustomerFactory(merchant=merchant, external_id="user-1", **trait)

    # when
    decision = offer_decide(merchant=merchant, request=request_for(), now=NOW).decision

    # then
    assert (decision.kind, decision.reason) == (IncentiveKind.NONE, DecisionReason.OPTED_OUT)
    assert decision.features == {}
    assert decision.abandonment_probability is None
    assert uplift.asked == []


def test_switched_off_offers_log_a_disabled_decision(merchant, offer_settings, uplift):
    # given
    offer_settings.enabled = False
    offer_settings.save()

    # when
    decision = offer_decide(merchant=merchant, request=request_for(), now=NOW).decision

    # then
    assert (decision.kind, decision.reason) == (IncentiveKind.NONE, DecisionReason.DISABLED)
    assert OfferDecision.objects.filter(merchant=merchant).count() == 1


def test_a_new_anonymous_shopper_is_created_as_the_ingest_would(merchant, offer_settings, uplift):
    # when
    decision = offer_decide(merchant=merchant, request=request_for(user_id=None, anonymous_id="anon-9"), now=NOW)

    # then
    customer = decision.decision.customer
    assert customer.external_id is None
    assert Customer.objects.filter(merchant=merchant, anonymous_identities__anonymous_id="anon-9").get() == customer


# --- exploration ---------------------------------------------------------------------------------------------


def test_exploration_draws_every_kind_uniformly_with_its_propensity(merchant, offer_settings, uplift):
    # given every decision explores, with room for every offer
    offer_settings.exploration_share = 1.0
    offer_settings.max_offers_per_customer = 1000
    offer_settings.save()

    # when
    decisions = [
        offer_decide(merchant=merchant, request=request_for(f"cart-{n}", user_id=f"user-{n % 7}"), now=NOW).decision
        for n in range(100)
    ]

    # then: 5 arms ("none" included), about 20 each
    counts = Counter(decision.kind for decision in decisions)
    assert set(counts) == set(IncentiveKind.values)
    assert all(8 <= count <= 36 for count in counts.values()), counts
    assert all(decision.randomized and decision.propensity == pytest.approx(0.2) for decision in decisions)
    assert {decision.reason for decision in decisions} == {DecisionReason.EXPLORATION}
    assert uplift.asked == []


# --- experiment arms -----------------------------------------------------------------------------------------


def test_the_experiment_arm_fixes_the_policy_and_is_recorded(merchant, offer_settings, uplift):
    # given
    variants = [
        VariantSpec(key="control", name="No offers", weight=0.5, config={"policy": "none"}),
        VariantSpec(key="blanket", name="10% for all", weight=0.5, config={"policy": "blanket", "kind": "percent_10"}),
    ]
    experiment = experiment_create(
        merchant=merchant, key="offers-test", name="Offers", variants=variants, surface="offers"
    )
    experiment_start(experiment=experiment, actor=None, now=timezone.now() - timedelta(days=1))

    # when
    decisions = [
        offer_decide(merchant=merchant, request=request_for(f"cart-{n}", user_id=f"user-{n}")).decision
        for n in range(12)
    ]

    # then
    arms = {decision.variant_key: set() for decision in decisions}
    for decision in decisions:
        arms[decision.variant_key].add((decision.kind, decision.reason))
        assert decision.experiment_key == "offers-test"
    assert arms == {
        "control": {(IncentiveKind.NONE, DecisionReason.EXPERIMENT_ARM)},
        "blanket": {(IncentiveKind.PERCENT_10, DecisionReason.EXPERIMENT_ARM)},
    }
    assert uplift.asked == []


# --- caps and budget -----------------------------------------------------------------------------------------


def test_the_customer_cap_stops_offers_within_the_window_only(merchant, offer_settings, uplift):
    # given one offer allowed per 7 days
    first = offer_decide(merchant=merchant, request=request_for("cart-1"), now=NOW).decision

    # when
    capped = offer_decide(merchant=merchant, request=request_for("cart-2"), now=NOW + timedelta(days=6)).decision
    later = offer_decide(merchant=merchant, request=request_for("cart-3"), now=NOW + timedelta(days=8)).decision

    # then
    assert first.kind == IncentiveKind.PERCENT_10
    assert (capped.kind, capped.reason) == (IncentiveKind.NONE, DecisionReason.CUSTOMER_CAP)
    assert later.kind == IncentiveKind.PERCENT_10


def test_a_tight_budget_falls_back_to_the_next_best_kind_then_to_none(merchant, offer_settings, uplift):
    # given 13.00 a day: one 10% off (10.00), then only the 2.00 points fit, then nothing that pays
    offer_settings.daily_budget = Decimal("13.00")
    offer_settings.max_offers_per_customer = 10
    offer_settings.save()

    # when
    kinds = [offer_decide(merchant=merchant, request=request_for(f"cart-{n}"), now=NOW).decision for n in range(4)]

    # then
    assert [(d.kind, d.reason) for d in kinds] == [
        (IncentiveKind.PERCENT_10, DecisionReason.BEST_EXPECTED_MARGIN),
        (IncentiveKind.POINTS, DecisionReason.BEST_EXPECTED_MARGIN),
        (IncentiveKind.NONE, DecisionReason.BUDGET_EXHAUSTED),
        (IncentiveKind.NONE, DecisionReason.BUDGET_EXHAUSTED),
    ]
    day = OfferBudgetDay.objects.get(merchant=merchant)
    assert (day.spent, day.offers) == (Decimal("12.00"), 2)


def test_the_budget_day_is_the_shops_day(merchant, offer_settings, uplift):
    # given a shop in Los Angeles, deciding at 03:00 UTC (still the day before there)
    merchant.timezone = "America/Los_Angeles"
    merchant.save()

    # when
    offer_decide(merchant=merchant, request=request_for(), now=datetime(2026, 11, 20, 3, 0, tzinfo=UTC))

    # then
    assert OfferBudgetDay.objects.get(merchant=merchant).day.isoformat() == "2026-11-19"


def test_a_storefront_retry_gets_the_same_decision_and_spends_once(merchant, offer_settings, uplift):
    # given
    first = offer_decide(merchant=merchant, request=request_for(), now=NOW).decision

    # when
    retried = offer_decide(merchant=merchant, request=request_for(), now=NOW + timedelta(minutes=1)).decision

    # then
    assert retried.pk == first.pk
    assert OfferDecision.objects.filter(merchant=merchant).count() == 1
    assert OfferBudgetDay.objects.get(merchant=merchant).spent == Decimal("10.00")


def test_a_recovery_decision_does_not_stack_a_second_offer_on_a_cart(merchant, offer_settings, uplift):
    # given an onsite offer still out for the cart
    offer_settings.max_offers_per_customer = 10
    offer_settings.save()
    offer_decide(merchant=merchant, request=request_for(), now=NOW)

    # when
    recovery = offer_decide(merchant=merchant, request=request_for(channel="recovery"), now=NOW + timedelta(hours=1))

    # then
    assert (recovery.decision.kind, recovery.decision.reason) == (IncentiveKind.NONE, DecisionReason.ALREADY_DECIDED)


# --- one-time codes ------------------------------------------------------------------------------------------


def test_a_code_is_redeemed_once_by_the_first_order(merchant):
    # given
    offer = OfferDecisionFactory(merchant=merchant, decided_at=NOW)
    first, second = OrderFactory(merchant=merchant), OrderFactory(merchant=merchant)

    # when
    redeemed = offer_code_redeem(merchant=merchant, code=offer.code.lower(), order_id=first.pk, at=NOW)
    again_same_order = offer_code_redeem(merchant=merchant, code=offer.code, order_id=first.pk, at=NOW)
    other_order = offer_code_redeem(merchant=merchant, code=offer.code, order_id=second.pk, at=NOW)

    # then
    assert redeemed.pk == offer.pk
    assert again_same_order.pk == offer.pk
    assert other_order is None
    offer.refresh_from_db()
    assert (offer.redeemed_order_id, offer.redeemed_at) == (first.pk, NOW)


def test_expired_unknown_and_other_merchants_codes_are_refused(merchant, other_merchant):
    # given
    offer = OfferDecisionFactory(merchant=merchant, decided_at=NOW)
    theirs = OfferDecisionFactory(merchant=other_merchant, decided_at=NOW)
    order = OrderFactory(merchant=merchant)

    # when / then
    assert offer_code_redeem(merchant=merchant, code=offer.code, order_id=order.pk, at=NOW + timedelta(days=2)) is None
    assert offer_code_redeem(merchant=merchant, code="RVO-NOSUCH00", order_id=order.pk, at=NOW) is None
    assert offer_code_redeem(merchant=merchant, code=theirs.code, order_id=order.pk, at=NOW) is None
    theirs.refresh_from_db()
    assert theirs.redeemed_order_id is None


# --- outcomes from the ingest --------------------------------------------------------------------------------


def test_ingested_orders_redeem_their_coupon_and_convert_the_sessions_decision(merchant, offer_settings, uplift):
    # given an offer decided for session "sess-1" of anon-1, before any event of the session arrived
    ProductFactory(merchant=merchant, sku="SKU-1", external_id="pid-1")
    request = request_for(user_id=None, anonymous_id="anon-1", session_id="sess-1")
    offer = offer_decide(merchant=merchant, request=request, now=timezone.now() - timedelta(hours=2)).decision
    order = make_order("order-1")
    order["properties"]["coupon"] = offer.code

    # when
    event_batch_ingest(merchant=merchant, events=[order])

    # then
    offer.refresh_from_db()
    assert offer.redeemed_order is not None
    assert offer.redeemed_order.external_id == "order-1"
    assert offer.converted_order_id == offer.redeemed_order_id


def test_the_first_order_of_the_session_is_the_outcome_and_earlier_orders_are_not(merchant):
    # given
    customer = CustomerFactory(merchant=merchant)
    session = SessionFactory(merchant=merchant, customer=customer, external_id="s-1")
    decision = OfferDecisionFactory(
        merchant=merchant, customer=customer, session=session, decided_at=NOW, kind="none", code="", expires_at=None
    )
    before = OrderFactory(merchant=merchant, customer=customer, session=session, placed_at=NOW - timedelta(hours=1))
    first = OrderFactory(merchant=merchant, customer=customer, session=session, placed_at=NOW + timedelta(minutes=5))
    second = OrderFactory(merchant=merchant, customer=customer, session=session, placed_at=NOW + timedelta(minutes=9))

    # when
    touched = offer_outcomes_record(merchant=merchant, order_ids=[second.pk, before.pk, first.pk])
    touched_again = offer_outcomes_record(merchant=merchant, order_ids=[second.pk])

    # then
    decision.refresh_from_db()
    assert decision.converted_order_id == first.pk
    assert (touched, touched_again) == (1, 0)


def test_another_customers_order_does_not_convert_a_decision(merchant):
    # given
    decision = OfferDecisionFactory(merchant=merchant, decided_at=NOW)
    stranger = OrderFactory(merchant=merchant, placed_at=NOW + timedelta(minutes=5))

    # when
    touched = offer_outcomes_record(merchant=merchant, order_ids=[stranger.pk])

    # then
    decision.refresh_from_db()
    assert decision.converted_order_id is None
    assert touched == 0
