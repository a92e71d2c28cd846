from decimal import Decimal

import pytest
from django.utils import timezone

from events.models import AnonymousIdentity, Customer, Event, Order, Session
from events.services import event_batch_ingest
from tests.events.conftest import make_event, make_order
from tests.factories.catalog import ProductFactory

pytestmark = pytest.mark.django_db


def _statuses(result):
    return [item.status for item in result.results]


def test_a_batch_is_stored_with_its_customer_session_and_product(merchant, products):
    # given
    batch = [make_event(), make_event("Product Added", properties={"sku": "SKU-2", "price": 10, "quantity": 2})]

    # when
    result = event_batch_ingest(merchant=merchant, events=batch)

    # then
    assert _statuses(result) == ["accepted", "accepted"]
    events = list(Event.objects.for_merchant(merchant).order_by("id"))
    assert [e.name for e in events] == ["Product Viewed", "Product Added"]
    assert [e.product.sku for e in events] == ["SKU-1", "SKU-2"]
    assert events[1].quantity == 2 and events[1].price == Decimal("10.00")
    session = Session.objects.get(merchant=merchant)
    assert session.external_id == "sess-1"
    assert (session.device, session.utm_source, session.utm_campaign) == ("desktop", "google", "fall")
    assert {e.session_id for e in events} == {session.pk}
    assert {e.customer_id for e in events} == {session.customer_id}


def test_resubmitting_a_batch_stores_nothing_twice(merchant, products):
    # given
    batch = [make_event(), make_order(), make_event("Cart Viewed", properties={})]
    event_batch_ingest(merchant=merchant, events=batch)

    # when
    again = event_batch_ingest(merchant=merchant, events=batch)

    # then
    assert _statuses(again) == ["duplicate", "duplicate", "duplicate"]
    assert Event.objects.for_merchant(merchant).count() == 3
    assert Order.objects.for_merchant(merchant).count() == 1
    assert Customer.objects.for_merchant(merchant).count() == 1
    assert Session.objects.for_merchant(merchant).count() == 1


def test_a_message_id_repeated_inside_one_batch_is_a_duplicate(merchant, products):
    first = make_event()
    result = event_batch_ingest(merchant=merchant, events=[first, dict(first)])

    assert _statuses(result) == ["accepted", "duplicate"]
    assert Event.objects.for_merchant(merchant).count() == 1


def test_message_ids_are_idempotent_per_merchant_not_globally(merchant, other_merchant, products):
    # given
    ProductFactory(merchant=other_merchant, sku="SKU-1")
    event = make_event()
    event_batch_ingest(merchant=merchant, events=[event])

    # when
    result = event_batch_ingest(merchant=other_merchant, events=[event])

    # then
    assert _statuses(result) == ["accepted"]
    assert Event.objects.for_merchant(other_merchant).get().product.merchant == other_merchant


@pytest.mark.parametrize(
    ("event", "field", "reason_part"),
    [
        (make_event(event="Product Teleported"), "event", "unknown event type"),
        (make_event(timestamp=(timezone.now() + timezone.timedelta(hours=1)).isoformat()), "timestamp", "future"),
        (make_event(properties={"product_id": "SKU-1", "price": 0}), "properties.price", "positive"),
        (make_event(anonymousId=None), "userId", "userId or anonymousId"),
        (make_event(messageId=None), "messageId", "required"),
        (make_event(properties={"product_id": "NOPE"}), "properties.product_id", "unknown product"),
        (make_event(properties={"sku": "NOPE"}), "properties.sku", "unknown product"),
        (make_order(lines=(("SKU-1", 5, 1), ("GHOST", 5, 1))), "properties.products[1].sku", "unknown product"),
        (make_event("Order Refunded", properties={"order_id": "never-placed"}), "properties.order_id", "unknown order"),
    ],
)
def test_each_rejection_names_the_field_and_stores_nothing(merchant, products, event, field, reason_part):
    # when
    result = event_batch_ingest(merchant=merchant, events=[event, make_event()])

    # then
    rejected, accepted = result.results
    assert rejected.status == "rejected"
    assert rejected.errors[0].field == field
    assert reason_part in rejected.errors[0].reason
    assert accepted.status == "accepted"
    assert Event.objects.for_merchant(merchant).count() == 1
    assert Order.objects.for_merchant(merchant).count() == 0


