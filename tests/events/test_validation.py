from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from events.validation import FieldError, ParsedEvent, device_type, parse_event

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def _parse(raw):
    return parse_event(raw, index=0, now=NOW, future_skew=SKEW)


def _viewed(**overrides):
    event = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "m-1",
        "anonymousId": "anon-1",
        "timestamp": "2026-11-24T11:00:00Z",
        "properties": {"product_id": "SKU-1", "price": 19.99},
        "context": {"device": {"type": "mobile"}},
    }
    event.update(overrides)
    return event


def _completed(**property_overrides):
    properties = {
        "order_id": "o-1",
        "products": [{"product_id": "SKU-1", "price": 20, "quantity": 2}, {"sku": "SKU-2", "price": "5.50"}],
        "shipping": 4.5,
        "tax": 3,
    }
    properties.update(property_overrides)
    return _viewed(event="Order Completed", properties=properties)


def test_a_valid_product_view_is_parsed_with_typed_fields():
    # when
    event = _parse(_viewed())

    # then
    assert isinstance(event, ParsedEvent)
    assert event.name == "Product Viewed"
    assert event.product_ref == "SKU-1"
    assert event.price == Decimal("19.99")
    assert event.device == "mobile"
    assert event.timestamp == datetime(2026, 11, 24, 11, 0, tzinfo=UTC)


def test_order_completed_derives_subtotal_and_total_from_its_lines():
    # when
    event = _parse(_completed())

    # then
    assert event.order.subtotal == Decimal("45.50")
    assert event.order.total == Decimal("53.00")
    assert [(line.product_ref, line.quantity) for line in event.order.lines] == [("SKU-1", 2), ("SKU-2", 1)]
    assert event.quantity == 3


@pytest.mark.parametrize(
    ("raw", "field", "reason_part"),
    [
        ("not an object", "batch[0]", "JSON object"),
        (_viewed(messageId=None), "messageId", "required"),
        (_viewed(messageId="x" * 101), "messageId", "at most"),
        (_viewed(anonymousId=None), "userId", "userId or anonymousId"),
        (_viewed(userId={"id": 1}), "userId", "string"),
        (_viewed(type="alias"), "type", "unknown call type"),
        (_viewed(event="Product Teleported"), "event", "unknown event type"),
        (_viewed(event=None), "event", "required"),
        (_viewed(timestamp="yesterday"), "timestamp", "ISO 8601"),
        (_viewed(timestamp="2026-11-24T11:00:00"), "timestamp", "time zone"),
        (_viewed(timestamp="2026-11-24T12:06:00Z"), "timestamp", "future"),
        (_viewed(properties=[]), "properties", "object"),
        (_viewed(context="mobile"), "context", "object"),
        (_viewed(properties={"price": 3}), "properties.product_id", "required"),
        (_viewed(properties={"product_id": "SKU-1", "price": 0}), "properties.price", "positive"),
        (_viewed(properties={"product_id": "SKU-1", "price": -4}), "properties.price", "positive"),
        (_viewed(properties={"product_id": "SKU-1", "price": "cheap"}), "properties.price", "number"),
        (_viewed(properties={"product_id": "SKU-1", "price": float("nan")}), "properties.price", "finite"),
        (_viewed(properties={"product_id": "SKU-1", "quantity": 0}), "properties.quantity", "at least 1"),
        (_viewed(properties={"product_id": "SKU-1", "quantity": 1.5}), "properties.quantity", "whole"),
        (_completed(order_id=None), "properties.order_id", "required"),
        (_completed(products=[]), "properties.products", "non-empty"),
        (_completed(products=[{"price": 3}]), "properties.products[0].product_id", "required"),
        (_completed(products=[{"sku": "A", "price": 0}]), "properties.products[0].price", "positive"),
        (_completed(products=[{"sku": "A"}]), "properties.products[0].price", "required"),
        (_completed(shipping=-1), "properties.shipping", "negative"),
        (_completed(currency="dollars"), "properties.currency", "ISO 4217"),
        (_viewed(event="Products Searched", properties={}), "properties.query", "required"),
        (_viewed(event="Order Refunded", properties={}), "properties.order_id", "required"),
        (_viewed(type="identify", event=None, traits={"email": "nope"}), "traits.email", "e-mail"),
        (
            _viewed(type="identify", event=None, traits={"personalization_opt_out": "yes"}),
            "traits.personalization_opt_out",
            "true or false",
        ),
    ],
)
def test_each_bad_event_is_rejected_naming_the_field(raw, field, reason_part):
    # when
    outcome = _parse(raw)

    # then
    assert isinstance(outcome, FieldError)
    assert outcome.field == field
    assert reason_part in outcome.reason


def test_a_timestamp_within_the_clock_skew_is_accepted():
    # when
    event = _parse(_viewed(timestamp="2026-11-24T12:04:00Z"))

    # then
    assert isinstance(event, ParsedEvent)


def test_a_missing_timestamp_defaults_to_receipt_time():
    raw = _viewed()
    del raw["timestamp"]

    assert _parse(raw).timestamp == NOW


def test_identify_and_page_calls_get_their_own_names_and_traits():
    # when
    identify = _parse(
        {"type": "identify", "messageId": "i", "userId": "u1", "traits": {"email": "A@B.CO", "marketing_consent": True}}
    )
    page = _parse({"type": "page", "messageId": "p", "anonymousId": "a"})

    # then
    assert identify.name == "Identify"
    assert identify.traits == {"email": "a@b.co", "marketing_consent": True}
    assert page.name == "Page Viewed"


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"device": {"type": "ios"}}, "mobile"),
        ({"device": {"type": "Tablet"}}, "tablet"),
        ({"userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"}, "mobile"),
        ({"userAgent": "Mozilla/5.0 (X11; Linux x86_64)"}, "desktop"),
        ({}, "other"),
    ],
)
def test_device_type_comes_from_the_device_or_the_user_agent(context, expected):
    assert device_type(context) == expected
