"""Abandoned-cart recovery: schedule follow-ups of abandoned carts, compose them when due, hand them over (pull
API or signed webhook), cancel them when the customer buys, and credit the order a sent message led to.

- A cart is abandoned when its session holds a "Product Added", no order, and has been idle for the
  settings' `abandoned_after_minutes` (carts idle for more than 48 h are left alone). Only identified
  customers with an e-mail and marketing consent, not erased and without an order since the cart started,
  get messages: one per delay step, created once (the unique (merchant, cart, step) constraint).
- Consent is checked again when a message falls due: consent withdrawn, an "Unsubscribed" event since the
  cart started, erasure or an order since then cancel it, so it is never sent.
- The content is fixed when the message is first composed (the items, the cart recommendations, and on the
  last step the offer decided for channel "recovery"); a retried webhook sends the same content and offer.
- Delivery is at most once: the pull API marks what it hands over "sent" (the client acks "failed" to
  report a bounce); the webhook marks a message sent on a 2xx and retries with backoff, counting attempts,
  until MAX_DELIVERY_ATTEMPTS, then "failed" with the last error. The webhook body carries its own timestamp
  and is signed with HMAC-SHA256 of the exact body, so the timestamp cannot be replayed unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl
import urllib.error
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, Max, Min, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.models import Product
from events.models import Customer, Event, Order, Session
from revopt.in_use import feature_in_use, feature_used
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

from ..models import OfferChannel, RecoveryMessage, RecoverySettings, RecoveryStatus
from ..webhook_target import PinnedRequest, WebhookTarget, webhook_opener, webhook_target_check
from .offers import CartLineInput, OfferRequest, offer_decide

logger = logging.getLogger(__name__)

# What an empty `RecoverySettings.delays_minutes` means: a message 1 h and another 24 h after abandonment.
DEFAULT_DELAYS_MINUTES: tuple[int, ...] = (60, 1440)
# Limits the admin enforces on the delays: 1 to 5 increasing steps between 15 minutes and 14 days.
MAX_STEPS = 5
MIN_DELAY_MINUTES = 15
MAX_DELAY_MINUTES = 14 * 24 * 60
# Carts idle for longer than this are not followed up any more (too late for a reminder).
CART_MAX_AGE = timedelta(hours=48)
# An order within this long after a sent message (or using its offer code) counts as recovered by it.
ATTRIBUTION_WINDOW = timedelta(days=7)
RECOMMENDATIONS_PER_MESSAGE = 4
WEBHOOK_TIMEOUT_SECONDS = 5
MAX_DELIVERY_ATTEMPTS = 5
# Wait after failed attempt n before the next: 5, 10, 20, 40 minutes (the message's scheduled_at moves on; its
# original time is abandoned_at + the step's delay).
RETRY_BASE = timedelta(minutes=5)
DISPATCH_BATCH = 200
# A receiver that fails this many messages in a row is left alone until the next run (the rest keep their
# attempts), so a dead endpoint costs one run 3 timeouts, not 200.
CONSECUTIVE_FAILURES_MAX = 3
SIGNATURE_HEADER = "X-Revopt-Signature"
TIMESTAMP_HEADER = "X-Revopt-Timestamp"
ERROR_MAX = 300

# How long "does this shop use recovery?" is remembered for the ingest path (set at once when messages appear).

PRODUCT_ADDED = "Product Added"
PRODUCT_REMOVED = "Product Removed"
UNSUBSCRIBED = "Unsubscribed"


# --- settings -------------------------------------------------------------------------------------------------


def recovery_settings_for(*, merchant: Merchant) -> RecoverySettings:
    """The merchant's recovery settings, created with the defaults on first use."""
    found = RecoverySettings.objects.for_merchant(merchant).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return RecoverySettings.objects.create(merchant=merchant)
    except IntegrityError:  # another request created it meanwhile
        return RecoverySettings.objects.for_merchant(merchant).get()


