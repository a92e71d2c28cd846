"""The event batch pipeline behind `events.services.event_batch_ingest`.

One batch costs a fixed number of queries whatever its size: parse every event in Python, then look up
products, known message ids, orders, customers, aliases and sessions once each, decide in memory, and
write each table in bulk (COPY on PostgreSQL). The whole batch commits or rolls back together; a unique
violation from a concurrent batch with the same ids re-runs it, and the second run reports duplicates.
"""

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.selectors import products_by_reference
from revopt.db import bulk_insert, insert_rows
from revopt.tenancy.models import Merchant

from .identity import IdentityResolver
from .models import Customer, Event, Order, OrderLine, OrderStatus, Session
from .validation import IDENTIFY, FieldError, ParsedEvent, parse_event

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"

_RACE_RETRIES = 3
_EVENT_COLUMNS = (
    "merchant_id",
    "message_id",
    "name",
    "customer_id",
    "anonymous_id",
    "session_id",
    "product_id",
    "timestamp",
    "received_at",
    "price",
    "quantity",
    "device",
    "properties",
    "context",
)


@dataclass(frozen=True, slots=True)
class EventResult:
    index: int
    message_id: str | None
    status: str
    errors: tuple[FieldError, ...] = ()


@dataclass
class BatchResult:
    results: list[EventResult]
    counts: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.counts = Counter(result.status for result in self.results)

    @property
    def accepted(self) -> int:
        return self.counts[ACCEPTED]

    @property
    def duplicate(self) -> int:
        return self.counts[DUPLICATE]

    @property
    def rejected(self) -> int:
        return self.counts[REJECTED]


class BatchTooLarge(ValueError):
    pass


def _message_id_of(raw: object) -> str | None:
    if (
        isinstance(raw, dict)
        and isinstance(raw.get("messageId"), (str, int))
        and not isinstance(raw.get("messageId"), bool)
    ):
        return str(raw["messageId"])[:100]
    return None


def ingest_batch(*, merchant: Merchant, events: Sequence[object], received_at: datetime | None = None) -> BatchResult:
    limit = settings.REVOPT["EVENT_BATCH_MAX"]
    if len(events) > limit:
        raise BatchTooLarge(f"a batch holds at most {limit} events")
    received_at = received_at or timezone.now()
    skew = settings.REVOPT["EVENT_FUTURE_SKEW"]

    results: list[EventResult | None] = [None] * len(events)
    parsed: list[ParsedEvent] = []
    seen_message_ids: set[str] = set()
    for index, raw in enumerate(events):
        outcome = parse_event(raw, index=index, now=received_at, future_skew=skew)
        if isinstance(outcome, FieldError):
            results[index] = EventResult(index, _message_id_of(raw), REJECTED, (outcome,))
        elif outcome.message_id in seen_message_ids:
            results[index] = EventResult(index, outcome.message_id, DUPLICATE)
        else:
            seen_message_ids.add(outcome.message_id)
            parsed.append(outcome)

    # First try assumes every message id is new and lets the unique index catch the rare resend,
    # which then rolls back and goes the careful way: looking known ids up costs as much as the
    # COPY of the batch itself.
    for attempt in range(_RACE_RETRIES):
        try:
            with transaction.atomic():
                stored = _store(merchant=merchant, events=parsed, received_at=received_at, look_up_known=attempt > 0)
            break
        except IntegrityError:
            if attempt == _RACE_RETRIES - 1:
                raise
    for event in parsed:
        results[event.index] = stored[event.index]
    return BatchResult(results=results)  # type: ignore[arg-type]


def _reject(event: ParsedEvent, field_name: str, reason: str) -> EventResult:
    return EventResult(event.index, event.message_id, REJECTED, (FieldError(field_name, reason),))


