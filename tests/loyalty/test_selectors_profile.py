from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from events.models import AnonymousIdentity, OrderStatus
from loyalty.models import RetentionSettings, Segment
from loyalty.selectors.profile import (
    SearchRefused,
    churn_level,
    collapse_runs,
    customer_for_support,
    customer_profile,
    customer_search,
)
from recommendations.models import ServedRecommendation
from tests.factories.catalog import ProductFactory
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory, SessionFactory
from tests.factories.experiments import ExposureFactory
from tests.factories.loyalty import CustomerInsightFactory, InsightRunFactory, LoyaltyProgramFactory

pytestmark = pytest.mark.django_db


# --- search ---------------------------------------------------------------------------------------


def test_search_finds_by_email_prefix_ignoring_case(merchant):
    # given
    ada = CustomerFactory(merchant=merchant, email="ada.lovelace@example.com")
    CustomerFactory(merchant=merchant, email="grace@example.com")

    # when
    found = customer_search(merchant=merchant, query="ADA.L")

    # then
    assert found == [ada]


@pytest.mark.parametrize("query", ["shop-42", "#{pk}", "{pk}", "device-7"])
def test_search_finds_by_shop_id_revopt_id_or_anonymous_id(merchant, query):
    # given
    customer = CustomerFactory(merchant=merchant, external_id="shop-42")
    CustomerFactory(merchant=merchant, external_id="shop-43")
    AnonymousIdentity.objects.create(merchant=merchant, anonymous_id="device-7", customer=customer)

    # when
    found = customer_search(merchant=merchant, query=query.format(pk=customer.pk))

    # then
    assert found == [customer]


def test_search_never_finds_another_merchants_customer(merchant, other_merchant):
    # given
    theirs = CustomerFactory(merchant=other_merchant, email="ada@example.com", external_id="shop-1")

    # when
    by_email = customer_search(merchant=merchant, query="ada@example.com")
    by_id = customer_search(merchant=merchant, query=str(theirs.pk))

    # then
    assert by_email == [] and by_id == []


def test_search_leaves_out_customers_merged_into_another(merchant):
    # given
    kept = CustomerFactory(merchant=merchant, email="ada@example.com")
    CustomerFactory(merchant=merchant, email="ada@example.com", merged_into=kept)

    # when
    found = customer_search(merchant=merchant, query="ada@")

    # then
    assert found == [kept]


@pytest.mark.parametrize("query", ["", "   ", "x" * 255])
def test_search_refuses_empty_or_overlong_queries(merchant, query):
    # when / then
    with pytest.raises(SearchRefused):
        customer_search(merchant=merchant, query=query)


@pytest.mark.parametrize("query", ["'; DROP TABLE events_customer; --", "%", "_", "#", "99999999999999999999999"])
def test_search_for_garbage_finds_nobody(merchant, query):
    # given
    CustomerFactory(merchant=merchant, email="ada@example.com")

    # when
    found = customer_search(merchant=merchant, query=query)

    # then
    assert found == []


def test_customer_for_support_refuses_another_merchants_customer(merchant, other_merchant):
    # given
    theirs = CustomerFactory(merchant=other_merchant)

    # when / then
    with pytest.raises(type(theirs).DoesNotExist):
        customer_for_support(merchant=merchant, customer_id=theirs.pk)


# --- the profile --------------------------------------------------------------------------------


def test_kpis_count_completed_orders_only(merchant):
    # given
    customer = CustomerFactory(merchant=merchant)
    OrderFactory(merchant=merchant, customer=customer, total=Decimal("100.00"))
    OrderFactory(merchant=merchant, customer=customer, total=Decimal("50.00"))
    OrderFactory(merchant=merchant, customer=customer, total=Decimal("70.00"), status=OrderStatus.REFUNDED)
    OrderFactory(merchant=merchant, customer=customer, total=Decimal("30.00"), status=OrderStatus.CANCELLED)

    # when
    kpis = customer_profile(merchant=merchant, customer=customer).kpis

    # then
    assert (kpis.orders, kpis.revenue, kpis.refunded, kpis.cancelled) == (2, Decimal("150.00"), 1, 1)
    assert kpis.average_order_value == Decimal("75.00")


