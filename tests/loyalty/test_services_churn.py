import pickle
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from events.models import Customer, Order
from loyalty import churn
from loyalty.models import (
    CustomerInsight,
    InsightKind,
    InsightRun,
    RetentionCandidate,
    RetentionSettings,
    RewardKind,
    RunStatus,
)
from loyalty.selectors.churn import churn_feature_table, retention_list
from loyalty.services import churn as churn_services
from loyalty.services.churn import (
    NO_OFFER,
    Flagged,
    OfferCosts,
    churn_refresh,
    offer_costs,
    retention_suggestions,
)
from loyalty.services.insights import InsufficientHistory
from revopt.simulator.services import simulation_run
from revopt.simulator.world import WorldConfig
from revopt.tenancy.models import AuditLogEntry
from tests.factories.events import OrderFactory, OrderLineFactory
from tests.factories.loyalty import CustomerInsightFactory, InsightRunFactory, LoyaltyProgramFactory, RewardFactory

pytestmark = pytest.mark.django_db

# 120 days so a 30-day horizon fits twice: training as of day 60, test as of day 90, scoring today. Conversion
# is raised so that about 250 customers have ordered by day 60 (the service asks for 200) on 5,000 sessions.
CHURN_WORLD = WorldConfig(
    seed=7,
    n_sessions=5_000,
    days=120,
    n_products=30,
    n_categories=3,
    n_shoppers=1_100,
    target_cart_rate=0.4,
    target_abandonment=0.4,
    existing_shopper_share=0.6,
)
# Measured on CHURN_WORLD: AUC 0.84 on the later table (a recency-only ranking scores 0.80).
AUC_FLOOR = 0.75
BUDGET = Decimal("40.00")


def test_churn_refresh_on_the_simulator_scores_everyone_and_lists_offers_within_the_budget(merchant):
    # given: a simulated shop, half its customers with marketing consent, a few erased, a 30-day horizon
    simulation_run(merchant=merchant, config=CHURN_WORLD, progress=False)
    RetentionSettings.objects.create(merchant=merchant, churn_horizon_days=30, weekly_budget=BUDGET)
    buyers = Customer.objects.for_merchant(merchant).filter(pk__in=Order.objects.values("customer_id"))
    erased_ids = list(buyers.order_by("pk").values_list("pk", flat=True)[:5])
    erased_scored = CustomerInsightFactory(
        merchant=merchant,
        customer_id=erased_ids[0],
        churn_probability=0.9,
        churn_run=InsightRunFactory(
            merchant=merchant, kind=InsightKind.CHURN, started_at=timezone.now() - timedelta(days=7)
        ),
    )
    Customer.objects.filter(pk__in=erased_ids).update(erased_at=timezone.now())
    for index, customer_id in enumerate(buyers.order_by("pk").values_list("pk", flat=True)):
        Customer.objects.filter(pk=customer_id).update(marketing_consent=index % 2 == 0)

    # when
    run = churn_refresh(merchant=merchant)

    # then: the model ranks well on the later table and the run carries its evaluation
    summary = run.summary
    assert run.status == RunStatus.SUCCEEDED and run.kind == InsightKind.CHURN and run.error == ""
    assert summary["auc"] >= AUC_FLOOR
    assert 0 < summary["precision"] <= 1 and 0 < summary["recall"] <= 1
    assert summary["train_customers"] >= churn_services.MIN_LABELLED_CUSTOMERS
    assert summary["test_customers"] > summary["train_customers"]
    assert len(summary["calibration"]) == 10
    assert sum(row[2] for row in summary["calibration"]) == summary["test_customers"]
    assert summary["brier"] < summary["base_rate"] * (1 - summary["base_rate"])
    assert summary["horizon_days"] == 30
    model = pickle.loads(run.artifact)
    assert isinstance(model, churn.ChurnModel)
    # and every customer is scored with the stored model, the erased never
    table = churn_feature_table(merchant=merchant, as_of=run.as_of, horizon_days=30, labelled=False)
    scores = dict(
        CustomerInsight.objects.for_merchant(merchant)
        .filter(churn_probability__isnull=False)
        .values_list("customer_id", "churn_probability")
    )
    assert set(scores) == set(table.customer_id.tolist()) and run.customers == len(scores)
    assert not set(scores) & set(erased_ids)
    erased_scored.refresh_from_db()
    assert erased_scored.churn_probability is None
    np.testing.assert_allclose([scores[c] for c in table.customer_id.tolist()], churn.churn_score(model, table))
    # and the retention list: flagged customers only, offers within the budget by expected value, consent respected
    candidates = list(RetentionCandidate.objects.for_merchant(merchant).filter(run=run).select_related("customer"))
    offered = [c for c in candidates if c.offer != NO_OFFER]
    assert offered, "nobody was offered anything"
    assert len(candidates) == summary["flagged"]
    assert all(c.churn_probability >= summary["threshold_used"] for c in candidates)
    assert sum(c.offer_cost for c in offered) <= BUDGET
    assert all(c.expected_value > 0 and c.customer.marketing_consent for c in offered)
    assert all(c.offer == NO_OFFER for c in candidates if not c.customer.marketing_consent)
    assert not {c.customer_id for c in candidates} & set(erased_ids)
    listed = retention_list(merchant=merchant, limit=len(candidates))
    values = [c.expected_value for c in listed]
    assert values == sorted(values, reverse=True)
    assert AuditLogEntry.objects.filter(
        merchant=merchant, action="loyalty.churn_refresh", target_id=str(run.pk)
    ).exists()


