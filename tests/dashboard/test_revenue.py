"""The revenue page's reads on a hand-checked shop.

June 2026 (the current 30 days, UTC shop) against 2 May – 31 May (the previous 30):
  A  June 10: session with a cart, completed order 100.00 (2 × 50.00, cost 30.00); also ordered 50.00 on 20 May
  B  June 10: session with a cart, no order (abandoned); 25 May: another abandoned cart
  C  June 1: refunded order 300.00 (active, not revenue); June 12: session without cart, completed order 60.00
     (cost 45.00) and a cancelled 500.00
  D  June 15: an event outside any session (active only)
  E  June 20: session with a cart whose order was cancelled (a cart that was checked out)
Current: 5 active users, 2 buyers, 2 orders, revenue 160.00 → RPAU 32.00, conversion 40%, AOV 80.00,
abandonment 1/3, repeat rate 1/2 (A), margin (sales after discounts − offer costs − cost of goods, none of
the orders has a discount or an offer) 40 + 15 = 55 → 11.00 per active user.
Previous: A (order) and B (session) → 2 active, 1 buyer, revenue 50 → RPAU 25.00, conversion 50%, AOV 50,
abandonment 1/1, repeat rate 0/1.
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from events.models import OrderStatus
from experiments.models import ExperimentStatus, Surface
from loyalty.models import IncentiveKind, InsightKind, RunStatus
from loyalty.services.offers import offer_code_redeem
from revopt.dashboard.revenue import DEFAULT_PERIOD_DAYS, period_days_from, revenue_page
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory, SessionFactory
from tests.factories.experiments import (
    AnalysisSnapshotFactory,
    experiment_analysis,
    experiment_with_variants,
    metric_result,
)
from tests.factories.funnel import OfferDecisionFactory
from tests.factories.loyalty import InsightRunFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


def _at(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def _cart_session(merchant, customer, at: datetime):
    session = SessionFactory(merchant=merchant, customer=customer, started_at=at)
    EventFactory(merchant=merchant, customer=customer, session=session, name="Product Added", timestamp=at)
    return session


def _order(merchant, customer, at: datetime, total: str, *, session=None, status=OrderStatus.COMPLETED, lines=()):
    order = OrderFactory(
        merchant=merchant,
        customer=customer,
        session=session,
        placed_at=at,
        subtotal=Decimal(total),
        total=Decimal(total),
        status=status,
    )
    for quantity, price, cost in lines:
        OrderLineFactory(order=order, quantity=quantity, unit_price=Decimal(price), unit_cost=cost and Decimal(cost))
    return order


@pytest.fixture
def shop(merchant, other_merchant):
    a, b, c, d, e = (CustomerFactory(merchant=merchant) for _ in range(5))
    session_a = _cart_session(merchant, a, _at(6, 10, 9))
    _order(merchant, a, _at(6, 10, 10), "100.00", session=session_a, lines=[(2, "50.00", "30.00")])
    _order(merchant, a, _at(5, 20), "50.00", lines=[(1, "50.00", None)])
    _cart_session(merchant, b, _at(6, 10, 15))
    _cart_session(merchant, b, _at(5, 25))
    _order(merchant, c, _at(6, 1), "300.00", status=OrderStatus.REFUNDED, lines=[(1, "300.00", None)])
    session_c = SessionFactory(merchant=merchant, customer=c, started_at=_at(6, 12, 8))
    EventFactory(merchant=merchant, customer=c, session=session_c, name="Product Viewed", timestamp=_at(6, 12, 8))
    _order(merchant, c, _at(6, 12, 9), "60.00", session=session_c, lines=[(1, "60.00", "45.00")])
    _order(merchant, c, _at(6, 12, 10), "500.00", status=OrderStatus.CANCELLED, lines=[(1, "500.00", None)])
    EventFactory(merchant=merchant, customer=d, session=None, name="Page Viewed", timestamp=_at(6, 15))
    session_e = _cart_session(merchant, e, _at(6, 20))
    _order(merchant, e, _at(6, 20, 13), "70.00", session=session_e, status=OrderStatus.CANCELLED)
    # Another shop's busy June must not leak in.
    rival = CustomerFactory(merchant=other_merchant)
    _order(other_merchant, rival, _at(6, 10), "999.00", session=_cart_session(other_merchant, rival, _at(6, 10)))
    return {"a": a, "b": b, "c": c, "d": d, "e": e}


def test_current_period_kpis_are_the_hand_checked_ones(merchant, shop):
    # when
    page = revenue_page(merchant=merchant, period_days=30, now=NOW)

    # then
    totals = page.totals
    assert (page.current.first_day.isoformat(), page.current.last_day.isoformat()) == ("2026-06-01", "2026-06-30")
    assert totals.active_users == 5
    assert (totals.buyers, totals.orders, totals.revenue) == (2, 2, Decimal("160.00"))
    assert totals.rpau == pytest.approx(32.0)
    assert totals.conversion == pytest.approx(0.4)
    assert totals.aov == pytest.approx(80.0)
    assert (totals.carts, totals.abandoned_carts) == (3, 1)
    assert totals.abandonment == pytest.approx(1 / 3)
    assert totals.repeat_rate == pytest.approx(0.5)
    assert totals.margin == Decimal("55.00")
    assert totals.margin_per_active_user == pytest.approx(11.0)


def test_margin_is_the_experiments_engines_after_discounts_and_offer_costs(merchant):
    # given one June buyer: 100.00 of goods (2 × 50.00 costing 30.00), 10% off and shipped free with a
    # free-shipping code (the carrier's 6.95 is the merchant's), and another order with 200 bonus points (2.00)
    customer = CustomerFactory(merchant=merchant)
    shipped_free = OrderFactory(
        merchant=merchant,
        customer=customer,
        placed_at=_at(6, 10),
        subtotal=Decimal("100.00"),
        discount=Decimal("10.00"),
        tax=Decimal("9.00"),
        total=Decimal("99.00"),
    )
    OrderLineFactory(order=shipped_free, quantity=2, unit_price=Decimal("50.00"), unit_cost=Decimal("30.00"))
    with_points = _order(merchant, customer, _at(6, 11), "40.00", lines=[(1, "40.00", "25.00")])
    redemptions = ((shipped_free, IncentiveKind.FREE_SHIPPING, "6.95"), (with_points, IncentiveKind.POINTS, "2.00"))
    for order, kind, cost in redemptions:
        offer = OfferDecisionFactory(
            merchant=merchant, customer=customer, decided_at=order.placed_at, kind=kind, cost=Decimal(cost)
        )
        offer_code_redeem(merchant=merchant, code=offer.code, order_id=order.pk, at=order.placed_at)

    # when
    page = revenue_page(merchant=merchant, period_days=30, now=NOW)

    # then: (100 − 10 − 6.95 − 60) + (40 − 2.00 − 25) = 23.05 + 13.00 for the one active user
    assert page.totals.margin == Decimal("36.05")
    assert page.totals.margin_per_active_user == pytest.approx(36.05)
    by_day = {bucket.first_day.day: totals for bucket, totals in zip(page.buckets, page.by_bucket, strict=True)}
    assert (by_day[10].margin, by_day[11].margin) == (Decimal("23.05"), Decimal("13.00"))
    assert page.kpi("margin_per_active_user").current == pytest.approx(36.05)


def test_previous_period_and_deltas(merchant, shop):
    # when
    page = revenue_page(merchant=merchant, period_days=30, now=NOW)

    # then
    previous = page.previous_totals
    assert (page.previous.first_day.isoformat(), page.previous.last_day.isoformat()) == ("2026-05-02", "2026-05-31")
    assert (previous.active_users, previous.buyers, previous.revenue) == (2, 1, Decimal("50.00"))
    assert previous.rpau == pytest.approx(25.0)
    assert previous.abandonment == pytest.approx(1.0)
    assert previous.repeat_rate == pytest.approx(0.0)
    assert previous.margin is None  # the May line has no cost
    rpau, conversion, abandonment = page.kpi("rpau"), page.kpi("conversion"), page.kpi("abandonment")
    assert rpau.delta == pytest.approx(0.28) and rpau.delta_text == "+28.0%" and rpau.tone == "good"
    assert conversion.delta == pytest.approx(-0.1) and conversion.delta_text == "-10.0 pp"
    assert conversion.tone == "bad"
    # Fewer abandoned carts is good news.
    assert abandonment.delta == pytest.approx(1 / 3 - 1) and abandonment.tone == "good"
    assert page.kpi("margin_per_active_user").previous is None


def test_daily_buckets_count_each_day_on_its_own(merchant, shop):
    # when
    page = revenue_page(merchant=merchant, period_days=30, now=NOW)

    # then
    assert page.granularity == "day" and len(page.buckets) == 30
    by_day = {bucket.first_day.day: totals for bucket, totals in zip(page.buckets, page.by_bucket, strict=True)}
    assert (by_day[10].active_users, by_day[10].revenue, by_day[10].rpau) == (2, Decimal("100.00"), 50.0)
    assert by_day[10].abandonment == pytest.approx(0.5)
    # C's refunded 1 June order is older than 12 June: a repeat buyer that day, not over the month.
    assert (by_day[12].buyers, by_day[12].repeat_buyers) == (1, 1)
    assert by_day[1].active_users == 1 and by_day[1].revenue == Decimal("0.00")
    assert by_day[15].active_users == 1
    assert by_day[20].abandonment == 0.0
    assert by_day[11].rpau is None
    assert dict(page.hero.series)["10 Jun"] == 50.0


def test_longer_periods_are_weeks_counted_back_from_today(merchant, shop):
    # when
    page = revenue_page(merchant=merchant, period_days=90, now=NOW)

    # then
    assert page.granularity == "week"
    assert [bucket.days for bucket in page.buckets] == [6] + [7] * 12
    assert page.buckets[-1].last_day.isoformat() == "2026-06-30"
    assert page.buckets[0].first_day == page.current.first_day
    assert page.totals.revenue == Decimal("210.00")  # June's 160 and May's 50
    assert sum((totals.revenue for totals in page.by_bucket), Decimal("0")) == Decimal("210.00")


def test_buckets_follow_the_shop_time_zone(merchant):
    # given: 02:00 UTC on 1 July is still 30 June in New York
    merchant.timezone = "America/New_York"
    merchant.save(update_fields=["timezone"])
    customer = CustomerFactory(merchant=merchant)
    _order(merchant, customer, datetime(2026, 7, 1, 2, 0, tzinfo=UTC), "40.00")

    # when
    page = revenue_page(merchant=merchant, period_days=30, now=datetime(2026, 7, 1, 3, 0, tzinfo=UTC))

    # then
    assert page.current.last_day.isoformat() == "2026-06-30"
    assert page.by_bucket[-1].revenue == Decimal("40.00")
    assert page.totals.rpau == pytest.approx(40.0)


def test_clv_over_time_reads_succeeded_lifetime_value_runs(merchant, other_merchant, shop):
    # given
    for shop_merchant, as_of, status, mean in [
        (merchant, _at(5, 10), RunStatus.SUCCEEDED, 100.0),
        (merchant, _at(6, 15), RunStatus.SUCCEEDED, 120.5),
        (merchant, _at(6, 20), RunStatus.FAILED, 999.0),
        (other_merchant, _at(6, 25), RunStatus.SUCCEEDED, 5000.0),
    ]:
        InsightRunFactory(
            merchant=shop_merchant,
            kind=InsightKind.LIFETIME_VALUE,
            status=status,
            as_of=as_of,
            summary={"clv_12m_mean": mean},
        )
    InsightRunFactory(merchant=merchant, kind=InsightKind.SEGMENTS, as_of=_at(6, 28), summary={"clv_12m_mean": 1.0})

    # when
    page = revenue_page(merchant=merchant, period_days=30, now=NOW)

    # then
    clv = page.kpi("clv")
    assert [(point.day.isoformat(), point.clv_12m_mean) for point in page.clv] == [
        ("2026-05-10", 100.0),
        ("2026-06-15", 120.5),
    ]
    assert (clv.current, clv.previous) == (120.5, 100.0)
    assert clv.delta == pytest.approx(0.205)


def test_feature_lift_takes_each_surfaces_latest_analysed_experiment(merchant, other_merchant):
    # given
    older = experiment_with_variants(merchant=merchant, surface=Surface.PRICING, status=ExperimentStatus.STOPPED)
    AnalysisSnapshotFactory(experiment=older, computed_at=_at(5, 1))
    latest = experiment_with_variants(
        merchant=merchant, surface=Surface.PRICING, status=ExperimentStatus.RUNNING, name="Charm prices"
    )
    analysis = experiment_analysis(
        latest,
        metrics=[metric_result(variant="variant-1", relative_lift=0.05, half_width=0.02, significant=True)],
    )
    AnalysisSnapshotFactory(experiment=latest, computed_at=_at(6, 1), analysis=analysis.as_dict())
    draft = experiment_with_variants(merchant=merchant, surface=Surface.RECOMMENDATIONS)
    AnalysisSnapshotFactory(experiment=draft)
    rival = experiment_with_variants(merchant=other_merchant, surface=Surface.OFFERS, status=ExperimentStatus.RUNNING)
    AnalysisSnapshotFactory(experiment=rival)

    # when
    page = revenue_page(merchant=merchant, period_days=30, now=NOW, merchant_query="?merchant=acme-outdoor")

    # then
    lifts = {lift.surface: lift for lift in page.lifts}
    pricing = lifts[Surface.PRICING]
    assert pricing.experiment_key == latest.key and pricing.experiment_name == "Charm prices"
    assert pricing.relative_lift == pytest.approx(0.05)
    assert (pricing.low, pricing.high) == (pytest.approx(0.03), pytest.approx(0.07))
    assert pricing.metric_label == "Revenue per active user" and pricing.variant_name == "Variant 1"
    assert pricing.interval_name == "95% interval" and pricing.tone == "positive"
    assert pricing.status == "Running"
    assert pricing.url == f"/experiments/{latest.key}/?merchant=acme-outdoor"
    assert not lifts[Surface.RECOMMENDATIONS].measured
    assert not lifts[Surface.OFFERS].measured


def test_an_empty_shop_has_no_ratios_and_no_margin_card(merchant):
    # when
    page = revenue_page(merchant=merchant, now=NOW)

    # then
    assert page.period_days == DEFAULT_PERIOD_DAYS
    assert page.totals.rpau is None and page.totals.conversion is None and page.totals.abandonment is None
    assert [card.key for card in page.kpis] == ["rpau", "conversion", "aov", "abandonment", "repeat_rate", "clv"]
    assert page.hero.delta_text == "no previous data"


@pytest.mark.parametrize(
    ("raw", "days"), [("30", 30), ("90", 90), ("180", 180), ("7", 90), ("abc", 90), ("", 90), (None, 90)]
)
def test_period_parameter_falls_back_to_the_default(raw, days):
    # when / then
    assert period_days_from(raw) == days


def test_revenue_page_rejects_a_period_it_does_not_offer(merchant):
    # when / then
    with pytest.raises(ValueError, match="period_days"):
        revenue_page(merchant=merchant, period_days=45)


def test_query_count_does_not_grow_with_the_shop(merchant, shop, django_assert_num_queries):
    # given: twice the customers and orders
    for _ in range(20):
        customer = CustomerFactory(merchant=merchant)
        _order(merchant, customer, _at(6, 5), "10.00", session=_cart_session(merchant, customer, _at(6, 5)))
    experiment = experiment_with_variants(merchant=merchant, surface=Surface.OFFERS, status=ExperimentStatus.RUNNING)
    AnalysisSnapshotFactory(experiment=experiment)

    # when / then: latest event, 4 aggregates × (buckets, periods), lifetime-value runs, experiments, snapshots
    with django_assert_num_queries(12):
        page = revenue_page(merchant=merchant, period_days=180, now=NOW)
    assert page.totals.active_users == 25
