from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from scipy import stats

from events.models import ModelRunStatus, OrderStatus
from events.selectors.funnel import (
    MIN_RANDOMIZED_PER_ARM,
    abandonment_by_day,
    funnel_period,
    funnel_screen,
    funnel_steps,
    offer_economics,
    predictor_quality,
)
from loyalty.models import DecisionReason, IncentiveKind, RecoveryStatus, Segment
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, SessionFactory
from tests.factories.funnel import AbandonmentModelFactory, OfferDecisionFactory, RecoveryMessageFactory
from tests.factories.loyalty import CustomerInsightFactory

pytestmark = pytest.mark.django_db

# On PostgreSQL the funnel statement runs with JIT off, in a savepoint: five more statements around it.
JIT_GUARD_QUERIES = 5 if connection.vendor == "postgresql" else 0

MARCH_10 = date(2026, 3, 10)
MARCH_11 = date(2026, 3, 11)


def _utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def shop(merchant):
    # New York is UTC-4 in these days of March 2026 (daylight saving time started on March 8).
    merchant.timezone = "America/New_York"
    merchant.save(update_fields=["timezone"])
    return merchant


def _session(merchant, *, at, device="desktop", source="", customer=None, events=(), order=None):
    customer = customer or CustomerFactory(merchant=merchant)
    session = SessionFactory(merchant=merchant, customer=customer, started_at=at, device=device, utm_source=source)
    for offset, name in enumerate(events):
        EventFactory(
            merchant=merchant, customer=customer, session=session, name=name, timestamp=at + timedelta(minutes=offset)
        )
    if order is not None:
        OrderFactory(merchant=merchant, customer=customer, session=session, placed_at=at, status=order)
    return session


VIEW, CART, CHECKOUT = "Product Viewed", "Product Added", "Checkout Started"


@pytest.fixture
def ten_sessions(shop, other_merchant):
    """The hand-checked example: ten sessions over March 10 and 11 (New York days).

    s1  Mar 10  desktop google      champions  view cart checkout + order     → order
    s2  Mar 10  desktop google      champions  view cart          + order     → order (checkout implied)
    s3  Mar 10  mobile  direct      unscored   view cart checkout             → checkout
    s4  Mar 10  mobile  direct      unscored   view cart          + cancelled → cart
    s5  Mar 10  mobile  newsletter  at risk    view                           → view
    s6  Mar 11  desktop newsletter  unscored*  view                           → view   (*insight, no segment)
    s7  Mar 11  mobile  direct      unscored                                  → session
    s8  Mar 11  tablet  google      unscored                                  → session
    s9  Mar 11  mobile  direct      unscored        cart                      → cart   (view implied)
    s10 Mar 11  desktop google      unscored   (03:30 UTC on Mar 12 = 23:30 on Mar 11 in New York) → session
    Not counted: a session at 02:00 UTC on Mar 10 (Mar 9 in New York) and another merchant's session.
    """
    champion = CustomerFactory(merchant=shop)
    CustomerInsightFactory(merchant=shop, customer=champion, segment=Segment.CHAMPIONS)
    at_risk = CustomerFactory(merchant=shop)
    CustomerInsightFactory(merchant=shop, customer=at_risk, segment=Segment.AT_RISK)
    no_segment = CustomerFactory(merchant=shop)
    CustomerInsightFactory(merchant=shop, customer=no_segment, segment="")
    completed, cancelled = OrderStatus.COMPLETED, OrderStatus.CANCELLED
    _session(shop, at=_utc(10, 14), source="google", customer=champion, events=(VIEW, CART, CHECKOUT), order=completed)
    _session(shop, at=_utc(10, 15), source="google", customer=champion, events=(VIEW, CART), order=completed)
    _session(shop, at=_utc(10, 16), device="mobile", events=(VIEW, CART, CHECKOUT))
    _session(shop, at=_utc(10, 17), device="mobile", events=(VIEW, CART), order=cancelled)
    _session(shop, at=_utc(10, 18), device="mobile", source="newsletter", customer=at_risk, events=(VIEW,))
    _session(shop, at=_utc(11, 14), source="newsletter", customer=no_segment, events=(VIEW, VIEW))
    _session(shop, at=_utc(11, 15), device="mobile")
    _session(shop, at=_utc(11, 16), device="tablet", source="google")
    _session(shop, at=_utc(11, 17), device="mobile", events=(CART,))
    _session(shop, at=_utc(12, 3, 30), source="google")
    _session(shop, at=_utc(10, 2), events=(VIEW, CART, CHECKOUT), order=completed)
    _session(other_merchant, at=_utc(10, 14), events=(VIEW, CART, CHECKOUT), order=completed)
    return shop