def recovery_delays(*, settings: RecoverySettings) -> tuple[int, ...]:
    """The delays of the steps in minutes: the settings' own, or DEFAULT_DELAYS_MINUTES when left empty."""
    return tuple(int(delay) for delay in settings.delays_minutes) or DEFAULT_DELAYS_MINUTES


def recovery_delays_problem(delays: object) -> str | None:
    """Why a list of delays is not acceptable, or None: 1–5 increasing whole minutes within 15 min..14 days."""
    if not isinstance(delays, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in delays):
        return "Enter a list of whole minutes, e.g. [60, 1440]."
    if not 1 <= len(delays) <= MAX_STEPS:
        return f"Enter 1 to {MAX_STEPS} delays."
    if any(not MIN_DELAY_MINUTES <= delay <= MAX_DELAY_MINUTES for delay in delays):
        return f"Each delay is between {MIN_DELAY_MINUTES} minutes and 14 days ({MAX_DELAY_MINUTES} minutes)."
    if any(later <= earlier for earlier, later in zip(delays, delays[1:], strict=False)):
        return "Each delay must be longer than the one before."
    return None


def recovery_settings_save(*, settings: RecoverySettings, actor: AbstractBaseUser | None) -> RecoverySettings:
    """Save a merchant's recovery settings (as the admin edits them), audited; the delays must be acceptable."""
    problem = recovery_delays_problem(settings.delays_minutes) if settings.delays_minutes else None
    if problem is not None:
        raise ValueError(problem)
    with transaction.atomic():
        settings.save()
        audit_log_write(
            merchant=settings.merchant,
            actor=actor,
            action="recovery_settings.save",
            target=settings,
            detail={
                "enabled": settings.enabled,
                "abandoned_after_minutes": settings.abandoned_after_minutes,
                "delays_minutes": list(settings.delays_minutes),
                "include_recommendations": settings.include_recommendations,
                "include_offer": settings.include_offer,
                "webhook_url": settings.webhook_url,
            },
        )
    return settings


# --- the cart -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CartItem:
    product_id: int | None
    sku: str
    title: str
    price: Decimal
    quantity: int
    image_url: str
    url: str
    reference: str  # the storefront's product id (external id, else SKU), for the recommendations


@dataclass(frozen=True)
class Cart:
    cart_id: str
    items: tuple[CartItem, ...]

    @property
    def value(self) -> Decimal:
        return sum((item.price * item.quantity for item in self.items), Decimal("0"))


def _line_key(event: Event) -> str:
    if event.product_id is not None:
        return f"p:{event.product_id}"
    properties = event.properties or {}
    return f"r:{properties.get('sku') or properties.get('product_id') or ''}"


def _carts_of_sessions(*, merchant: Merchant, sessions: dict[int, str]) -> dict[int, Cart]:
    """Each session's cart as it was left: adds minus removes, the last price seen; sessions whose cart
    ended empty are absent. `sessions` maps a session id to its external id (the cart id fallback)."""
    events = (
        Event.objects.for_merchant(merchant)
        .filter(session_id__in=list(sessions), name__in=[PRODUCT_ADDED, PRODUCT_REMOVED])
        .select_related("product")
        .order_by("timestamp", "pk")
    )
    by_session: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        by_session[event.session_id].append(event)
    carts = {}
    for session_id, session_events in by_session.items():
        cart_id = ""
        quantities: dict[str, int] = defaultdict(int)
        last_add: dict[str, Event] = {}
        for event in session_events:
            key = _line_key(event)
            quantity = event.quantity if event.quantity is not None else 1
            if event.name == PRODUCT_ADDED:
                quantities[key] += max(quantity, 0)
                last_add[key] = event
                cart_id = str((event.properties or {}).get("cart_id") or cart_id)[:100]
            else:
                quantities[key] = max(quantities[key] - max(quantity, 0), 0)
        items = tuple(_cart_item(last_add[key], quantity) for key, quantity in quantities.items() if quantity > 0)
        if items:
            carts[session_id] = Cart(cart_id=cart_id or sessions[session_id], items=items)
    return carts