def test_scores_say_not_computed_without_an_insight(merchant):
    # given
    customer = CustomerFactory(merchant=merchant)

    # when
    scores = customer_profile(merchant=merchant, customer=customer).scores

    # then
    assert not scores.computed
    assert (scores.segment, scores.churn_level, scores.clv_12m) == (None, None, None)


def test_scores_name_the_segment_the_cluster_and_the_churn_level(merchant):
    # given
    customer = CustomerFactory(merchant=merchant)
    run = InsightRunFactory(
        merchant=merchant, summary={"profiles": [{"cluster": 2, "customers": 9, "means": {}, "label": "big spenders"}]}
    )
    CustomerInsightFactory(
        merchant=merchant, customer=customer, segment=Segment.AT_RISK, cluster=2, segments_run=run,
        churn_probability=0.72, clv_12m=310.5, p_alive=0.41,
    )  # fmt: skip
    RetentionSettings.objects.create(merchant=merchant, churn_threshold=0.6)

    # when
    scores = customer_profile(merchant=merchant, customer=customer).scores

    # then
    assert (scores.segment, scores.cluster_label) == ("At risk", "big spenders")
    assert (scores.churn_level, scores.churn_threshold) == ("high", 0.6)
    assert (scores.clv_12m, scores.p_alive) == (310.5, 0.41)


@pytest.mark.parametrize(
    ("probability", "level"), [(None, None), (0.1, "low"), (0.25, "medium"), (0.49, "medium"), (0.5, "high")]
)
def test_churn_level_is_high_from_the_threshold_and_medium_from_half_of_it(probability, level):
    # when / then
    assert churn_level(probability, 0.5) == level


def test_timeline_is_newest_first_with_orders_sessions_and_grouped_events(merchant):
    # given
    customer = CustomerFactory(merchant=merchant)
    now = timezone.now()
    tent = ProductFactory(merchant=merchant, title="Trail Tent")
    session = SessionFactory(merchant=merchant, customer=customer, started_at=now - timedelta(hours=3))
    for minutes in (170, 160, 150):
        EventFactory(
            merchant=merchant, customer=customer, session=session, product=tent,
            timestamp=now - timedelta(minutes=minutes),
        )  # fmt: skip
    EventFactory(
        merchant=merchant, customer=customer, session=session, name="Products Searched",
        properties={"query": "stove"}, timestamp=now - timedelta(minutes=140),
    )  # fmt: skip
    order = OrderFactory(merchant=merchant, customer=customer, placed_at=now - timedelta(minutes=100))
    OrderLineFactory(order=order, product=tent)

    # when
    timeline = customer_profile(merchant=merchant, customer=customer).timeline

    # then
    assert [(entry.kind, entry.title, entry.count) for entry in timeline.entries] == [
        ("order", f"Order {order.external_id}", 1),
        ("event", "Products Searched", 1),
        ("event", "Product Viewed", 3),
        ("session", "Visit on other", 1),
    ]
    assert timeline.entries[1].detail == "“stove”"
    assert timeline.entries[2].detail == "Trail Tent"
    assert [line.product for line in timeline.entries[0].order.lines.all()] == [tent]


def test_timeline_caps_events_and_offers_more(merchant):
    # given
    customer = CustomerFactory(merchant=merchant)
    for index in range(5):
        EventFactory(merchant=merchant, customer=customer, name=f"Event {index}")

    # when
    capped = customer_profile(merchant=merchant, customer=customer, event_limit=3).timeline
    everything = customer_profile(merchant=merchant, customer=customer, event_limit=10).timeline

    # then
    assert (capped.events_shown, capped.more_events, capped.next_limit is not None) == (3, True, True)
    assert (everything.events_shown, everything.more_events, everything.next_limit) == (5, False, None)