def _table(steps):
    return {group.key: group.reached for group in steps.groups}


def test_funnel_steps_counts_each_session_at_the_deepest_step_it_reached_and_every_step_before(ten_sessions):
    # given the ten sessions of the hand-checked example
    # when
    steps = funnel_steps(merchant=ten_sessions, start=MARCH_10, end=MARCH_11)
    # then
    total = steps.total
    assert total.reached == (10, 7, 5, 3, 2)
    assert total.drop_offs == (3, 2, 2, 1)
    assert total.step_conversion == pytest.approx((0.7, 5 / 7, 0.6, 2 / 3))
    assert total.overall_conversion == pytest.approx(0.2)
    assert steps.groups == ()


def test_funnel_steps_by_day_uses_the_shops_time_zone(ten_sessions):
    # when
    steps = funnel_steps(merchant=ten_sessions, start=MARCH_10, end=MARCH_11, by="day")
    # then
    assert _table(steps) == {"2026-03-10": (5, 5, 4, 3, 2), "2026-03-11": (5, 2, 1, 0, 0)}
    assert [group.label for group in steps.groups] == ["Mar 10", "Mar 11"]


def test_funnel_steps_by_device(ten_sessions):
    # when
    steps = funnel_steps(merchant=ten_sessions, start=MARCH_10, end=MARCH_11, by="device")
    # then
    assert _table(steps) == {"mobile": (5, 4, 3, 1, 0), "desktop": (4, 3, 2, 2, 2), "tablet": (1, 0, 0, 0, 0)}
    assert [group.key for group in steps.groups] == ["mobile", "desktop", "tablet"]
    assert steps.groups[0].label == "Mobile"


def test_funnel_steps_by_source_calls_an_empty_utm_source_direct(ten_sessions):
    # when
    steps = funnel_steps(merchant=ten_sessions, start=MARCH_10, end=MARCH_11, by="source")
    # then
    assert _table(steps) == {"direct": (4, 3, 3, 1, 0), "google": (4, 2, 2, 2, 2), "newsletter": (2, 2, 0, 0, 0)}
    assert [group.label for group in steps.groups] == ["Direct", "google", "newsletter"]


def test_funnel_steps_by_segment_puts_customers_without_a_segment_in_unscored(ten_sessions):
    # when
    steps = funnel_steps(merchant=ten_sessions, start=MARCH_10, end=MARCH_11, by="segment")
    # then
    assert _table(steps) == {"unscored": (7, 4, 3, 1, 0), "champions": (2, 2, 2, 2, 2), "at_risk": (1, 1, 0, 0, 0)}
    assert [group.label for group in steps.groups] == ["Not scored yet", "Champions", "At risk"]


def test_funnel_steps_lists_days_without_sessions_with_zeros(shop):
    # given
    _session(shop, at=_utc(10, 14), events=(VIEW,))
    # when
    steps = funnel_steps(merchant=shop, start=MARCH_10, end=date(2026, 3, 12), by="day")
    # then
    assert _table(steps) == {
        "2026-03-10": (1, 1, 0, 0, 0),
        "2026-03-11": (0, 0, 0, 0, 0),
        "2026-03-12": (0, 0, 0, 0, 0),
    }
    assert steps.groups[1].step_conversion == (None, None, None, None)
    assert steps.groups[1].overall_conversion is None


def test_funnel_steps_refuses_an_unknown_breakdown_and_a_reversed_period(shop):
    # when / then
    with pytest.raises(ValueError, match="unknown breakdown"):
        funnel_steps(merchant=shop, start=MARCH_10, end=MARCH_11, by="colour")
    with pytest.raises(ValueError, match="ends before"):
        funnel_steps(merchant=shop, start=MARCH_11, end=MARCH_10)