def _cart_item(event: Event, quantity: int) -> CartItem:
    properties = event.properties or {}
    product: Product | None = event.product
    price = event.price if event.price is not None else (product.price if product is not None else Decimal("0"))
    sku = product.sku if product is not None else str(properties.get("sku") or properties.get("product_id") or "")
    return CartItem(
        product_id=product.pk if product is not None else None,
        sku=sku,
        title=product.title if product is not None else str(properties.get("name") or sku),
        price=price,
        quantity=quantity,
        image_url=str(properties.get("image_url") or (product.image_url if product is not None else "")),
        url=str(properties.get("url") or ""),
        reference=(product.external_id or product.sku) if product is not None else sku,
    )


# --- enqueue --------------------------------------------------------------------------------------------------


def abandoned_carts_enqueue(*, merchant: Merchant, now: datetime | None = None) -> int:
    """Schedule the follow-ups of the carts abandoned since the last run; returns how many messages it created.
    Running it again creates nothing new."""
    now = now or timezone.now()
    settings = recovery_settings_for(merchant=merchant)
    if not settings.enabled:
        return 0
    delays = recovery_delays(settings=settings)
    idle_since = now - timedelta(minutes=settings.abandoned_after_minutes)
    oldest = now - CART_MAX_AGE

    events = Event.objects.for_merchant(merchant)
    carted_sessions = events.filter(name=PRODUCT_ADDED, timestamp__gte=oldest, session__isnull=False).values(
        "session_id"
    )
    contactable = Q(
        customer__external_id__isnull=False,
        customer__marketing_consent=True,
        customer__erased_at__isnull=True,
    ) & ~Q(customer__email="")
    rows = (
        Session.objects.for_merchant(merchant)
        .filter(contactable, pk__in=carted_sessions)
        .exclude(Exists(Order.objects.filter(session_id=OuterRef("pk"))))
        .values("pk", "external_id", "customer_id")
        .annotate(
            last_event_at=Max("events__timestamp"),
            first_add_at=Min("events__timestamp", filter=Q(events__name=PRODUCT_ADDED)),
        )
        .filter(last_event_at__lte=idle_since, last_event_at__gte=oldest)
    )
    sessions = {row["pk"]: row for row in rows}
    if not sessions:
        return 0
    # An order or an unsubscribe by the customer since the cart started ends its recovery.
    customer_ids = {row["customer_id"] for row in sessions.values()}
    earliest = min(row["first_add_at"] for row in sessions.values())
    ended_at: dict[int, list[datetime]] = defaultdict(list)
    ordered = Order.objects.for_merchant(merchant).filter(customer_id__in=customer_ids, placed_at__gte=earliest)
    unsubscribed = events.filter(customer_id__in=customer_ids, name=UNSUBSCRIBED, timestamp__gte=earliest)
    for customer_id, at in [
        *ordered.values_list("customer_id", "placed_at"),
        *unsubscribed.values_list("customer_id", "timestamp"),
    ]:
        ended_at[customer_id].append(at)
    sessions = {
        pk: row
        for pk, row in sessions.items()
        if not any(at >= row["first_add_at"] for at in ended_at.get(row["customer_id"], ()))
    }
    if not sessions:
        return 0
    carts = _carts_of_sessions(merchant=merchant, sessions={pk: row["external_id"] for pk, row in sessions.items()})
    existing = set(
        RecoveryMessage.objects.for_merchant(merchant)
        .filter(cart_id__in=[cart.cart_id for cart in carts.values()])
        .values_list("cart_id", flat=True)
    )
    messages = []
    for session_id, cart in carts.items():
        if cart.cart_id in existing:
            continue
        existing.add(cart.cart_id)  # two sessions of one cart: the first one found is followed up
        customer_id, abandoned_at = sessions[session_id]["customer_id"], sessions[session_id]["last_event_at"]
        steps = [(step, abandoned_at + timedelta(minutes=delay)) for step, delay in enumerate(delays, start=1)]
        # A cart found late (enqueue was down) gets only its latest overdue step, not a burst of reminders.
        overdue = [step for step, scheduled_at in steps if scheduled_at <= now]
        for step, scheduled_at in steps:
            if step in overdue[:-1]:
                continue
            messages.append(
                RecoveryMessage(
                    merchant=merchant,
                    customer_id=customer_id,
                    session_id=session_id,
                    cart_id=cart.cart_id,
                    step=step,
                    abandoned_at=abandoned_at,
                    scheduled_at=scheduled_at,
                    cart_value=cart.value,
                    created_at=now,
                )
            )
    RecoveryMessage.objects.bulk_create(messages, ignore_conflicts=True)
    if messages:
        feature_used(feature="recovery", merchant_id=merchant.pk)
    return len(messages)


