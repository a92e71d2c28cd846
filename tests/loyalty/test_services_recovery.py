import hashlib
import hmac
import json
import shutil
import socket
import ssl
import subprocess
import threading
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from unittest import mock

import pytest
from django.utils import timezone

from events.models import Customer
from events.services import event_batch_ingest
from loyalty.models import IncentiveKind, RecoveryMessage, RecoveryStatus
from loyalty.services import recovery
from loyalty.services.offers import OfferOutcome
from loyalty.services.recovery import (
    DEFAULT_DELAYS_MINUTES,
    MAX_DELIVERY_ATTEMPTS,
    abandoned_carts_enqueue,
    recovery_cancel_on_purchase,
    recovery_delays,
    recovery_delays_problem,
    recovery_dispatch,
    recovery_message_compose,
    recovery_messages_hand_over,
    recovery_settings_for,
    recovery_settings_save,
    webhook_signature,
)
from loyalty.webhook_target import webhook_opener
from recommendations.selectors import fallback_popularity_forget
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import ProductFactory
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, SessionFactory
from tests.factories.funnel import OfferDecisionFactory, RecoveryMessageFactory, RecoverySettingsFactory

pytestmark = pytest.mark.django_db


def _shopper(merchant, **overrides) -> Customer:
    fields = {"email": "ann@example.com", "marketing_consent": True, **overrides}
    return CustomerFactory(merchant=merchant, **fields)


def _cart(merchant, customer, *, at, lines, removed=(), cart_id="", external_id=None):
    """A session whose last event is at `at`: each line added (product, quantity), then `removed` taken out."""
    session = SessionFactory(
        merchant=merchant, customer=customer, started_at=at - timedelta(minutes=10), **(
            {"external_id": external_id} if external_id else {}
        )
    )  # fmt: skip
    moment = at - timedelta(minutes=len(lines) + len(removed))
    properties = {"cart_id": cart_id} if cart_id else {}
    for product, quantity in lines:
        EventFactory(
            merchant=merchant, customer=customer, session=session, name="Product Added", product=product,
            price=product.price, quantity=quantity, timestamp=moment, properties=properties,
        )  # fmt: skip
        moment += timedelta(minutes=1)
    for product, quantity in removed:
        EventFactory(
            merchant=merchant, customer=customer, session=session, name="Product Removed", product=product,
            price=product.price, quantity=quantity, timestamp=moment,
        )  # fmt: skip
        moment += timedelta(minutes=1)
    EventFactory(merchant=merchant, customer=customer, session=session, name="Cart Viewed", timestamp=at)
    return session


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def product(merchant):
    return ProductFactory(
        merchant=merchant,
        sku="MUG",
        title="Blue mug",
        price=Decimal("20.00"),
        image_url="https://cdn.example.com/mug.png",
    )


# --- settings -----------------------------------------------------------------------------------------------


def test_empty_delays_mean_one_hour_and_one_day(merchant):
    # given settings left at their defaults
    settings = recovery_settings_for(merchant=merchant)

    # when / then
    assert settings.delays_minutes == []
    assert recovery_delays(settings=settings) == DEFAULT_DELAYS_MINUTES == (60, 1440)


@pytest.mark.parametrize(
    ("delays", "accepted"),
    [
        ([60, 1440], True),
        ([15], True),
        ([20160], True),
        ([], False),
        ([10], False),
        ([20161], False),
        ([60, 60], False),
        ([1440, 60], False),
        ([15, 30, 45, 60, 90, 120], False),
        (["60"], False),
        ("60", False),
    ],
)
def test_delays_are_one_to_five_increasing_steps_between_15_minutes_and_14_days(delays, accepted):
    # when
    problem = recovery_delays_problem(delays)

    # then
    assert (problem is None) is accepted


# --- enqueue ------------------------------------------------------------------------------------------------


def test_an_abandoned_cart_gets_a_message_after_one_hour_and_one_day(merchant, product, now):
    # given a cart left 40 minutes ago: 2 mugs added, 1 taken out again, plus 1 other product
    customer = _shopper(merchant)
    other = ProductFactory(merchant=merchant, price=Decimal("5.50"))
    left_at = now - timedelta(minutes=40)
    _cart(merchant, customer, at=left_at, lines=[(product, 2), (other, 1)], removed=[(product, 1)], cart_id="c-1")

    # when
    created = abandoned_carts_enqueue(merchant=merchant, now=now)

    # then
    messages = list(RecoveryMessage.objects.filter(merchant=merchant).order_by("step"))
    assert created == 2
    assert [(m.cart_id, m.step, m.scheduled_at - left_at) for m in messages] == [
        ("c-1", 1, timedelta(hours=1)),
        ("c-1", 2, timedelta(hours=24)),
    ]
    assert {m.cart_value for m in messages} == {Decimal("25.50")}
    assert {m.status for m in messages} == {RecoveryStatus.PENDING}


