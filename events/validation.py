"""Checks one incoming Segment-style event and turns it into a typed record, or into field errors.

Pure Python, no Django: the ingest service calls it for every event on the hot path, and it is tested
and benchmarked on its own. Anything that needs the database (unknown product, duplicate message id,
unknown order) is checked by the service after all events of a batch are parsed.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

ID_MAX_LENGTH = 100

PRODUCT_EVENTS = frozenset(
    {
        "Product Clicked",
        "Product Viewed",
        "Product Added",
        "Product Removed",
        "Product Added to Wishlist",
        "Product Removed from Wishlist",
        "Wishlist Product Added to Cart",
        "Product Shared",
        "Product Reviewed",
    }
)
ORDER_CHANGE_EVENTS = frozenset({"Order Refunded", "Order Cancelled"})
ORDER_COMPLETED = "Order Completed"
TRACK_EVENTS = (
    PRODUCT_EVENTS
    | ORDER_CHANGE_EVENTS
    | {
        ORDER_COMPLETED,
        "Products Searched",
        "Product List Viewed",
        "Product List Filtered",
        "Promotion Viewed",
        "Promotion Clicked",
        "Cart Viewed",
        "Cart Shared",
        "Checkout Started",
        "Checkout Step Viewed",
        "Checkout Step Completed",
        "Payment Info Entered",
        "Order Updated",
        "Coupon Entered",
        "Coupon Applied",
        "Coupon Denied",
        "Coupon Removed",
        # Segment's e-mail spec: the unsubscribe-rate guardrail of experiments counts it.
        "Unsubscribed",
    }
)
# Segment's identify and page calls are stored under these names beside the track events.
IDENTIFY = "Identify"
PAGE_VIEWED = "Page Viewed"
EVENT_NAMES = TRACK_EVENTS | {IDENTIFY, PAGE_VIEWED}

_DEVICE_ALIASES = {
    "mobile": "mobile",
    "phone": "mobile",
    "ios": "mobile",
    "android": "mobile",
    "tablet": "tablet",
    "ipad": "tablet",
    "desktop": "desktop",
    "web": "desktop",
    "computer": "desktop",
}
_CONSENT_TRAITS = ("marketing_consent", "location_consent", "personalization_opt_out")


@dataclass(slots=True)
class FieldError:
    field: str
    reason: str


@dataclass(slots=True)
class ParsedOrderLine:
    product_ref: str
    ref_field: str
    price: Decimal
    quantity: int


@dataclass(slots=True)
class ParsedOrder:
    order_id: str
    subtotal: Decimal
    discount: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal
    coupon: str
    currency: str
    lines: list[ParsedOrderLine]


@dataclass(slots=True)
class ParsedEvent:
    index: int
    message_id: str
    name: str
    user_id: str | None
    anonymous_id: str | None
    session_key: str | None
    timestamp: datetime
    device: str
    properties: dict
    context: dict
    traits: dict = field(default_factory=dict)
    product_ref: str | None = None
    product_ref_field: str = ""
    price: Decimal | None = None
    quantity: int | None = None
    order: ParsedOrder | None = None
    # Order Refunded / Order Cancelled: the order they change.
    order_ref: str | None = None


class _Invalid(Exception):
    def __init__(self, field_name: str, reason: str):
        self.error = FieldError(field_name, reason)


def _optional_id(raw: dict, key: str) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Invalid(key, "must be a string")
    value = str(value)
    if len(value) > ID_MAX_LENGTH:
        raise _Invalid(key, f"must be at most {ID_MAX_LENGTH} characters")
    return value


def _money(value: Any, field_name: str, *, positive: bool) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise _Invalid(field_name, "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(field_name, "must be a finite number")
    try:
        amount = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise _Invalid(field_name, "must be a number") from None
    if not amount.is_finite():
        raise _Invalid(field_name, "must be a finite number")
    if positive and amount <= 0:
        raise _Invalid(field_name, "must be positive")
    if not positive and amount < 0:
        raise _Invalid(field_name, "must not be negative")
    if amount >= Decimal("1e10"):
        raise _Invalid(field_name, "is too large")
    return amount.quantize(Decimal("0.01"))


def _quantity(value: Any, field_name: str) -> int:
    if isinstance(value, bool):
        raise _Invalid(field_name, "must be a whole number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise _Invalid(field_name, "must be a whole number")
    if value < 1:
        raise _Invalid(field_name, "must be at least 1")
    if value > 100_000:
        raise _Invalid(field_name, "is too large")
    return value


def parse_timestamp(value: Any, field_name: str = "timestamp") -> datetime:
    if not isinstance(value, str):
        raise _Invalid(field_name, "must be an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid(field_name, "must be an ISO 8601 date-time string") from None
    if parsed.tzinfo is None:
        raise _Invalid(field_name, "must include a time zone (e.g. 'Z' or '+00:00')")
    return parsed


def device_type(context: dict) -> str:
    device = context.get("device")
    if isinstance(device, dict):
        kind = device.get("type")
        if isinstance(kind, str) and kind:
            return _DEVICE_ALIASES.get(kind.lower(), "other")
    user_agent = context.get("userAgent")
    if isinstance(user_agent, str) and user_agent:
        if "iPad" in user_agent or "Tablet" in user_agent:
            return "tablet"
        if "Mobile" in user_agent or "Android" in user_agent:
            return "mobile"
        return "desktop"
    return "other"


def _product_reference(properties: dict, prefix: str) -> tuple[str, str]:
    for key in ("product_id", "sku"):
        value = properties.get(key)
        if value is not None and value != "":
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise _Invalid(f"{prefix}.{key}", "must be a string")
            return str(value), f"{prefix}.{key}"
    raise _Invalid(f"{prefix}.product_id", "is required (or sku)")


def _parse_order(properties: dict) -> ParsedOrder:
    order_id = properties.get("order_id")
    if order_id is None or order_id == "" or isinstance(order_id, (bool, dict, list)):
        raise _Invalid("properties.order_id", "is required")
    order_id = str(order_id)
    if len(order_id) > ID_MAX_LENGTH:
        raise _Invalid("properties.order_id", f"must be at most {ID_MAX_LENGTH} characters")
    products = properties.get("products")
    if not isinstance(products, list) or not products:
        raise _Invalid("properties.products", "must be a non-empty list of products")
    lines = []
    for position, item in enumerate(products):
        prefix = f"properties.products[{position}]"
        if not isinstance(item, dict):
            raise _Invalid(prefix, "must be an object")
        product_ref, ref_field = _product_reference(item, prefix)
        if "price" not in item:
            raise _Invalid(f"{prefix}.price", "is required")
        price = _money(item["price"], f"{prefix}.price", positive=True)
        quantity = _quantity(item.get("quantity", 1), f"{prefix}.quantity")
        lines.append(ParsedOrderLine(product_ref, ref_field, price, quantity))

    def amount(key: str, default: Decimal) -> Decimal:
        value = properties.get(key)
        return default if value is None else _money(value, f"properties.{key}", positive=False)

    zero = Decimal("0.00")
    subtotal = amount("subtotal", sum((line.price * line.quantity for line in lines), zero))
    discount = amount("discount", zero)
    shipping = amount("shipping", zero)
    tax = amount("tax", zero)
    total = amount("total", amount("revenue", subtotal - discount + shipping + tax))
    coupon = properties.get("coupon") or ""
    if not isinstance(coupon, str):
        raise _Invalid("properties.coupon", "must be a string")
    currency = properties.get("currency") or ""
    if not isinstance(currency, str) or (currency and len(currency) != 3):
        raise _Invalid("properties.currency", "must be a 3-letter ISO 4217 code")
    return ParsedOrder(order_id, subtotal, discount, shipping, tax, total, coupon[:100], currency.upper(), lines)


def _parse_traits(raw: dict) -> dict:
    traits = raw.get("traits")
    if traits is None:
        context_traits = raw.get("context", {}).get("traits") if isinstance(raw.get("context"), dict) else None
        traits = context_traits or {}
    if not isinstance(traits, dict):
        raise _Invalid("traits", "must be an object")
    parsed = {}
    email = traits.get("email")
    if email not in (None, ""):
        if not isinstance(email, str) or "@" not in email or len(email) > 254:
            raise _Invalid("traits.email", "must be an e-mail address")
        parsed["email"] = email.strip().lower()
    for key in _CONSENT_TRAITS:
        if key in traits:
            if not isinstance(traits[key], bool):
                raise _Invalid(f"traits.{key}", "must be true or false")
            parsed[key] = traits[key]
    return parsed


def _event_name(raw: dict) -> str:
    call_type = raw.get("type", "track")
    if call_type == "identify":
        return IDENTIFY
    if call_type == "page":
        return PAGE_VIEWED
    if call_type != "track":
        raise _Invalid("type", f"unknown call type {call_type!r}: expected track, identify or page")
    name = raw.get("event")
    if not isinstance(name, str) or not name:
        raise _Invalid("event", "is required for track calls")
    if name not in TRACK_EVENTS:
        raise _Invalid("event", f"unknown event type {name[:80]!r}")
    return name


def parse_event(raw: Any, *, index: int, now: datetime, future_skew: timedelta) -> ParsedEvent | FieldError:
    """The event as a typed record, or the first field error that makes it unusable."""
    try:
        return _parse(raw, index=index, now=now, future_skew=future_skew)
    except _Invalid as invalid:
        return invalid.error


def _parse(raw: Any, *, index: int, now: datetime, future_skew: timedelta) -> ParsedEvent:
    if not isinstance(raw, dict):
        raise _Invalid(f"batch[{index}]", "each event must be a JSON object")
    message_id = _optional_id(raw, "messageId")
    if message_id is None:
        raise _Invalid("messageId", "is required")
    name = _event_name(raw)
    user_id = _optional_id(raw, "userId")
    anonymous_id = _optional_id(raw, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise _Invalid("userId", "userId or anonymousId is required")

    properties = raw.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        raise _Invalid("properties", "must be an object")
    context = raw.get("context")
    if context is None:
        context = {}
    elif not isinstance(context, dict):
        raise _Invalid("context", "must be an object")

    timestamp_value = raw.get("timestamp")
    timestamp = now if timestamp_value is None else parse_timestamp(timestamp_value)
    if timestamp > now + future_skew:
        raise _Invalid("timestamp", f"is in the future (more than {int(future_skew.total_seconds())} s ahead)")

    session_key = _optional_id(raw, "sessionId")
    if session_key is None and isinstance(context.get("session_id"), (str, int)):
        session_key = _optional_id(context, "session_id")

    event = ParsedEvent(
        index=index,
        message_id=message_id,
        name=name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        session_key=session_key,
        timestamp=timestamp,
        device=device_type(context),
        properties=properties,
        context=context,
    )
    if name in PRODUCT_EVENTS:
        event.product_ref, event.product_ref_field = _product_reference(properties, "properties")
        if properties.get("price") is not None:
            event.price = _money(properties["price"], "properties.price", positive=True)
        if properties.get("quantity") is not None:
            event.quantity = _quantity(properties["quantity"], "properties.quantity")
    elif name == ORDER_COMPLETED:
        event.order = _parse_order(properties)
        event.price = event.order.total
        event.quantity = sum(line.quantity for line in event.order.lines)
    elif name in ORDER_CHANGE_EVENTS:
        order_ref = properties.get("order_id")
        if order_ref is None or order_ref == "" or isinstance(order_ref, (bool, dict, list)):
            raise _Invalid("properties.order_id", "is required")
        event.order_ref = str(order_ref)
    elif name == "Products Searched":
        query = properties.get("query")
        if not isinstance(query, str) or not query.strip():
            raise _Invalid("properties.query", "is required for Products Searched")
    elif name == IDENTIFY:
        event.traits = _parse_traits(raw)
    return event