# --- composing and consent ------------------------------------------------------------------------------------


def _cart_started_at(message: RecoveryMessage) -> datetime:
    return message.session.started_at if message.session is not None else message.abandoned_at


def recovery_send_refusal(*, message: RecoveryMessage) -> str | None:
    """Why this message must not go out now (its cancelled_reason), or None."""
    customer: Customer = message.customer
    if customer.erased_at is not None:
        return "erased"
    if not customer.marketing_consent or not customer.email:
        return "no_consent"
    since = _cart_started_at(message)
    if (
        Event.objects.for_merchant(message.merchant_id)
        .filter(customer_id=customer.pk, name=UNSUBSCRIBED, timestamp__gte=since)
        .exists()
    ):
        return "unsubscribed"
    if Order.objects.for_merchant(message.merchant_id).filter(customer_id=customer.pk, placed_at__gte=since).exists():
        return "purchased"
    return None


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _recommendations(*, merchant: Merchant, customer: Customer, cart: Cart, now: datetime) -> list[dict]:
    from recommendations.models import Placement
    from recommendations.selectors import recommendations_for

    references = [item.reference for item in cart.items if item.reference]
    if not references:
        return []
    try:
        result = recommendations_for(
            merchant=merchant,
            placement=Placement.CART,
            customer_external_id=customer.external_id,
            cart_product_ids=references,
            k=RECOMMENDATIONS_PER_MESSAGE,
            at=now,
        )
    except Exception:  # a reminder without suggestions beats no reminder
        logger.exception("recommendations for recovery of merchant %s failed", merchant.pk)
        return []
    return [
        {"product_id": item.reference, "sku": item.sku, "title": item.title, "price": _money(item.price)}
        for item in result.items
    ]


def _offer(*, message: RecoveryMessage, cart: Cart, now: datetime) -> dict | None:
    customer = message.customer
    session = message.session
    request = OfferRequest(
        cart_id=message.cart_id,
        lines=tuple(CartLineInput(sku=item.sku, quantity=item.quantity, price=item.price) for item in cart.items),
        session_id=session.external_id if session is not None else "",
        customer_external_id=customer.external_id,
        device=session.device if session is not None else "other",
        channel=OfferChannel.RECOVERY,
    )
    try:
        decision = offer_decide(merchant=message.merchant, request=request, now=now).decision
    except Exception:  # the reminder still goes out, without an incentive
        logger.exception("offer decision for recovery message %s failed", message.pk)
        return None
    if decision.kind == "none" or not decision.code:
        return None
    message.offer = decision
    return {
        "kind": decision.kind,
        "value": decision.value,
        "code": decision.code,
        "expires_at": decision.expires_at.isoformat() if decision.expires_at else None,
        "explanation": decision.explanation,
    }