def test_enqueue_is_idempotent(merchant, product, now):
    # given
    _cart(merchant, _shopper(merchant), at=now - timedelta(minutes=40), lines=[(product, 1)])
    abandoned_carts_enqueue(merchant=merchant, now=now)

    # when run again, later
    again = abandoned_carts_enqueue(merchant=merchant, now=now + timedelta(minutes=10))

    # then
    assert again == 0
    assert RecoveryMessage.objects.filter(merchant=merchant).count() == 2


def test_the_cart_id_falls_back_to_the_session_and_follows_the_merchants_delays(merchant, product, now):
    # given three steps configured, and a cart without a cart_id
    RecoverySettingsFactory(merchant=merchant, delays_minutes=[30, 120, 600])
    session = _cart(merchant, _shopper(merchant), at=now - timedelta(minutes=40), lines=[(product, 1)])

    # when
    abandoned_carts_enqueue(merchant=merchant, now=now)

    # then
    assert list(RecoveryMessage.objects.filter(merchant=merchant).order_by("step").values_list("cart_id", "step")) == [
        (session.external_id, 1),
        (session.external_id, 2),
        (session.external_id, 3),
    ]


@pytest.mark.parametrize(
    ("minutes_idle", "expected"),
    [(20, 0), (31, 2), (47 * 60, 1), (49 * 60, 0)],
)
def test_only_carts_idle_past_the_threshold_and_within_48_hours_are_followed_up(
    merchant, product, now, minutes_idle, expected
):
    # given the default threshold of 30 minutes; a cart 47 h old gets only its overdue 24 h step
    _cart(merchant, _shopper(merchant), at=now - timedelta(minutes=minutes_idle), lines=[(product, 1)])

    # when
    created = abandoned_carts_enqueue(merchant=merchant, now=now)

    # then
    assert created == expected


@pytest.mark.parametrize(
    "customer_fields",
    [
        {"marketing_consent": False},
        {"email": ""},
        {"external_id": None},
        {"erased_at": timezone.now() - timedelta(days=1)},
    ],
    ids=["no consent", "no e-mail", "anonymous", "erased"],
)
def test_customers_who_cannot_be_mailed_get_nothing(merchant, product, now, customer_fields):
    # given
    _cart(merchant, _shopper(merchant, **customer_fields), at=now - timedelta(minutes=40), lines=[(product, 1)])

    # when
    created = abandoned_carts_enqueue(merchant=merchant, now=now)

    # then
    assert created == 0


def test_carts_that_ended_in_an_order_or_were_emptied_get_nothing(merchant, product, now):
    # given an ordered cart, a cart whose customer ordered later elsewhere, an emptied cart, a disabled shop
    ordered = _cart(merchant, _shopper(merchant), at=now - timedelta(minutes=40), lines=[(product, 1)])
    OrderFactory(merchant=merchant, customer=ordered.customer, session=ordered, placed_at=now - timedelta(minutes=41))
    elsewhere = _cart(merchant, _shopper(merchant), at=now - timedelta(minutes=40), lines=[(product, 1)])
    OrderFactory(merchant=merchant, customer=elsewhere.customer, placed_at=now - timedelta(minutes=35))
    _cart(merchant, _shopper(merchant), at=now - timedelta(minutes=40), lines=[(product, 1)], removed=[(product, 1)])

    # when
    created = abandoned_carts_enqueue(merchant=merchant, now=now)

    # then
    assert created == 0