def test_another_merchants_product_is_unknown(merchant, other_merchant, products):
    ProductFactory(merchant=other_merchant, sku="THEIRS")

    result = event_batch_ingest(merchant=merchant, events=[make_event(properties={"sku": "THEIRS"})])

    assert result.results[0].errors[0].reason == "unknown product 'THEIRS'"


def test_products_are_found_by_the_shops_product_id_or_by_sku(merchant, products):
    result = event_batch_ingest(
        merchant=merchant,
        events=[make_event(properties={"product_id": "pid-2"}), make_event(properties={"product_id": "SKU-3"})],
    )

    assert result.accepted == 2
    assert [e.product.sku for e in Event.objects.for_merchant(merchant).order_by("id")] == ["SKU-2", "SKU-3"]


def test_order_completed_materialises_the_order_and_its_lines(merchant, products):
    # given
    products[0].cost = Decimal("11.00")
    products[0].save()

    # when
    event_batch_ingest(
        merchant=merchant, events=[make_order("A-100", lines=(("SKU-1", 25, 2), ("SKU-2", "9.99", 1)), userId="u-7")]
    )

    # then
    order = Order.objects.for_merchant(merchant).get()
    assert order.external_id == "A-100"
    assert order.customer.external_id == "u-7"
    assert order.subtotal == Decimal("59.99")
    assert order.total == Decimal("68.99")
    assert order.session.external_id == "sess-1"
    lines = sorted(order.lines.all(), key=lambda line: line.sku)
    assert [(line.sku, line.quantity, line.unit_price, line.unit_cost) for line in lines] == [
        ("SKU-1", 2, Decimal("25.00"), Decimal("11.00")),
        ("SKU-2", 1, Decimal("9.99"), Decimal("12.00")),
    ]


def test_an_order_id_sent_again_under_a_new_message_id_is_rejected(merchant, products):
    event_batch_ingest(merchant=merchant, events=[make_order("A-1")])

    result = event_batch_ingest(merchant=merchant, events=[make_order("A-1"), make_order("A-2"), make_order("A-2")])

    assert _statuses(result) == ["rejected", "accepted", "rejected"]
    assert result.results[0].errors[0].field == "properties.order_id"
    assert Order.objects.for_merchant(merchant).count() == 2


def test_a_refund_marks_the_order_refunded(merchant, products):
    # given
    event_batch_ingest(merchant=merchant, events=[make_order("A-1")])

    # when
    result = event_batch_ingest(
        merchant=merchant, events=[make_event("Order Refunded", properties={"order_id": "A-1"})]
    )

    # then
    assert result.accepted == 1
    order = Order.objects.for_merchant(merchant).get()
    assert order.status == "refunded"
    assert order.refunded_at is not None


def test_an_anonymous_visitor_who_logs_in_is_stitched_into_the_new_customer(merchant, products):
    # given: browsing anonymously, in an earlier batch
    event_batch_ingest(
        merchant=merchant, events=[make_event(anonymousId="device-9"), make_event(anonymousId="device-9")]
    )

    # when: the same device logs in as a user revopt has never seen
    event_batch_ingest(merchant=merchant, events=[make_event(anonymousId="device-9", userId="alice")])

    # then: the anonymous customer became alice, history included
    customers = Customer.objects.for_merchant(merchant)
    assert customers.count() == 1
    alice = customers.get()
    assert alice.external_id == "alice"
    assert Event.objects.for_merchant(merchant).filter(customer=alice).count() == 3


def test_an_anonymous_visitor_who_logs_in_as_a_known_customer_is_merged_into_them(merchant, products):
    # given: alice bought before on another device; now browses anonymously on a new one
    event_batch_ingest(
        merchant=merchant, events=[make_order("A-1", userId="alice", anonymousId="laptop", sessionId="s1")]
    )
    event_batch_ingest(merchant=merchant, events=[make_event(anonymousId="phone", sessionId="s2")] * 1)
    anonymous = AnonymousIdentity.objects.get(merchant=merchant, anonymous_id="phone").customer

    # when
    event_batch_ingest(merchant=merchant, events=[make_event(anonymousId="phone", userId="alice", sessionId="s2")])

    # then
    alice = Customer.objects.for_merchant(merchant).get(external_id="alice")
    assert Event.objects.for_merchant(merchant).filter(customer=alice).count() == 3
    assert Session.objects.for_merchant(merchant).filter(customer=alice).count() == 2
    anonymous.refresh_from_db()
    assert anonymous.merged_into == alice
    assert AnonymousIdentity.objects.get(merchant=merchant, anonymous_id="phone").customer == alice

    # and later anonymous events from that phone land on alice
    event_batch_ingest(merchant=merchant, events=[make_event(anonymousId="phone", sessionId="s3")])
    assert Event.objects.for_merchant(merchant).filter(customer=alice).count() == 4