def test_collapse_runs_starts_a_new_entry_when_the_event_or_the_session_changes(merchant):
    # given
    customer = CustomerFactory(merchant=merchant)
    first, second = (
        SessionFactory(merchant=merchant, customer=customer),
        SessionFactory(merchant=merchant, customer=customer),
    )
    names_and_sessions = [("Product Viewed", first), ("Product Viewed", first), ("Product Added", first),
                          ("Product Viewed", first), ("Product Viewed", second)]  # fmt: skip
    events = [
        EventFactory(merchant=merchant, customer=customer, name=name, session=session)
        for name, session in names_and_sessions
    ]

    # when
    entries = collapse_runs(events)

    # then
    assert [(entry.title, entry.count) for entry in entries] == [
        ("Product Viewed", 2), ("Product Added", 1), ("Product Viewed", 1), ("Product Viewed", 1),
    ]  # fmt: skip


def test_profile_lists_the_customers_experiment_assignments(merchant):
    # given
    customer = CustomerFactory(merchant=merchant)
    exposure = ExposureFactory(variant__experiment__merchant=merchant, variant__merchant=merchant, customer=customer)
    ExposureFactory(variant__experiment__merchant=merchant, variant__merchant=merchant)  # someone else

    # when
    assignments = customer_profile(merchant=merchant, customer=customer).assignments

    # then
    assert [(row.experiment_key, row.variant_key) for row in assignments] == [
        (exposure.experiment.key, exposure.variant.key)
    ]


def test_profile_previews_recommendations_without_recording_them(merchant):
    # given
    customer = CustomerFactory(merchant=merchant)
    product = ProductFactory(merchant=merchant, inventory=10)
    order = OrderFactory(merchant=merchant, placed_at=timezone.now() - timedelta(days=1))
    OrderLineFactory(order=order, product=product)

    # when
    preview = customer_profile(merchant=merchant, customer=customer).recommendations

    # then
    assert preview.result is not None
    assert [item.product_id for item in preview.result.items] == [product.pk]
    assert preview.result.recommendation_id is None
    assert not ServedRecommendation.objects.exists()


def test_profile_of_an_erased_customer_recommends_nothing(merchant):
    # given
    customer = CustomerFactory(merchant=merchant, erased_at=timezone.now())

    # when
    profile = customer_profile(merchant=merchant, customer=customer)

    # then
    assert profile.is_erased
    assert profile.recommendations.result is None and "Erased" in profile.recommendations.note


def test_profile_without_a_program_has_no_loyalty_status(merchant):
    # given
    customer = CustomerFactory(merchant=merchant)

    # when
    profile = customer_profile(merchant=merchant, customer=customer)

    # then
    assert profile.loyalty is None and profile.ledger == ()


def test_profile_refuses_another_merchants_customer(merchant, other_merchant):
    # given
    theirs = CustomerFactory(merchant=other_merchant)

    # when / then
    with pytest.raises(type(theirs).DoesNotExist):
        customer_profile(merchant=merchant, customer=theirs)


def _busy_customer(merchant, *, orders: int, events: int):
    customer = CustomerFactory(merchant=merchant)
    product = ProductFactory(merchant=merchant)
    session = SessionFactory(merchant=merchant, customer=customer)
    for _ in range(orders):
        order = OrderFactory(merchant=merchant, customer=customer, session=session)
        OrderLineFactory(order=order, product=product)
        OrderLineFactory(order=order, product=None)
    for _ in range(events):
        EventFactory(merchant=merchant, customer=customer, session=session, product=product)
    ExposureFactory(variant__experiment__merchant=merchant, variant__merchant=merchant, customer=customer)
    CustomerInsightFactory(merchant=merchant, customer=customer, segment=Segment.LOYAL, churn_probability=0.2)
    return customer


def test_profile_costs_the_same_number_of_queries_however_long_the_history(merchant, django_assert_max_num_queries):
    # given
    LoyaltyProgramFactory(merchant=merchant)
    small = _busy_customer(merchant, orders=1, events=2)
    large = _busy_customer(merchant, orders=30, events=120)
    customer_profile(merchant=merchant, customer=small)  # warm the per-process memos (rules, live experiments)
    with CaptureQueriesContext(connection) as small_queries:
        customer_profile(merchant=merchant, customer=small)

    # when
    with django_assert_max_num_queries(25), CaptureQueriesContext(connection) as large_queries:
        profile = customer_profile(merchant=merchant, customer=large)

    # then
    assert len(large_queries) == len(small_queries)
    assert profile.kpis.orders == 30 and profile.timeline.events_shown == 120 and profile.loyalty is not None