def test_a_disabled_shop_and_other_merchants_are_left_alone(merchant, other_merchant, product, now):
    # given a cart in each shop, recovery switched off for one
    RecoverySettingsFactory(merchant=merchant, enabled=False)
    _cart(merchant, _shopper(merchant), at=now - timedelta(minutes=40), lines=[(product, 1)])
    other_product = ProductFactory(merchant=other_merchant)
    _cart(other_merchant, _shopper(other_merchant), at=now - timedelta(minutes=40), lines=[(other_product, 1)])

    # when
    created = abandoned_carts_enqueue(merchant=merchant, now=now)
    created_for_other = abandoned_carts_enqueue(merchant=other_merchant, now=now)

    # then
    assert created == 0
    assert created_for_other == 2
    assert not RecoveryMessage.objects.filter(merchant=merchant).exists()


# --- consent at send time -----------------------------------------------------------------------------------


def _due_message(merchant, product, now, **customer_fields) -> RecoveryMessage:
    customer = _shopper(merchant, **customer_fields)
    _cart(merchant, customer, at=now - timedelta(hours=2), lines=[(product, 1)], cart_id="c-due")
    abandoned_carts_enqueue(merchant=merchant, now=now - timedelta(hours=1, minutes=20))
    return RecoveryMessage.objects.get(merchant=merchant, step=1)


@pytest.mark.parametrize("change", ["withdrawn", "unsubscribed", "erased", "purchased"])
def test_a_message_whose_customer_may_no_longer_be_mailed_is_cancelled_never_sent(merchant, product, now, change):
    # given a due message, then the customer changes their mind
    message = _due_message(merchant, product, now)
    customer = message.customer
    if change == "withdrawn":
        Customer.objects.filter(pk=customer.pk).update(marketing_consent=False)
    elif change == "unsubscribed":
        EventFactory(merchant=merchant, customer=customer, name="Unsubscribed", timestamp=now - timedelta(minutes=5))
    elif change == "erased":
        Customer.objects.filter(pk=customer.pk).update(erased_at=now)
    else:
        OrderFactory(merchant=merchant, customer=customer, placed_at=now - timedelta(minutes=5))

    # when
    handed_over = recovery_messages_hand_over(merchant=merchant, limit=10, now=now)

    # then
    message.refresh_from_db()
    assert handed_over == []
    assert message.status == RecoveryStatus.CANCELLED
    assert message.cancelled_reason == {"withdrawn": "no_consent"}.get(change, change)
    assert message.sent_at is None


def test_an_order_ingested_for_the_customer_cancels_their_pending_messages(merchant, product, now):
    # given two pending messages of a customer known by the shop's id
    customer = _shopper(merchant, external_id="shopper-1")
    _cart(merchant, customer, at=now - timedelta(minutes=40), lines=[(product, 1)])
    abandoned_carts_enqueue(merchant=merchant, now=now)
    order_event = {
        "type": "track", "event": "Order Completed", "messageId": "m-order-1", "userId": "shopper-1",
        "timestamp": (now - timedelta(minutes=1)).isoformat(),
        "properties": {"order_id": "A-1", "products": [{"sku": "MUG", "price": 20, "quantity": 1}]},
    }  # fmt: skip

    # when the storefront reports the order
    event_batch_ingest(merchant=merchant, events=[order_event])

    # then
    messages = RecoveryMessage.objects.filter(merchant=merchant)
    assert {(m.status, m.cancelled_reason) for m in messages} == {(RecoveryStatus.CANCELLED, "purchased")}
    assert messages.count() == 2


def test_an_order_cancels_only_its_own_customers_messages(merchant, product, now):
    # given pending messages of two customers
    buyer = _shopper(merchant)
    _cart(merchant, buyer, at=now - timedelta(minutes=40), lines=[(product, 1)])
    other = _shopper(merchant)
    _cart(merchant, other, at=now - timedelta(minutes=40), lines=[(product, 1)])
    abandoned_carts_enqueue(merchant=merchant, now=now)
    order = OrderFactory(merchant=merchant, customer=buyer, placed_at=now)

    # when
    cancelled = recovery_cancel_on_purchase(merchant=merchant, order_ids=[order.pk])

    # then
    assert cancelled == 2
    pending = RecoveryMessage.objects.filter(merchant=merchant, status=RecoveryStatus.PENDING)
    assert sorted(pending.values_list("customer_id", flat=True)) == [other.pk, other.pk]


def test_no_orders_cost_no_query(merchant, django_assert_num_queries):
    # when / then
    with django_assert_num_queries(0):
        assert recovery_cancel_on_purchase(merchant=merchant, order_ids=[]) == 0


# --- composing ----------------------------------------------------------------------------------------------