def recovery_message_compose(
    *, message: RecoveryMessage, now: datetime, settings: RecoverySettings | None = None
) -> dict:
    """The message's content, composed (and saved) the first time it falls due, then the same every time.
    `settings` saves a query per message when the caller has them."""
    if message.content:
        return message.content
    settings = settings or recovery_settings_for(merchant=message.merchant)
    customer = message.customer
    carts = (
        _carts_of_sessions(merchant=message.merchant, sessions={message.session_id: message.cart_id})
        if message.session_id is not None
        else {}
    )
    cart = carts.get(message.session_id) or Cart(cart_id=message.cart_id, items=())
    recommendations = []
    if settings.include_recommendations and not customer.personalization_opt_out:
        recommendations = _recommendations(merchant=message.merchant, customer=customer, cart=cart, now=now)
    offer = None
    if settings.include_offer and message.step == len(recovery_delays(settings=settings)) and cart.items:
        offer = _offer(message=message, cart=cart, now=now)
    message.content = {
        "items": [
            {
                "sku": item.sku,
                "title": item.title,
                "price": _money(item.price),
                "quantity": item.quantity,
                "image_url": item.image_url,
                "url": item.url,
            }
            for item in cart.items
        ],
        "recommendations": recommendations,
        "offer": offer,
    }
    message.save(update_fields=["content", "offer"])
    return message.content


def recovery_message_payload(*, message: RecoveryMessage, steps: int) -> dict:
    """What the pull API and the webhook hand over for one composed message."""
    customer = message.customer
    return {
        "id": message.pk,
        "customer_id": customer.external_id,
        "email": customer.email,
        "cart_id": message.cart_id,
        "step": message.step,
        "steps": steps,
        "abandoned_at": message.abandoned_at.isoformat(),
        "scheduled_at": message.scheduled_at.isoformat(),
        "cart_value": _money(message.cart_value),
        "currency": message.merchant.currency,
        "content": message.content,
    }


def _due(merchant: Merchant, now: datetime) -> Q:
    return Q(merchant=merchant, status=RecoveryStatus.PENDING, scheduled_at__lte=now)


def _retry_wait(attempts: int) -> timedelta:
    return RETRY_BASE * 2 ** (attempts - 1)


def _cancel(message: RecoveryMessage, reason: str) -> None:
    message.status = RecoveryStatus.CANCELLED
    message.cancelled_reason = reason
    message.save(update_fields=["status", "cancelled_reason"])


def _locked_due(*, merchant: Merchant, now: datetime, limit: int, pks: Sequence[int] | None = None):
    queryset = RecoveryMessage.objects.filter(_due(merchant, now))
    if pks is not None:
        queryset = queryset.filter(pk__in=pks)
    return list(
        queryset.select_for_update(skip_locked=True, of=("self",))
        .select_related("customer", "session", "merchant")
        .order_by("scheduled_at", "pk")[:limit]
    )


# --- delivery: pull -------------------------------------------------------------------------------------------


def recovery_messages_hand_over(*, merchant: Merchant, limit: int, now: datetime | None = None) -> list[dict]:
    """The due messages, composed, marked sent as they are handed over (at most once: two callers never get
    the same message); due messages that may no longer be sent are cancelled instead."""
    now = now or timezone.now()
    settings = recovery_settings_for(merchant=merchant)
    steps = len(recovery_delays(settings=settings))
    payloads = []
    with transaction.atomic():
        for message in _locked_due(merchant=merchant, now=now, limit=limit):
            refusal = recovery_send_refusal(message=message)
            if refusal is not None:
                _cancel(message, refusal)
                continue
            recovery_message_compose(message=message, now=now, settings=settings)
            message.status = RecoveryStatus.SENT
            message.sent_at = now
            message.delivery_attempts += 1
            message.save(update_fields=["status", "sent_at", "delivery_attempts"])
            payloads.append(recovery_message_payload(message=message, steps=steps))
    return payloads


class RecoveryAckError(Exception):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def recovery_message_ack(*, merchant: Merchant, message_id: int, status: str, error: str = "") -> RecoveryMessage:
    """The client's word on a message it pulled: "sent" confirms it, "failed" records why it could not be
    delivered. Only handed-over messages are acked; acking again overwrites the earlier word."""
    with transaction.atomic():
        message = RecoveryMessage.objects.for_merchant(merchant).select_for_update().filter(pk=message_id).first()
        if message is None:
            raise LookupError(message_id)
        if message.sent_at is None or message.status not in (RecoveryStatus.SENT, RecoveryStatus.FAILED):
            raise RecoveryAckError("status", f"The message is {message.status}: only handed-over messages are acked.")
        message.status = RecoveryStatus.SENT if status == RecoveryStatus.SENT else RecoveryStatus.FAILED
        message.last_error = error[:ERROR_MAX] if message.status == RecoveryStatus.FAILED else ""
        message.save(update_fields=["status", "last_error"])
    return message