def test_stitching_inside_one_batch_keeps_one_customer(merchant, products):
    # when: anonymous views, then login, then an order, all in one batch
    batch = [
        make_event(anonymousId="tab-1"),
        make_event(anonymousId="tab-1", userId="bob"),
        make_order("B-1", anonymousId="tab-1", userId="bob"),
    ]
    event_batch_ingest(merchant=merchant, events=batch)

    # then
    bob = Customer.objects.for_merchant(merchant).get()
    assert bob.external_id == "bob"
    assert set(Event.objects.for_merchant(merchant).values_list("customer_id", flat=True)) == {bob.pk}
    assert Order.objects.for_merchant(merchant).get().customer == bob


def test_a_shared_device_does_not_merge_two_identified_customers(merchant, products):
    # given
    event_batch_ingest(merchant=merchant, events=[make_event(anonymousId="family-pc", userId="carol")])

    # when
    event_batch_ingest(merchant=merchant, events=[make_event(anonymousId="family-pc", userId="dave")])

    # then
    carol = Customer.objects.for_merchant(merchant).get(external_id="carol")
    dave = Customer.objects.for_merchant(merchant).get(external_id="dave")
    assert Event.objects.for_merchant(merchant).filter(customer=carol).count() == 1
    assert Event.objects.for_merchant(merchant).filter(customer=dave).count() == 1
    assert carol.merged_into is None


def test_identify_sets_email_and_consent_flags(merchant):
    # when
    event_batch_ingest(
        merchant=merchant,
        events=[
            {
                "type": "identify",
                "messageId": "id-1",
                "userId": "erin",
                "traits": {"email": "Erin@Example.com", "marketing_consent": True, "personalization_opt_out": True},
            }
        ],
    )

    # then
    erin = Customer.objects.for_merchant(merchant).get(external_id="erin")
    assert erin.email == "erin@example.com"
    assert erin.marketing_consent is True
    assert erin.personalization_opt_out is True


def test_a_batch_costs_a_fixed_number_of_queries(merchant, products, django_assert_max_num_queries):
    # given: 300 events over 100 new visitors, 100 sessions and 10 orders
    batch = []
    for visitor in range(100):
        anonymous = f"v-{visitor}"
        batch.append(make_event(anonymousId=anonymous, sessionId=f"s-{visitor}"))
        batch.append(
            make_event(
                "Product Added",
                anonymousId=anonymous,
                sessionId=f"s-{visitor}",
                properties={"sku": "SKU-2", "price": 9},
            )
        )
        if visitor % 10 == 0:
            batch.append(make_order(f"o-{visitor}", anonymousId=anonymous, sessionId=f"s-{visitor}"))
        else:
            batch.append(make_event("Cart Viewed", anonymousId=anonymous, sessionId=f"s-{visitor}", properties={}))

    # then
    with django_assert_max_num_queries(20):
        result = event_batch_ingest(merchant=merchant, events=batch)
    assert result.accepted == 300


def test_a_batch_mixing_stored_and_new_events_stores_only_the_new_ones(merchant, products):
    # given
    stored = [make_event(), make_order("A-1")]
    event_batch_ingest(merchant=merchant, events=stored)
    fresh = [make_event(anonymousId="new-visitor", sessionId="s-new"), make_order("A-2", anonymousId="new-visitor")]

    # when
    result = event_batch_ingest(merchant=merchant, events=[stored[0], fresh[0], stored[1], fresh[1]])

    # then
    assert _statuses(result) == ["duplicate", "accepted", "duplicate", "accepted"]
    assert Event.objects.for_merchant(merchant).count() == 4
    assert sorted(Order.objects.for_merchant(merchant).values_list("external_id", flat=True)) == ["A-1", "A-2"]
    assert Session.objects.for_merchant(merchant).count() == 2