def test_abandonment_by_day_counts_carts_without_an_order(ten_sessions):
    # when
    days = abandonment_by_day(merchant=ten_sessions, start=MARCH_10, end=MARCH_11)
    # then: Mar 10 has carts s1–s4 (s3 stopped at checkout, s4's order was cancelled); Mar 11 only s9
    assert [(day.day, day.carts, day.abandoned, day.rate) for day in days] == [
        (MARCH_10, 4, 2, 0.5),
        (MARCH_11, 1, 1, 1.0),
    ]


def _decisions(merchant, *, kind, count, converted, redeemed=0, margin="30.00", cost="8.00", **fields):
    """`count` decisions of `kind`; the first `converted` converted, the first `redeemed` of those redeemed."""
    rows = []
    for index in range(count):
        order = OrderFactory(merchant=merchant) if index < converted else None
        rows.append(
            OfferDecisionFactory(
                merchant=merchant,
                kind=kind,
                code="" if kind == IncentiveKind.NONE else f"CODE-{kind}-{index}-{fields.get('reason', '')}",
                cost=Decimal("0") if kind == IncentiveKind.NONE else Decimal(cost),
                cart_margin=Decimal(margin),
                converted_order=order,
                redeemed_at=order.placed_at if order is not None and index < redeemed else None,
                decided_at=_utc(10, 15),
                **fields,
            )
        )
    return rows


def test_offer_economics_counts_decisions_and_measures_incremental_margin_on_randomized_ones(shop, other_merchant):
    # given 30 randomized "none" (10 convert: 10 × 30 = 300 → 10.00 per decision) and 30 randomized 10% offers
    # (20 convert and redeem: 20 × (30 − 8) = 440 → 14.67 per decision), plus 4 decisions by the model
    exploration = {"randomized": True, "reason": DecisionReason.EXPLORATION, "propensity": 0.5}
    _decisions(shop, kind=IncentiveKind.NONE, count=30, converted=10, **exploration)
    _decisions(shop, kind=IncentiveKind.PERCENT_10, count=30, converted=20, redeemed=20, **exploration)
    _decisions(shop, kind=IncentiveKind.FREE_SHIPPING, count=3, converted=1, redeemed=1, cost="6.95")
    _decisions(shop, kind=IncentiveKind.NONE, count=1, converted=0, reason=DecisionReason.NO_OFFER_PAYS)
    OfferDecisionFactory(merchant=shop, decided_at=_utc(9, 12))  # before the period
    _decisions(other_merchant, kind=IncentiveKind.PERCENT_10, count=2, converted=2, redeemed=2)
    # when
    economics = offer_economics(merchant=shop, start=MARCH_10, end=MARCH_11)
    # then
    assert economics.decisions == 64
    assert [(row.kind, row.reason, row.count) for row in economics.by_kind_reason] == [
        ("none", "exploration", 30),
        ("percent_10", "exploration", 30),
        ("free_shipping", "best_expected_margin", 3),
        ("none", "no_offer_pays", 1),
    ]
    assert economics.offers_issued == 33
    assert economics.offers_redeemed == 21
    assert economics.cost_given == Decimal("166.95")  # 20 × 8 + 6.95
    assert (economics.randomized_offers, economics.randomized_none) == (30, 30)
    incremental = economics.incremental
    assert incremental.per_decision == pytest.approx(440 / 30 - 10)
    offers = [22.0] * 20 + [0.0] * 10
    none = [30.0] * 10 + [0.0] * 20
    expected = stats.ttest_ind(offers, none, equal_var=False).confidence_interval(0.95)
    assert (incremental.low, incremental.high) == pytest.approx((expected.low, expected.high))
    assert economics.incremental_total[0] == pytest.approx((440 / 30 - 10) * 33)
    assert [(kind, n) for kind, n, _ in economics.incremental_by_kind] == [("percent_10", 30)]


