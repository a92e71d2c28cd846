"""Reads for the cart-abandonment predictor: the snapshot of a live cart, the snapshots of past carts (training
data, from the event log) and the model in service with its score of a snapshot."""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from django.conf import settings

from revopt.tenancy.models import Merchant

from ..abandonment import SIGNAL_NAMES, AbandonmentPredictor, CartSnapshot, session_signals
from ..models import AbandonmentModel, Customer, Event, ModelRunStatus, Order, OrderStatus, Session

# The events that make up a session's signals (the others are not read).
SIGNAL_EVENTS: tuple[str, ...] = (
    "Product Viewed",
    "Product List Viewed",
    "Products Searched",
    "Product Added",
    "Product Removed",
    "Page Viewed",
    "Product List Filtered",
    "Coupon Entered",
    "Coupon Denied",
)


def merchant_zone(merchant: Merchant) -> ZoneInfo:
    try:
        return ZoneInfo(merchant.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def cart_snapshot_live(
    *,
    merchant: Merchant,
    customer: Customer | None,
    session_external_id: str,
    lines: Sequence[tuple[str, int, Decimal]],
    device: str,
    source: str,
    signals: Mapping[str, float],
    at: datetime,
    free_shipping_threshold: Decimal | None = None,
) -> CartSnapshot:
    """The snapshot of a live cart: the cart from `lines` (sku, quantity, unit price), the customer's history
    before this session from the database (none for an erased customer), and per signal the larger of the
    storefront's count and what the event log already holds for the session up to `at`."""
    session = None
    if session_external_id:
        session = (
            Session.objects.for_merchant(merchant)
            .filter(external_id=session_external_id)
            .select_related("customer")
            .first()
        )
    if customer is None and session is not None:
        customer = session.customer
    if customer is not None and customer.merged_into_id is not None:
        # History moved to the survivor on merge (events.identity.customer_merge).
        customer = Customer.objects.for_merchant(merchant).filter(pk=customer.merged_into_id).first() or customer

    logged_events: dict[str, float] = {}
    if session is not None:
        # The time bound is applied here, not in SQL: with it and no planner statistics, SQLite picks the
        # (merchant, timestamp) index over the session's and reads the shop's events (190 ms instead of 0.05).
        rows = (
            Event.objects.for_merchant(merchant)
            .filter(session_id=session.pk, name__in=SIGNAL_EVENTS)
            .values_list("name", "timestamp", "properties")
        )
        logged_events = session_signals((row for row in rows if row[1] <= at), at=at)
    merged_signals = {
        name: max(float(signals.get(name, 0.0) or 0.0), logged_events.get(name, 0.0)) for name in SIGNAL_NAMES
    }

    history_end = min(session.started_at, at) if session is not None else at
    prior_orders, prior_revenue, last_order_at, prior_sessions = 0, 0.0, None, 0
    if customer is not None and customer.erased_at is None:
        prior_orders, prior_revenue, last_order_at = _order_history(
            merchant=merchant, customer_id=customer.pk, before=history_end
        )
        prior_sessions = sum(
            1
            for started_at, external_id in Session.objects.for_merchant(merchant)
            .filter(customer_id=customer.pk)
            .values_list("started_at", "external_id")
            if started_at < history_end and external_id != session_external_id
        )

    cart_value = sum((Decimal(quantity) * Decimal(price) for _, quantity, price in lines), Decimal(0))
    local = at.astimezone(merchant_zone(merchant))
    gap = 0.0
    if free_shipping_threshold is not None and free_shipping_threshold > 0:
        gap = max(float(free_shipping_threshold - cart_value), 0.0)
    return CartSnapshot(
        cart_value=float(cart_value),
        items=int(sum(quantity for _, quantity, _ in lines)),
        distinct_products=len({sku for sku, _, _ in lines}),
        device=device,
        source=source or "",
        hour_of_day=local.hour,
        weekday=local.weekday(),
        logged_in=customer is not None and customer.is_identified,
        prior_orders=prior_orders,
        prior_sessions=prior_sessions,
        days_since_last_order=None if last_order_at is None else _days(at - last_order_at),
        prior_revenue=prior_revenue,
        signals=merged_signals,
        free_shipping_gap=gap,
    )


def _order_history(*, merchant: Merchant, customer_id: int, before: datetime) -> tuple[int, float, datetime | None]:
    # The customer's orders are few; the time bounds of these history reads stay out of SQL, where (without
    # planner statistics) they make SQLite prefer the (merchant, time) index to the customer's (6-15 ms, not 0.05).
    orders = [
        (placed_at, total)
        for placed_at, total in Order.objects.for_merchant(merchant)
        .filter(customer_id=customer_id, status=OrderStatus.COMPLETED)
        .values_list("placed_at", "total")
        if placed_at < before
    ]
    if not orders:
        return 0, 0.0, None
    return len(orders), float(sum(total for _, total in orders)), max(placed_at for placed_at, _ in orders)


def _days(delta: timedelta) -> float:
    return max(delta.total_seconds(), 0.0) / 86400.0


# Events that need their properties read (the others are counted by name alone).
_PROPERTY_EVENTS: tuple[str, ...] = ("Product Added", "Product Removed", "Page Viewed", "Product List Filtered")
_MOMENT_EVENTS: tuple[str, ...] = ("Cart Viewed", "Checkout Started")
_CART_EVENTS = ("Product Added", "Product Removed")
# When no "Cart Viewed" follows the last change of the cart, the snapshot is taken just after that change.
AFTER_LAST_CHANGE = timedelta(seconds=1)


def cart_snapshots(
    *,
    merchant: Merchant,
    start: datetime,
    end: datetime,
    free_shipping_threshold: Decimal | None = None,
) -> tuple[list[CartSnapshot], np.ndarray, list[datetime]]:
    """The carts of sessions started in [start, end), as training data: one snapshot per session with at least
    one "Product Added", taken at the first "Cart Viewed" after the last add (else just after the last add or
    removal), always before "Checkout Started" (a checkout mostly follows a decision to buy: counting it would
    leak the label). Only events strictly before that moment count. Label 1 = abandoned: the session placed no
    order (a cancelled one does not count). Carts of erased or merged-away customers are left out. Sorted by
    the snapshot moment; six queries whatever the number of sessions."""
    sessions = {
        pk: (customer_id, started_at, device, utm_source, external_id is not None)
        for pk, customer_id, started_at, device, utm_source, external_id in Session.objects.for_merchant(merchant)
        .filter(
            started_at__gte=start,
            started_at__lt=end,
            customer__erased_at__isnull=True,
            customer__merged_into__isnull=True,
        )
        .values_list("pk", "customer_id", "started_at", "device", "utm_source", "customer__external_id")
    }
    if not sessions:
        return [], np.zeros(0, dtype=int), []
    window = {"session__started_at__gte": start, "session__started_at__lt": end}
    by_session: dict[int, list[tuple]] = {}
    events = Event.objects.for_merchant(merchant).filter(**window)
    for session_id, name, timestamp, price, quantity, product_id in events.filter(
        name__in=[name for name in (*SIGNAL_EVENTS, *_MOMENT_EVENTS) if name not in _PROPERTY_EVENTS]
    ).values_list("session_id", "name", "timestamp", "price", "quantity", "product_id"):
        by_session.setdefault(session_id, []).append((timestamp, name, None, price, quantity, product_id))
    for session_id, name, timestamp, price, quantity, product_id, properties in events.filter(
        name__in=_PROPERTY_EVENTS
    ).values_list("session_id", "name", "timestamp", "price", "quantity", "product_id", "properties"):
        by_session.setdefault(session_id, []).append((timestamp, name, properties, price, quantity, product_id))

    bought = set(
        Order.objects.for_merchant(merchant)
        .filter(**window)
        .exclude(status=OrderStatus.CANCELLED)
        .values_list("session_id", flat=True)
    )
    customers = Session.objects.for_merchant(merchant).filter(started_at__gte=start, started_at__lt=end)
    order_history = _history(
        Order.objects.for_merchant(merchant)
        .filter(customer_id__in=customers.values("customer_id"), placed_at__lt=end, status=OrderStatus.COMPLETED)
        .values_list("customer_id", "placed_at", "total")
    )
    session_history = _history(
        Session.objects.for_merchant(merchant)
        .filter(customer_id__in=customers.values("customer_id"), started_at__lt=end)
        .values_list("customer_id", "started_at", "pk")
    )

    zone = merchant_zone(merchant)
    rows: list[tuple[datetime, CartSnapshot, int]] = []
    for session_id, session_events in by_session.items():
        session = sessions.get(session_id)
        if session is None:
            continue
        moment = _snapshot_moment(session_events)
        if moment is None:
            continue
        customer_id, started_at, device, utm_source, logged_in = session
        before = [event for event in session_events if event[0] < moment]
        value, items, products = _cart_contents(before)
        orders_before = order_history.get(customer_id)
        prior_orders, prior_revenue, last_order_at = 0, 0.0, None
        if orders_before is not None:
            times, cumulative = orders_before
            prior_orders = int(np.searchsorted(times, started_at.timestamp(), side="left"))
            if prior_orders:
                prior_revenue = float(cumulative[prior_orders - 1])
                last_order_at = float(times[prior_orders - 1])
        sessions_before = session_history.get(customer_id)
        prior_sessions = (
            int(np.searchsorted(sessions_before[0], started_at.timestamp(), side="left")) if sessions_before else 0
        )
        gap = 0.0
        if free_shipping_threshold is not None and free_shipping_threshold > 0:
            gap = max(float(free_shipping_threshold) - value, 0.0)
        local = moment.astimezone(zone)
        snapshot = CartSnapshot(
            cart_value=value,
            items=items,
            distinct_products=products,
            device=device,
            source=utm_source,
            hour_of_day=local.hour,
            weekday=local.weekday(),
            logged_in=logged_in,
            prior_orders=prior_orders,
            prior_sessions=prior_sessions,
            days_since_last_order=None if last_order_at is None else max(moment.timestamp() - last_order_at, 0) / 86400,
            prior_revenue=prior_revenue,
            signals=session_signals(((name, ts, props) for ts, name, props, *_ in before), at=moment),
            free_shipping_gap=gap,
        )
        rows.append((moment, snapshot, 0 if session_id in bought else 1))
    rows.sort(key=lambda row: row[0])
    return [row[1] for row in rows], np.array([row[2] for row in rows], dtype=int), [row[0] for row in rows]


def _snapshot_moment(events: list[tuple]) -> datetime | None:
    events.sort(key=lambda event: event[0])
    checkout = next((event[0] for event in events if event[1] == "Checkout Started"), None)
    before_checkout = [event for event in events if checkout is None or event[0] < checkout]
    last_add = max((event[0] for event in before_checkout if event[1] == "Product Added"), default=None)
    if last_add is None:
        return None
    last_change = max(event[0] for event in before_checkout if event[1] in _CART_EVENTS)
    viewed = next(
        (event[0] for event in before_checkout if event[1] == "Cart Viewed" and event[0] >= last_change), None
    )
    moment = viewed if viewed is not None else last_change + AFTER_LAST_CHANGE
    return moment if checkout is None else min(moment, checkout)


def _cart_contents(events: list[tuple]) -> tuple[float, int, int]:
    """(value, units, distinct products) of the cart the adds and removals built."""
    units: dict[object, int] = {}
    prices: dict[object, float] = {}
    for _, name, properties, price, quantity, product_id in events:
        if name not in _CART_EVENTS:
            continue
        properties = properties or {}
        key = product_id or properties.get("sku") or properties.get("product_id") or ""
        count = int(quantity) if quantity else 1
        if price is not None:
            prices[key] = float(price)
        units[key] = units.get(key, 0) + (count if name == "Product Added" else -count)
    held = {key: count for key, count in units.items() if count > 0}
    return (
        float(sum(count * prices.get(key, 0.0) for key, count in held.items())),
        int(sum(held.values())),
        len(held),
    )


def _history(rows: Iterable[tuple[int, datetime, object]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per customer: sorted epoch seconds and the running sum of the third column (0 when it is not a number)."""
    grouped: dict[int, list[tuple[float, float]]] = {}
    for customer_id, moment, amount in rows:
        number = float(amount) if isinstance(amount, Decimal | float) else 0.0
        grouped.setdefault(customer_id, []).append((moment.timestamp(), number))
    history = {}
    for customer_id, entries in grouped.items():
        entries.sort()
        history[customer_id] = (
            np.array([entry[0] for entry in entries]),
            np.cumsum([entry[1] for entry in entries]),
        )
    return history


# --- The model in service -------------------------------------------------------------------------------------

# merchant id → (monotonic expiry, (model pk, finished_at) or None): which model serves, re-read every
# ABANDONMENT_SERVING_SECONDS; a training drops its merchant's entry in its own process at once.
_serving_memo: dict[int, tuple[float, tuple[int, datetime] | None]] = {}
# (model pk, finished_at) → the unpickled predictor (finished_at too, so a reused pk cannot serve a stale model).
_predictors: dict[tuple[int, datetime], AbandonmentPredictor] = {}
SERVING_MEMO_LIMIT = 10_000
PREDICTOR_CACHE_LIMIT = 32
DEFAULT_SERVING_SECONDS = 60.0


def _serving_seconds() -> float:
    return float(getattr(settings, "REVOPT", {}).get("ABANDONMENT_SERVING_SECONDS", DEFAULT_SERVING_SECONDS))


def abandonment_model_serving(*, merchant: Merchant) -> AbandonmentModel | None:
    """The newest succeeded training (without its artifact loaded): a failed or running one never serves."""
    return (
        AbandonmentModel.objects.for_merchant(merchant)
        .filter(status=ModelRunStatus.SUCCEEDED)
        .defer("artifact")
        .order_by("-finished_at", "-pk")
        .first()
    )


def abandonment_models_recent(*, merchant: Merchant, limit: int = 20) -> list[AbandonmentModel]:
    """The merchant's latest trainings, newest first (any status), without their artifacts."""
    return list(
        AbandonmentModel.objects.for_merchant(merchant).defer("artifact").order_by("-started_at", "-pk")[:limit]
    )


def abandonment_serving_forget(*, merchant_id: int | None = None) -> None:
    if merchant_id is None:
        _serving_memo.clear()
    else:
        _serving_memo.pop(merchant_id, None)


def abandonment_predictor(*, merchant: Merchant) -> AbandonmentPredictor | None:
    """The predictor in service for the merchant, from this process's caches (a query per minute at most)."""
    now = time.monotonic()
    memo = _serving_memo.get(merchant.pk)
    if memo is None or memo[0] <= now:
        row = (
            AbandonmentModel.objects.for_merchant(merchant)
            .filter(status=ModelRunStatus.SUCCEEDED)
            .order_by("-finished_at", "-pk")
            .values_list("pk", "finished_at")
            .first()
        )
        memo = (now + _serving_seconds(), (row[0], row[1]) if row else None)
        if len(_serving_memo) >= SERVING_MEMO_LIMIT:
            _serving_memo.clear()
        _serving_memo[merchant.pk] = memo
    key = memo[1]
    if key is None:
        return None
    predictor = _predictors.get(key)
    if predictor is None:
        artifact = (
            AbandonmentModel.objects.for_merchant(merchant)
            .filter(pk=key[0], finished_at=key[1])
            .values_list("artifact", flat=True)
            .first()
        )
        if artifact is None:
            # A model without an artifact (or gone since the memo): nothing to score with until the memo expires.
            return None
        predictor = pickle.loads(bytes(artifact))
        if len(_predictors) >= PREDICTOR_CACHE_LIMIT:
            _predictors.pop(next(iter(_predictors)))
        _predictors[key] = predictor
    return predictor


def abandonment_score(*, merchant: Merchant, snapshot: CartSnapshot) -> float | None:
    """P(the cart is abandoned) from the model in service, None without one."""
    predictor = abandonment_predictor(merchant=merchant)
    if predictor is None:
        return None
    return float(predictor.predict_snapshots([snapshot])[0])