def _offer_outcome(merchant, customer, kind=IncentiveKind.PERCENT_10):
    decision = OfferDecisionFactory(merchant=merchant, customer=customer, kind=kind, code="RVO-SAVE10")
    return OfferOutcome(decision=decision, snapshot=mock.Mock())


def test_the_first_message_holds_the_items_and_recommendations_but_no_offer(merchant, product, now):
    # given
    message = _due_message(merchant, product, now)
    other = ProductFactory(merchant=merchant, sku="CUP", title="Cup", price=Decimal("9.00"))
    suggested = mock.Mock(items=[mock.Mock(reference="CUP", sku="CUP", title="Cup", price=other.price)])

    # when
    with (
        mock.patch("recommendations.selectors.recommendations_for", return_value=suggested) as recommend,
        mock.patch.object(recovery, "offer_decide") as decide,
    ):
        content = recovery_message_compose(message=message, now=now)

    # then
    assert content["items"] == [
        {
            "sku": "MUG",
            "title": "Blue mug",
            "price": "20.00",
            "quantity": 1,
            "image_url": "https://cdn.example.com/mug.png",
            "url": "",
        }
    ]
    assert content["recommendations"] == [{"product_id": "CUP", "sku": "CUP", "title": "Cup", "price": "9.00"}]
    assert recommend.call_args.kwargs["placement"] == "cart"
    assert recommend.call_args.kwargs["cart_product_ids"] == ["MUG"]
    assert content["offer"] is None
    decide.assert_not_called()


def test_recommendations_come_from_the_cart_placement_for_real(merchant, product, now):
    # given a catalog to recommend from, viewed lately (no trained model: the popularity fallback)
    fallback_popularity_forget()
    for other in ProductFactory.create_batch(5, merchant=merchant):
        EventFactory(merchant=merchant, product=other, name="Product Viewed", timestamp=now - timedelta(hours=3))
    message = _due_message(merchant, product, now)

    # when
    content = recovery_message_compose(message=message, now=now)

    # then the cart's own product is never suggested back
    assert content["recommendations"]
    assert "MUG" not in {item["sku"] for item in content["recommendations"]}


def test_the_last_message_carries_the_offer_decided_for_the_recovery_channel(merchant, product, now):
    # given the second (last) step
    message = _due_message(merchant, product, now)
    last = RecoveryMessage.objects.get(merchant=merchant, step=2)

    # when
    with mock.patch.object(recovery, "offer_decide", return_value=_offer_outcome(merchant, message.customer)) as decide:
        content = recovery_message_compose(message=last, now=now)
        again = recovery_message_compose(message=last, now=now + timedelta(minutes=5))

    # then the decision is asked once, for this cart, on the recovery channel
    request = decide.call_args.kwargs["request"]
    assert decide.call_count == 1
    assert (request.channel, request.cart_id, request.customer_external_id) == (
        "recovery", "c-due", message.customer.external_id,
    )  # fmt: skip
    assert [(line.sku, line.quantity, line.price) for line in request.lines] == [("MUG", 1, Decimal("20.00"))]
    assert content["offer"]["code"] == "RVO-SAVE10"
    assert content["offer"]["kind"] == IncentiveKind.PERCENT_10
    assert again == content
    last.refresh_from_db()
    assert last.offer.code == "RVO-SAVE10"


def test_no_offer_when_the_decision_is_none_and_no_recommendations_for_opted_out_customers(merchant, product, now):
    # given an opted-out customer's last message
    _due_message(merchant, product, now, personalization_opt_out=True)
    last = RecoveryMessage.objects.get(merchant=merchant, step=2)
    outcome = _offer_outcome(merchant, last.customer, kind=IncentiveKind.NONE)

    # when
    with (
        mock.patch("recommendations.selectors.recommendations_for") as recommend,
        mock.patch.object(recovery, "offer_decide", return_value=outcome),
    ):
        content = recovery_message_compose(message=last, now=now)

    # then
    assert content["offer"] is None
    assert content["recommendations"] == []
    recommend.assert_not_called()