def _store(
    *, merchant: Merchant, events: list[ParsedEvent], received_at: datetime, look_up_known: bool
) -> dict[int, EventResult]:
    """Check what needs the database, then write everything that passed. Runs inside a transaction."""
    outcome: dict[int, EventResult] = {}
    if not events:
        return outcome

    known = set()
    if look_up_known:
        known = set(
            Event.objects.for_merchant(merchant)
            .filter(message_id__any_of=[e.message_id for e in events])
            .values_list("message_id", flat=True)
        )
    fresh = []
    for event in events:
        if event.message_id in known:
            outcome[event.index] = EventResult(event.index, event.message_id, DUPLICATE)
        else:
            fresh.append(event)

    references = {e.product_ref for e in fresh if e.product_ref is not None}
    references.update(line.product_ref for e in fresh if e.order is not None for line in e.order.lines)
    products = products_by_reference(merchant=merchant, references=references) if references else {}

    completed_ids = [e.order.order_id for e in fresh if e.order is not None]
    changed_refs = [e.order_ref for e in fresh if e.order_ref is not None]
    existing_orders = set(
        Order.objects.for_merchant(merchant)
        .filter(external_id__any_of=completed_ids + changed_refs)
        .values_list("external_id", flat=True)
    )

    valid: list[ParsedEvent] = []
    orders_in_batch: set[str] = set()
    for event in fresh:
        rejection = _database_rejection(event, products, existing_orders, orders_in_batch)
        if rejection is not None:
            outcome[event.index] = rejection
            continue
        if event.order is not None:
            orders_in_batch.add(event.order.order_id)
        valid.append(event)
    if not valid:
        return outcome

    resolver = IdentityResolver(
        merchant=merchant,
        user_ids=(e.user_id for e in valid if e.user_id is not None),
        anonymous_ids=(e.anonymous_id for e in valid if e.anonymous_id is not None),
    )
    customer_of = [resolver.resolve(user_id=e.user_id, anonymous_id=e.anonymous_id, seen_at=e.timestamp) for e in valid]
    resolver.flush()
    customer_of = [resolver.canonical(customer) for customer in customer_of]

    sessions = _sessions_for(merchant=merchant, events=valid, customers=customer_of)
    _insert_events(
        merchant=merchant,
        events=valid,
        customers=customer_of,
        sessions=sessions,
        products=products,
        received_at=received_at,
    )
    placed = _materialise_orders(
        merchant=merchant, events=valid, customers=customer_of, sessions=sessions, products=products
    )
    _apply_order_changes(merchant=merchant, events=valid)
    _apply_traits(events=valid, customers=customer_of)
    loyalty_points_after_commit(
        merchant=merchant, placed_order_ids=placed, reversed_order_refs=[e.order_ref for e in valid if e.order_ref]
    )
    funnel_after_orders(merchant=merchant, placed_order_ids=placed)

    for event in valid:
        outcome[event.index] = EventResult(event.index, event.message_id, ACCEPTED)
    return outcome


def _database_rejection(
    event: ParsedEvent, products: dict, existing_orders: set[str], orders_in_batch: set[str]
) -> EventResult | None:
    if event.product_ref is not None and event.product_ref not in products:
        return _reject(event, event.product_ref_field, f"unknown product {event.product_ref!r}")
    if event.order is not None:
        for line in event.order.lines:
            if line.product_ref not in products:
                return _reject(event, line.ref_field, f"unknown product {line.product_ref!r}")
        if event.order.order_id in existing_orders or event.order.order_id in orders_in_batch:
            return _reject(event, "properties.order_id", "order already recorded under another messageId")
    if (
        event.order_ref is not None
        and event.order_ref not in existing_orders
        and event.order_ref not in orders_in_batch
    ):
        return _reject(event, "properties.order_id", f"unknown order {event.order_ref!r}")
    return None


def _sessions_for(*, merchant: Merchant, events: list[ParsedEvent], customers: list[Customer]) -> dict[str, int]:
    """Session id of each session key in the batch, creating the sessions seen for the first time."""
    keys = {e.session_key for e in events if e.session_key is not None}
    if not keys:
        return {}
    session_ids = dict(
        Session.objects.for_merchant(merchant).filter(external_id__any_of=list(keys)).values_list("external_id", "pk")
    )
    new_sessions: dict[str, Session] = {}
    for event, customer in zip(events, customers, strict=True):
        key = event.session_key
        if key is None or key in session_ids:
            continue
        session = new_sessions.get(key)
        if session is None:
            campaign = event.context.get("campaign")
            campaign = campaign if isinstance(campaign, dict) else {}
            new_sessions[key] = Session(
                merchant=merchant,
                external_id=key,
                customer=customer,
                started_at=event.timestamp,
                device=event.device,
                utm_source=str(campaign.get("source") or "")[:100],
                utm_medium=str(campaign.get("medium") or "")[:100],
                utm_campaign=str(campaign.get("name") or "")[:200],
            )
        elif event.timestamp < session.started_at:
            session.started_at = event.timestamp
    bulk_insert(list(new_sessions.values()))
    session_ids.update((key, session.pk) for key, session in new_sessions.items())
    return session_ids


def _insert_events(
    *,
    merchant: Merchant,
    events: list[ParsedEvent],
    customers: list[Customer],
    sessions: dict[str, int],
    products: dict,
    received_at: datetime,
) -> None:
    rows = []
    for event, customer in zip(events, customers, strict=True):
        product = products.get(event.product_ref) if event.product_ref is not None else None
        rows.append(
            (
                merchant.pk,
                event.message_id,
                event.name,
                customer.pk,
                event.anonymous_id or "",
                sessions.get(event.session_key) if event.session_key is not None else None,
                product.id if product is not None else None,
                event.timestamp,
                received_at,
                event.price,
                event.quantity,
                event.device,
                event.properties,
                event.context,
            )
        )
    insert_rows(model=Event, columns=_EVENT_COLUMNS, rows=rows)