def _previous_run(merchant) -> tuple[InsightRun, CustomerInsight]:
    run = InsightRunFactory(
        merchant=merchant, kind=InsightKind.CHURN, started_at=timezone.now() - timedelta(days=7), summary={"auc": 0.8}
    )
    insight = CustomerInsightFactory(merchant=merchant, churn_probability=0.7, churn_run=run)
    RetentionCandidate.objects.create(
        merchant=merchant,
        customer=insight.customer,
        run=run,
        churn_probability=0.7,
        offer="percent_10",
        offer_cost=Decimal("8.00"),
        expected_value=2.5,
        reason="earlier",
        created_at=run.started_at,
    )
    return run, insight


def test_too_little_history_fails_the_run_and_keeps_the_scores_in_service(merchant):
    # given: last week's scores, and a shop with only a few customers
    previous, insight = _previous_run(merchant)
    for days_ago in (200, 150, 100):
        OrderFactory(merchant=merchant, placed_at=timezone.now() - timedelta(days=days_ago))

    # when
    with pytest.raises(InsufficientHistory, match="at least 200"):
        churn_refresh(merchant=merchant)

    # then
    failed = InsightRun.objects.for_merchant(merchant).exclude(pk=previous.pk).get()
    assert failed.status == RunStatus.FAILED and "too little history" in failed.error
    insight.refresh_from_db()
    assert insight.churn_probability == 0.7 and insight.churn_run_id == previous.pk
    assert [c.run_id for c in retention_list(merchant=merchant)] == [previous.pk]
    assert AuditLogEntry.objects.filter(action="loyalty.churn_refresh", target_id=str(failed.pk)).exists()


def test_an_unexpected_error_fails_the_run_is_raised_and_keeps_the_scores(merchant, monkeypatch):
    # given: last week's scores, and a model fit that breaks
    previous, insight = _previous_run(merchant)
    monkeypatch.setattr(churn_services, "_shortage", lambda **kwargs: "")

    def broken(*args, **kwargs):
        raise RuntimeError("the fit exploded")

    monkeypatch.setattr(churn_services.churn, "churn_train", broken)

    # when
    with pytest.raises(RuntimeError):
        churn_refresh(merchant=merchant)

    # then
    failed = InsightRun.objects.for_merchant(merchant).exclude(pk=previous.pk).get()
    assert failed.status == RunStatus.FAILED and "the fit exploded" in failed.error
    insight.refresh_from_db()
    assert insight.churn_probability == 0.7
    assert [c.run_id for c in retention_list(merchant=merchant)] == [previous.pk]


COSTS = OfferCosts(shipping_fee=6.95, margin=0.4, point_value=0.01, points_per_currency_unit=1.0, has_program=True)


def _flagged(customers: int, *, seed: int = 0, consent: bool = True) -> list[Flagged]:
    rng = np.random.default_rng(seed)
    return [
        Flagged(
            customer_id=i + 1,
            churn_probability=float(rng.uniform(0.5, 1.0)),
            clv_12m=float(rng.uniform(50, 2000)) if i % 3 else None,
            mean_order_value=float(rng.uniform(20, 300)),
            marketing_consent=consent,
        )
        for i in range(customers)
    ]


@pytest.mark.parametrize("budget", [0.0, 7.0, 50.0, 333.33, 10_000.0])
def test_offers_never_exceed_the_budget_and_come_by_expected_value(budget):
    # given
    flagged = _flagged(200)

    # when
    suggestions = retention_suggestions(flagged=flagged, costs=COSTS, budget=budget)

    # then: every flagged customer is listed once, offers first by expected value, their costs within the budget
    assert sorted(s.customer_id for s in suggestions) == [f.customer_id for f in flagged]
    offered = [s for s in suggestions if s.offer != NO_OFFER]
    assert sum(s.offer_cost for s in offered) <= budget + 1e-9
    assert [s.expected_value for s in offered] == sorted((s.expected_value for s in offered), reverse=True)
    assert suggestions[: len(offered)] == offered
    assert all(s.expected_value > 0 for s in offered)
    assert all(s.offer_cost == 0 and s.expected_value == 0 for s in suggestions[len(offered) :])
    if budget == 0:
        assert not offered and all("no retention budget" in s.reason for s in suggestions)
    if budget == 10_000.0:
        assert all("worth its cost" in s.reason for s in suggestions[len(offered) :])