# --- webhook ------------------------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    replies: list[int] = []
    received: list[tuple[dict, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((dict(self.headers), body))
        self.send_response(_Receiver.replies.pop(0) if _Receiver.replies else 200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def loopback_webhooks_allowed(settings):
    """The operator lets webhooks reach 127.0.0.0/8, where the tests' receivers listen (plain http inside it)."""
    settings.REVOPT = {**settings.REVOPT, "WEBHOOK_ALLOWED_NETWORKS": ["127.0.0.0/8"]}


@pytest.fixture
def receiver(loopback_webhooks_allowed):
    _Receiver.replies, _Receiver.received = [], []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/recovery", _Receiver
    server.shutdown()
    server.server_close()


def test_the_webhook_body_is_signed_with_the_merchants_secret(merchant, product, now, receiver):
    # given
    url, server = receiver
    RecoverySettingsFactory(merchant=merchant, webhook_url=url, webhook_secret="s3cret")
    message = _due_message(merchant, product, now)

    # when
    result = recovery_dispatch(merchant=merchant, now=now)

    # then the receiver can verify the body with the shared secret
    assert result.sent == 1
    headers, body = server.received[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Revopt-Signature"] == expected == webhook_signature(secret="s3cret", body=body)
    payload = json.loads(body)
    assert (payload["id"], payload["email"], payload["step"], payload["steps"]) == (message.pk, "ann@example.com", 1, 2)
    assert payload["timestamp"] == int(headers["X-Revopt-Timestamp"]) == int(now.timestamp())
    assert payload["content"]["items"][0]["sku"] == "MUG"
    message.refresh_from_db()
    assert (message.status, message.sent_at, message.delivery_attempts) == (RecoveryStatus.SENT, now, 1)


def test_a_failing_webhook_is_retried_with_backoff_then_marked_failed(merchant, product, now, receiver):
    # given a receiver that always answers 500
    url, server = receiver
    server.replies = [500] * 10
    RecoverySettingsFactory(merchant=merchant, webhook_url=url, webhook_secret="s3cret")
    message = _due_message(merchant, product, now)

    # when dispatched every 5 minutes for 3 hours
    attempts_at = []
    for minute in range(0, 180, 5):
        at = now + timedelta(minutes=minute)
        before = len(server.received)
        recovery_dispatch(merchant=merchant, now=at)
        if len(server.received) > before:
            attempts_at.append(minute)

    # then 5 attempts, further and further apart, and the message failed with the last error
    message.refresh_from_db()
    assert len(attempts_at) == MAX_DELIVERY_ATTEMPTS
    gaps = [later - earlier for earlier, later in zip(attempts_at, attempts_at[1:], strict=False)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]
    assert (message.status, message.delivery_attempts, message.last_error) == (RecoveryStatus.FAILED, 5, "HTTP 500")
    assert message.sent_at is None


def test_a_webhook_that_recovers_sends_the_same_content_once(merchant, product, now, receiver):
    # given a receiver down once, then up
    url, server = receiver
    server.replies = [503]
    RecoverySettingsFactory(merchant=merchant, webhook_url=url, webhook_secret="s3cret")
    message = _due_message(merchant, product, now)

    # when
    first = recovery_dispatch(merchant=merchant, now=now)
    too_early = recovery_dispatch(merchant=merchant, now=now + timedelta(minutes=1))
    second = recovery_dispatch(merchant=merchant, now=now + timedelta(minutes=6))
    third = recovery_dispatch(merchant=merchant, now=now + timedelta(minutes=12))

    # then
    assert (first.retrying, too_early.sent, second.sent, third.sent) == (1, 0, 1, 0)
    bodies = [json.loads(body) for _, body in server.received]
    assert len(bodies) == 2 and bodies[0]["content"] == bodies[1]["content"]
    message.refresh_from_db()
    assert (message.status, message.delivery_attempts, message.last_error) == (RecoveryStatus.SENT, 2, "")


def test_an_unreachable_webhook_counts_as_a_failed_attempt(merchant, product, now, loopback_webhooks_allowed):
    # given nothing listening
    RecoverySettingsFactory(merchant=merchant, webhook_url="http://127.0.0.1:9/none", webhook_secret="s")
    message = _due_message(merchant, product, now)

    # when
    result = recovery_dispatch(merchant=merchant, now=now)

    # then
    message.refresh_from_db()
    assert result.retrying == 1
    assert (message.status, message.delivery_attempts) == (RecoveryStatus.PENDING, 1)
    assert "Connection refused" in message.last_error


# --- attribution --------------------------------------------------------------------------------------------


def test_an_order_within_7_days_of_a_sent_message_is_credited_to_the_latest(merchant, now):
    # given two sent messages of a cart, and one sent 8 days before to another cart
    customer = _shopper(merchant)
    old = RecoveryMessageFactory(merchant=merchant, customer=customer, status="sent", sent_at=now - timedelta(days=8))
    first = RecoveryMessageFactory(
        merchant=merchant, customer=customer, cart_id="c", step=1, status="sent", sent_at=now - timedelta(days=2)
    )
    second = RecoveryMessageFactory(
        merchant=merchant, customer=customer, cart_id="c", step=2, status="sent", sent_at=now - timedelta(days=1)
    )
    order = OrderFactory(merchant=merchant, customer=customer, placed_at=now)

    # when
    recovery_cancel_on_purchase(merchant=merchant, order_ids=[order.pk])

    # then
    recovered = {m.pk: m.recovered_order_id for m in RecoveryMessage.objects.filter(merchant=merchant)}
    assert recovered == {old.pk: None, first.pk: None, second.pk: order.pk}


def test_an_order_using_the_offer_code_is_credited_even_after_7_days(merchant, now):
    # given a message sent 10 days ago with an offer code
    customer = _shopper(merchant)
    offer = OfferDecisionFactory(merchant=merchant, customer=customer, code="RVO-LATE")
    message = RecoveryMessageFactory(
        merchant=merchant, customer=customer, status="sent", sent_at=now - timedelta(days=10), offer=offer
    )
    plain = OrderFactory(merchant=merchant, customer=customer, placed_at=now - timedelta(minutes=1))
    with_code = OrderFactory(merchant=merchant, customer=customer, placed_at=now, coupon="RVO-LATE")

    # when
    recovery_cancel_on_purchase(merchant=merchant, order_ids=[plain.pk, with_code.pk])

    # then
    message.refresh_from_db()
    assert message.recovered_order_id == with_code.pk


def test_pending_and_other_customers_messages_are_not_credited(merchant, now):
    # given
    customer = _shopper(merchant)
    pending = RecoveryMessageFactory(merchant=merchant, customer=customer, abandoned_at=now + timedelta(minutes=1))
    elses = RecoveryMessageFactory(merchant=merchant, status="sent", sent_at=now - timedelta(days=1))
    order = OrderFactory(merchant=merchant, customer=customer, placed_at=now)

    # when
    recovery_cancel_on_purchase(merchant=merchant, order_ids=[order.pk])

    # then
    pending.refresh_from_db()
    elses.refresh_from_db()
    assert (pending.recovered_order_id, elses.recovered_order_id) == (None, None)
    assert pending.status == RecoveryStatus.PENDING


def test_a_dead_receiver_stops_the_run_after_three_failures_in_a_row(merchant, product, now, loopback_webhooks_allowed):
    # given five due messages and a webhook nobody answers
    RecoverySettingsFactory(merchant=merchant, webhook_url="http://127.0.0.1:9/none", webhook_secret="s")
    for _ in range(5):
        customer = _shopper(merchant)
        _cart(merchant, customer, at=now - timedelta(hours=2), lines=[(product, 1)])
    abandoned_carts_enqueue(merchant=merchant, now=now - timedelta(hours=1, minutes=20))

    # when
    result = recovery_dispatch(merchant=merchant, now=now)

    # then only three were tried; the other two keep all their attempts
    attempts = sorted(
        RecoveryMessage.objects.filter(merchant=merchant, step=1).values_list("delivery_attempts", flat=True)
    )
    assert result.retrying == 3
    assert attempts == [0, 0, 1, 1, 1]


def test_dispatch_posts_nothing_without_a_webhook_nor_for_other_shops(merchant, other_merchant, product, now, receiver):
    # given the other shop has a webhook, this one pulls
    url, server = receiver
    RecoverySettingsFactory(merchant=other_merchant, webhook_url=url, webhook_secret="s")
    message = _due_message(merchant, product, now)

    # when
    mine = recovery_dispatch(merchant=merchant, now=now)
    others = recovery_dispatch(merchant=other_merchant, now=now)

    # then
    message.refresh_from_db()
    assert (mine.sent, others.sent) == (0, 0)
    assert server.received == []
    assert (message.status, message.delivery_attempts) == (RecoveryStatus.PENDING, 0)


def test_settings_saves_are_audited_and_bad_delays_refused(merchant, merchant_manager):
    # given
    settings = recovery_settings_for(merchant=merchant)

    # when
    settings.delays_minutes = [30, 240]
    recovery_settings_save(settings=settings, actor=merchant_manager)
    settings.delays_minutes = [240, 30]

    # then
    entry = AuditLogEntry.objects.get(merchant=merchant, action="recovery_settings.save")
    assert (entry.actor, entry.detail["delays_minutes"]) == (merchant_manager, [30, 240])
    with pytest.raises(ValueError, match="longer than the one before"):
        recovery_settings_save(settings=settings, actor=merchant_manager)
    settings.refresh_from_db()
    assert settings.delays_minutes == [30, 240]


def test_a_redirect_is_not_a_delivery(merchant, product, now, receiver):
    # given a receiver answering 302 (urllib would re-send as a GET without the body)
    url, server = receiver
    server.replies = [302]
    RecoverySettingsFactory(merchant=merchant, webhook_url=url, webhook_secret="s")
    message = _due_message(merchant, product, now)

    # when
    result = recovery_dispatch(merchant=merchant, now=now)

    # then
    message.refresh_from_db()
    assert result.retrying == 1
    assert len(server.received) == 1
    assert (message.status, message.last_error) == (RecoveryStatus.PENDING, "HTTP 302")


def test_orders_of_a_shop_without_messages_cost_no_recovery_query_once_cached(merchant, django_assert_num_queries):
    # given a shop that never scheduled a message, asked once
    first, second = OrderFactory(merchant=merchant), OrderFactory(merchant=merchant)
    recovery_cancel_on_purchase(merchant=merchant, order_ids=[first.pk])

    # when / then
    with django_assert_num_queries(0):
        assert recovery_cancel_on_purchase(merchant=merchant, order_ids=[second.pk]) == 0


# --- webhook targets: never into revopt's own network ---------------------------------------------------------


def _due_messages(merchant, product, now, count: int) -> list[RecoveryMessage]:
    for _ in range(count):
        _cart(merchant, _shopper(merchant), at=now - timedelta(hours=2), lines=[(product, 1)])
    abandoned_carts_enqueue(merchant=merchant, now=now - timedelta(hours=1, minutes=20))
    return list(RecoveryMessage.objects.filter(merchant=merchant, step=1))


def _resolving_to(*answers: list[str]):
    """Mock DNS: the n-th lookup answers answers[n] (the last one from then on)."""
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        addresses = answers[min(len(calls), len(answers) - 1)]
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port)) for address in addresses]

    return mock.patch("loyalty.webhook_target.socket.getaddrinfo", side_effect=getaddrinfo), calls


def test_a_name_that_rebinds_to_a_private_address_after_the_save_is_refused_at_send_time(
    client, merchant, merchant_manager, product, now, receiver, settings, caplog
):
    # given the admin accepted the name while it resolved to a public address
    url, server = receiver
    port = url.split(":")[2].split("/")[0]
    settings.REVOPT = {**settings.REVOPT, "WEBHOOK_ALLOWED_NETWORKS": []}
    client.force_login(merchant_manager)
    dns, _ = _resolving_to(["93.184.216.34"])
    with dns:
        response = client.post(
            "/admin/loyalty/recoverysettings/add/",
            {
                "enabled": "on", "abandoned_after_minutes": "30", "delays_minutes": "[60, 1440]",
                "webhook_url": f"https://hooks.shop.example:{port}/r", "webhook_secret": "s3cret",
            },
        )  # fmt: skip
    assert response.status_code == 302
    messages = _due_messages(merchant, product, now, 2)

    # when the name now resolves to the loopback, where the receiver listens
    dns, _ = _resolving_to(["127.0.0.1"])
    with dns, caplog.at_level("WARNING", logger="loyalty.services.recovery"):
        result = recovery_dispatch(merchant=merchant, now=now)

    # then nothing was delivered; each attempt failed with the reason, which was logged once
    assert server.received == []
    assert (result.sent, result.retrying) == (0, 2)
    reason = "Refused: hooks.shop.example resolves to 127.0.0.1, a loopback address"
    for message in messages:
        message.refresh_from_db()
        assert (message.status, message.delivery_attempts, message.last_error) == (RecoveryStatus.PENDING, 1, reason)
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1 and "resolves to 127.0.0.1, a loopback address" in warnings[0]


def test_the_post_goes_to_the_address_checked_not_to_a_new_resolution(merchant, product, now, receiver):
    # given a name resolving to the receiver when checked, and to another address on any later lookup
    url, server = receiver
    RecoverySettingsFactory(
        merchant=merchant, webhook_url=url.replace("127.0.0.1", "relay.internal"), webhook_secret="s3cret"
    )
    messages = _due_messages(merchant, product, now, 2)
    dns, lookups = _resolving_to(["127.0.0.1"], ["10.9.9.9"])

    # when
    with dns:
        result = recovery_dispatch(merchant=merchant, now=now)

    # then one lookup for the run; both messages reached the checked address, addressed to the name
    assert result.sent == 2
    assert lookups == ["relay.internal"]
    assert len(server.received) == 2
    host = url.split("/")[2].replace("127.0.0.1", "relay.internal")
    assert [headers["Host"] for headers, _ in server.received] == [host, host]
    for message in messages:
        message.refresh_from_db()
        assert message.status == RecoveryStatus.SENT


def test_plain_http_to_a_public_address_is_refused_at_send_time(merchant, product, now, receiver):
    # given an http URL written past the admin (which demands https), to a public address
    RecoverySettingsFactory(merchant=merchant, webhook_url="http://93.184.216.34/r", webhook_secret="s")
    message = _due_message(merchant, product, now)

    # when
    with mock.patch("loyalty.webhook_target.socket.socket") as connect:
        result = recovery_dispatch(merchant=merchant, now=now)

    # then
    message.refresh_from_db()
    assert result.retrying == 1
    assert message.last_error == "Refused: only https:// addresses can receive webhooks"
    assert not connect.called


# --- TLS to the checked address, verified for the name -----------------------------------------------------


def _certificate(directory, name: str) -> tuple[str, str]:
    key, cert = str(directory / f"{name}.key"), str(directory / f"{name}.pem")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.fixture
def tls_receiver(tmp_path, loopback_webhooks_allowed):
    """An https receiver on 127.0.0.1 whose certificate names hooks.shop.example; the client trusts it (and only
    it). Yields (url, receiver class, names the clients asked for by SNI, certificate maker)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    _Receiver.replies, _Receiver.received = [], []
    sni: list[str | None] = []
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.sni_callback = lambda sock, name, context: sni.append(name)
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    server.socket = server_tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def serve_as(name: str) -> None:
        key, cert = _certificate(tmp_path, name)
        server_tls.load_cert_chain(cert, key)
        trusted = ssl.create_default_context(cafile=cert)
        patch = mock.patch.object(recovery, "_OPENER", webhook_opener(tls=trusted))
        patch.start()
        cleanups.append(patch.stop)

    cleanups: list = []
    thread.start()
    yield f"https://hooks.shop.example:{server.server_port}/r", _Receiver, sni, serve_as
    for cleanup in cleanups:
        cleanup()
    server.shutdown()
    server.server_close()


def test_https_goes_to_the_checked_address_with_the_certificate_verified_for_the_name(
    merchant, product, now, tls_receiver
):
    # given a receiver presenting a certificate for hooks.shop.example
    url, server, sni, serve_as = tls_receiver
    serve_as("hooks.shop.example")
    RecoverySettingsFactory(merchant=merchant, webhook_url=url, webhook_secret="s3cret")
    message = _due_message(merchant, product, now)
    dns, _ = _resolving_to(["127.0.0.1"])

    # when
    with dns:
        result = recovery_dispatch(merchant=merchant, now=now)

    # then
    assert result.sent == 1
    assert sni == ["hooks.shop.example"]
    headers, body = server.received[0]
    assert headers["X-Revopt-Signature"] == webhook_signature(secret="s3cret", body=body)
    message.refresh_from_db()
    assert message.status == RecoveryStatus.SENT


def test_a_certificate_for_another_name_is_not_a_delivery(merchant, product, now, tls_receiver):
    # given the checked address answers with a certificate for another name
    url, server, _, serve_as = tls_receiver
    serve_as("elsewhere.example")
    RecoverySettingsFactory(merchant=merchant, webhook_url=url, webhook_secret="s3cret")
    message = _due_message(merchant, product, now)
    dns, _ = _resolving_to(["127.0.0.1"])

    # when
    with dns:
        result = recovery_dispatch(merchant=merchant, now=now)

    # then
    message.refresh_from_db()
    assert (result.sent, result.retrying) == (0, 1)
    assert server.received == []
    assert "CERTIFICATE_VERIFY_FAILED" in message.last_error