def test_offer_economics_says_nothing_about_incremental_margin_with_too_few_randomized_decisions(shop):
    # given one "none" short of the minimum
    exploration = {"randomized": True, "reason": DecisionReason.EXPLORATION}
    _decisions(shop, kind=IncentiveKind.NONE, count=MIN_RANDOMIZED_PER_ARM - 1, converted=5, **exploration)
    _decisions(shop, kind=IncentiveKind.PERCENT_5, count=MIN_RANDOMIZED_PER_ARM, converted=10, **exploration)
    # when
    economics = offer_economics(merchant=shop, start=MARCH_10, end=MARCH_11)
    # then
    assert economics.incremental is None
    assert economics.incremental_total is None
    assert economics.incremental_by_kind == (("percent_5", MIN_RANDOMIZED_PER_ARM, None),)


def test_offer_economics_charges_free_shipping_and_points_their_cost_as_the_experiments_margin_does(shop):
    # given 30 randomized "none" (10 convert: 10.00 a decision), 30 randomized free shipping (15 convert and
    # redeem: 15 × (30 − 6.95) = 345.75 → 11.525) and 30 randomized points (12 convert and redeem, 2.00 each:
    # 12 × 28 = 336 → 11.20): the carrier's fee and the points are the merchant's, as on the order's
    # incentive_cost
    exploration = {"randomized": True, "reason": DecisionReason.EXPLORATION, "propensity": 1 / 3}
    _decisions(shop, kind=IncentiveKind.NONE, count=30, converted=10, **exploration)
    _decisions(shop, kind=IncentiveKind.FREE_SHIPPING, count=30, converted=15, redeemed=15, cost="6.95", **exploration)
    _decisions(shop, kind=IncentiveKind.POINTS, count=30, converted=12, redeemed=12, cost="2.00", **exploration)
    # when
    economics = offer_economics(merchant=shop, start=MARCH_10, end=MARCH_11)
    # then
    assert economics.cost_given == Decimal("128.25")  # 15 × 6.95 + 12 × 2.00
    by_kind = {kind: estimate for kind, _, estimate in economics.incremental_by_kind}
    assert by_kind["free_shipping"].per_decision == pytest.approx(345.75 / 30 - 10)
    assert by_kind["points"].per_decision == pytest.approx(336 / 30 - 10)
    assert economics.incremental.per_decision == pytest.approx((345.75 + 336) / 60 - 10)


def test_predictor_quality_serves_the_last_success_and_reports_a_later_failure(shop):
    # given
    reliability = [{"predicted": 0.2, "observed": 0.25, "count": 40}, {"predicted": 0.8, "observed": 0.7, "count": 60}]
    AbandonmentModelFactory(
        merchant=shop,
        started_at=_utc(9, 1),
        finished_at=_utc(9, 2),
        metrics={"auc": 0.81, "auc_baseline": 0.62, "brier": 0.17, "reliability": reliability},
    )
    AbandonmentModelFactory(merchant=shop, status=ModelRunStatus.FAILED, started_at=_utc(10, 1), finished_at=None)
    # when
    quality = predictor_quality(merchant=shop)
    # then
    assert (quality.auc, quality.auc_baseline, quality.brier) == (0.81, 0.62, 0.17)
    assert quality.reliability == [(0.2, 0.25, 40), (0.8, 0.7, 60)]
    assert quality.latest_failed


def test_funnel_screen_reads_everything_in_a_bounded_number_of_queries(ten_sessions, django_assert_max_num_queries):
    # given a cart recovered on March 11 (loyalty's recovery summary counts it)
    period = funnel_period(merchant=ten_sessions, start=MARCH_10, end=MARCH_11)
    recovered = OrderFactory(merchant=ten_sessions, placed_at=_utc(11, 20), subtotal=Decimal("64.00"))
    RecoveryMessageFactory(
        merchant=ten_sessions, status=RecoveryStatus.SENT, abandoned_at=_utc(10, 20), sent_at=_utc(10, 21),
        recovered_order=recovered,
    )  # fmt: skip
    # when
    with django_assert_max_num_queries(13 + JIT_GUARD_QUERIES):
        screen = funnel_screen(merchant=ten_sessions, period=period, by="device")
    # then
    assert screen.daily.total.reached == (10, 7, 5, 3, 2)
    assert [group.key for group in screen.breakdown.groups] == ["mobile", "desktop", "tablet"]
    assert [day.abandoned for day in screen.abandonment] == [2, 1]
    assert [day.recovered_revenue for day in screen.recovery.by_day] == [Decimal("0"), Decimal("64.00")]