# --- delivery: webhook ----------------------------------------------------------------------------------------


def webhook_signature(*, secret: str, body: bytes) -> str:
    """The value of the X-Revopt-Signature header: "sha256=" + hex HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


_OPENER = webhook_opener(tls=ssl.create_default_context())


def webhook_target(*, url: str) -> WebhookTarget:
    """The send-time check of a webhook URL (the admin checked it at save time, but DNS answers change).
    https only, as the admin demands; plain http only to a network the operator allowed (an internal relay)."""
    return webhook_target_check(url, allow_http_inside_allowed_networks=True)


def _post(*, target: WebhookTarget, secret: str, payload: dict, now: datetime) -> str | None:
    """POST the payload to the checked target; None on a 2xx, else what went wrong."""
    if target.refusal is not None:
        return f"Refused: {target.refusal}"
    timestamp = str(int(now.timestamp()))
    body = json.dumps({**payload, "timestamp": int(timestamp)}, separators=(",", ":"), sort_keys=True).encode()
    request = PinnedRequest(
        target.url,
        addresses=target.addresses,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "revopt-recovery/1",
            SIGNATURE_HEADER: webhook_signature(secret=secret, body=body),
            TIMESTAMP_HEADER: timestamp,
        },
    )
    try:
        with _OPENER.open(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"{type(error).__name__}: {getattr(error, 'reason', error)}"
    return None if 200 <= status < 300 else f"HTTP {status}"


@dataclass(frozen=True)
class DispatchResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0


def recovery_dispatch(*, merchant: Merchant, now: datetime | None = None) -> DispatchResult:
    """POST each due message to the merchant's webhook. Each message is sent under its row lock (one at a time,
    at most 5 s), so two dispatchers never send the same message. A webhook whose address is not public (checked
    once per run, see loyalty.webhook_target) fails each attempt with the reason, like a dead receiver."""
    now = now or timezone.now()
    settings = recovery_settings_for(merchant=merchant)
    if not settings.enabled or not settings.webhook_url:
        return DispatchResult()
    steps = len(recovery_delays(settings=settings))
    due_ids = list(
        RecoveryMessage.objects.filter(_due(merchant, now))
        .order_by("scheduled_at", "pk")
        .values_list("pk", flat=True)[:DISPATCH_BATCH]
    )
    counts = {"sent": 0, "retrying": 0, "failed": 0, "cancelled": 0}
    if not due_ids:
        return DispatchResult(**counts)
    # Resolved and checked once per run; every POST of the run connects to the addresses checked here.
    target = webhook_target(url=settings.webhook_url)
    if target.refusal is not None:
        logger.warning("recovery webhook of merchant %s refused: %s", merchant.pk, target.refusal)
    failures_in_a_row = 0
    for message_id in due_ids:
        if failures_in_a_row >= CONSECUTIVE_FAILURES_MAX:
            break
        with transaction.atomic():
            locked = _locked_due(merchant=merchant, now=now, limit=1, pks=[message_id])
            if not locked:
                continue  # taken by another dispatcher or the pull API meanwhile
            message = locked[0]
            refusal = recovery_send_refusal(message=message)
            if refusal is not None:
                _cancel(message, refusal)
                counts["cancelled"] += 1
                continue
            recovery_message_compose(message=message, now=now, settings=settings)
            payload = recovery_message_payload(message=message, steps=steps)
            error = _post(target=target, secret=settings.webhook_secret, payload=payload, now=now)
            message.delivery_attempts += 1
            if error is None:
                message.status = RecoveryStatus.SENT
                message.sent_at = now
                message.last_error = ""
                counts["sent"] += 1
                failures_in_a_row = 0
            else:
                failures_in_a_row += 1
                message.last_error = error[:ERROR_MAX]
                if message.delivery_attempts >= MAX_DELIVERY_ATTEMPTS:
                    message.status = RecoveryStatus.FAILED
                    counts["failed"] += 1
                else:
                    message.scheduled_at = now + _retry_wait(message.delivery_attempts)
                    counts["retrying"] += 1
            message.save(update_fields=["status", "sent_at", "last_error", "delivery_attempts", "scheduled_at"])
    return DispatchResult(**counts)


# --- purchases ------------------------------------------------------------------------------------------------


def recovery_in_use(*, merchant_id: int) -> bool:
    """Whether the shop has a pending or sent message an order could cancel or be credited to."""
    statuses = [RecoveryStatus.PENDING, RecoveryStatus.SENT]
    return feature_in_use(
        feature="recovery",
        merchant_id=merchant_id,
        check=lambda: RecoveryMessage.objects.for_merchant(merchant_id).filter(status__in=statuses).exists(),
    )


def recovery_cancel_on_purchase(*, merchant: Merchant, order_ids: Iterable[int]) -> int:
    """After orders are stored: cancel their customers' pending messages of carts started before the order
    ("purchased"), and credit each order to the latest message sent to its customer in the 7 days before it
    (or whose offer code it used). Returns how many messages were cancelled. No query without orders, nor (once
    cached) for a shop with no pending or sent message."""
    order_ids = list(order_ids)
    if not order_ids or not recovery_in_use(merchant_id=merchant.pk):
        return 0
    messages = RecoveryMessage.objects.for_merchant(merchant)
    cart_started = Coalesce(F("session__started_at"), F("abandoned_at"), output_field=DateTimeField())
    cancelled = (
        messages.filter(status=RecoveryStatus.PENDING)
        .annotate(cart_started=cart_started)
        .filter(
            Exists(
                Order.objects.filter(
                    pk__in=order_ids, customer_id=OuterRef("customer_id"), placed_at__gte=OuterRef("cart_started")
                )
            )
        )
        .update(status=RecoveryStatus.CANCELLED, cancelled_reason="purchased")
    )
    _attribute(merchant=merchant, order_ids=order_ids)
    return cancelled


def _attribute(*, merchant: Merchant, order_ids: list[int]) -> None:
    window_end = ExpressionWrapper(F("sent_at") + ATTRIBUTION_WINDOW, output_field=DateTimeField())
    batch = Order.objects.filter(pk__in=order_ids)
    candidates = list(
        RecoveryMessage.objects.for_merchant(merchant)
        .filter(status=RecoveryStatus.SENT, recovered_order__isnull=True, sent_at__isnull=False)
        .annotate(window_end=window_end)
        .filter(
            Exists(
                batch.filter(
                    customer_id=OuterRef("customer_id"),
                    placed_at__gte=OuterRef("sent_at"),
                    placed_at__lte=OuterRef("window_end"),
                )
            )
            | Exists(batch.filter(coupon=OuterRef("offer__code")).exclude(coupon=""))
        )
        .select_related("offer")
        .order_by("-sent_at", "-pk")
    )
    if not candidates:
        return
    credited: set[int] = set()
    for order in batch.order_by("placed_at", "pk"):
        if order.pk in credited:
            continue
        by_code = [m for m in candidates if m.offer is not None and order.coupon and m.offer.code == order.coupon]
        in_window = [
            m
            for m in candidates
            if m.customer_id == order.customer_id and m.sent_at <= order.placed_at <= m.sent_at + ATTRIBUTION_WINDOW
        ]
        chosen = (by_code or in_window or [None])[0]  # newest first
        if chosen is None or chosen.recovered_order_id is not None:
            continue
        chosen.recovered_order_id = order.pk
        RecoveryMessage.objects.filter(pk=chosen.pk, recovered_order__isnull=True).update(recovered_order_id=order.pk)
        credited.add(order.pk)