def _materialise_orders(
    *,
    merchant: Merchant,
    events: list[ParsedEvent],
    customers: list[Customer],
    sessions: dict[str, int],
    products: dict,
) -> list[int]:
    orders = []
    lines = []
    for event, customer in zip(events, customers, strict=True):
        if event.order is None:
            continue
        parsed = event.order
        order = Order(
            merchant=merchant,
            external_id=parsed.order_id,
            customer=customer,
            session_id=sessions.get(event.session_key) if event.session_key is not None else None,
            message_id=event.message_id,
            placed_at=event.timestamp,
            currency=parsed.currency or merchant.currency,
            subtotal=parsed.subtotal,
            discount=parsed.discount,
            shipping=parsed.shipping,
            tax=parsed.tax,
            total=parsed.total,
            coupon=parsed.coupon,
        )
        orders.append(order)
        for line in parsed.lines:
            product = products[line.product_ref]
            lines.append(
                OrderLine(
                    merchant=merchant,
                    order=order,
                    product_id=product.id,
                    sku=product.sku,
                    quantity=line.quantity,
                    unit_price=line.price,
                    unit_cost=product.cost,
                )
            )
    bulk_insert(orders)
    for line in lines:
        line.order_id = line.order.pk
    bulk_insert(lines)
    return [order.pk for order in orders]


def _apply_order_changes(*, merchant: Merchant, events: list[ParsedEvent]) -> None:
    for event in events:
        if event.order_ref is None:
            continue
        status = OrderStatus.REFUNDED if event.name == "Order Refunded" else OrderStatus.CANCELLED
        update: dict[str, object] = {"status": status}
        if status == OrderStatus.REFUNDED:
            update["refunded_at"] = event.timestamp
        Order.objects.for_merchant(merchant).filter(external_id=event.order_ref).update(**update)


def _apply_traits(*, events: list[ParsedEvent], customers: list[Customer]) -> None:
    for event, customer in zip(events, customers, strict=True):
        if event.name != IDENTIFY or not event.traits:
            continue
        for key, value in event.traits.items():
            setattr(customer, key, value)
        Customer.objects.filter(pk=customer.pk).update(**event.traits)


def loyalty_points_after_commit(
    *, merchant: Merchant, placed_order_ids: list[int], reversed_order_refs: list[str]
) -> None:
    """Orders earn loyalty points and refunds claw them back once the batch commits. A shop without a
    program costs one cached lookup per batch with orders, nothing more. Robust: a loyalty failure is logged
    and never fails the batch that already committed (the task is idempotent and can be run again)."""
    if not placed_order_ids and not reversed_order_refs:
        return
    from loyalty.selectors.points import merchant_has_active_program
    from loyalty.tasks import points_for_orders_task

    if not merchant_has_active_program(merchant=merchant):
        return
    merchant_id = merchant.pk
    transaction.on_commit(
        lambda: points_for_orders_task.delay(merchant_id, placed_order_ids, reversed_order_refs), robust=True
    )


def funnel_after_orders(*, merchant: Merchant, placed_order_ids: list[int]) -> None:
    """What new orders mean for the funnel: an order whose coupon is an offer code redeems it and an order after
    an offer decision becomes its outcome (loyalty.services.offers), and an order cancels its customer's pending
    cart-recovery messages and is credited to the message that led to it (loyalty.services.recovery).
    Nothing for a batch without orders, no query for a shop that uses neither (cached). Each runs in its own
    savepoint: a failure is logged and never fails the batch (both can be recomputed, and a pending recovery
    message is checked for orders again before it is sent)."""
    if not placed_order_ids:
        return
    # loyalty builds on events: import late.
    from loyalty.services.offers import offer_outcomes_record, offers_in_use
    from loyalty.services.recovery import recovery_cancel_on_purchase, recovery_in_use

    for in_use, follow_up in (
        (offers_in_use, offer_outcomes_record),
        (recovery_in_use, recovery_cancel_on_purchase),
    ):
        if not in_use(merchant_id=merchant.pk):
            continue  # no savepoint either
        try:
            with transaction.atomic():
                follow_up(merchant=merchant, order_ids=placed_order_ids)
        except Exception:  # noqa: BLE001 - the orders are recorded; see the docstring
            logging.getLogger(__name__).exception("%s failed for merchant %s", follow_up.__name__, merchant.pk)