def test_the_offer_chosen_has_the_best_expected_value_and_follows_the_assumed_table():
    # given: a valuable customer (10% off pays most) and one with a big basket and no CLV (10% off costs too much)
    valuable = Flagged(customer_id=1, churn_probability=0.9, clv_12m=1e3, mean_order_value=50, marketing_consent=True)
    small = Flagged(customer_id=2, churn_probability=0.9, clv_12m=None, mean_order_value=300, marketing_consent=True)

    # when
    by_customer = {s.customer_id: s for s in retention_suggestions(flagged=[valuable, small], costs=COSTS, budget=1e6)}

    # then: expected value = P(churn) × assumed win-back rate × value at stake − cost
    assert by_customer[1].offer == "percent_10"
    assert by_customer[1].expected_value == pytest.approx(0.9 * 0.12 * 1000.0 - 5.0)
    assert by_customer[2].offer == "double_points"
    assert by_customer[2].expected_value == pytest.approx(0.9 * 0.06 * 300.0 * 0.4 - 300.0 * 0.01)


def test_a_customer_whose_best_offer_does_not_fit_gets_a_cheaper_one_that_pays():
    # given: the budget fits free shipping (6.95) but not 10% off a 100 basket (10.00), the best offer
    customer = Flagged(
        customer_id=1, churn_probability=0.9, clv_12m=1000.0, mean_order_value=100.0, marketing_consent=True
    )

    # when
    [suggestion] = retention_suggestions(flagged=[customer], costs=COSTS, budget=8.0)

    # then
    assert suggestion.offer == "free_shipping"
    assert suggestion.expected_value == pytest.approx(0.9 * 0.08 * 1000.0 - 6.95)


def test_customers_without_marketing_consent_are_listed_without_an_offer():
    # given
    flagged = _flagged(20, consent=False)

    # when
    suggestions = retention_suggestions(flagged=flagged, costs=COSTS, budget=1e6)

    # then
    assert len(suggestions) == 20
    assert all(s.offer == NO_OFFER and s.offer_cost == 0 and "no marketing consent" in s.reason for s in suggestions)
    probabilities = [s.churn_probability for s in suggestions]
    assert probabilities == sorted(probabilities, reverse=True)


def test_double_points_is_only_offered_by_a_shop_with_a_program():
    # given
    no_program = OfferCosts(
        shipping_fee=1e6, margin=0.4, point_value=0.01, points_per_currency_unit=0, has_program=False
    )
    flagged = _flagged(50)

    # when
    suggestions = retention_suggestions(flagged=flagged, costs=no_program, budget=1e6)

    # then
    assert {s.offer for s in suggestions} <= {"percent_10", NO_OFFER}


def test_offer_costs_come_from_the_shops_own_orders_and_program(merchant):
    # given: orders charging 5 and 7 shipping, lines at 40% margin, a program whose best reward is 10 per 500 points
    now = timezone.now()
    for shipping in (5, 7, 0):
        order = OrderFactory(merchant=merchant, placed_at=now - timedelta(days=3), shipping=Decimal(shipping))
        OrderLineFactory(order=order, unit_price=Decimal("10.00"), unit_cost=Decimal("6.00"), quantity=2)
    program = LoyaltyProgramFactory(merchant=merchant, points_per_currency_unit=Decimal("2"))
    RewardFactory(program=program, kind=RewardKind.AMOUNT_OFF, points_cost=500, value=Decimal("10"))
    RewardFactory(program=program, kind=RewardKind.AMOUNT_OFF, points_cost=500, value=Decimal("5"))

    # when
    costs = offer_costs(merchant=merchant, as_of=now)

    # then
    assert costs.shipping_fee == pytest.approx(6.0)
    assert costs.margin == pytest.approx(0.4)
    assert costs.point_value == pytest.approx(0.02)
    assert costs.points_per_currency_unit == 2.0 and costs.has_program
    assert costs.cost(churn_services.OFFERS[2], mean_order_value=100.0) == pytest.approx(4.0)


def test_offer_costs_fall_back_to_the_defaults_for_a_new_shop(merchant):
    # when
    costs = offer_costs(merchant=merchant, as_of=timezone.now())

    # then
    assert costs.shipping_fee == churn_services.DEFAULT_SHIPPING_FEE
    assert costs.margin == churn_services.DEFAULT_MARGIN
    assert not costs.has_program
