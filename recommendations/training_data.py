"""Reads a merchant's events, orders and catalog into the engine's `TrainingData`.

One pass per source (events, order lines, sessions, orders, products) through `values_list(...).iterator()`,
no model instances; ids become indexes with numpy. Nothing personal beyond a customer's id, the device
they use most and an activity segment leaves the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from django.db.models import Case, Count, FloatField, Func, IntegerField, QuerySet, Value, When
from django.utils import timezone

from catalog.models import Product
from events.models import Customer, Device, Event, Order, OrderLine, OrderStatus, Session
from recommendations.engine.dataset import KIND_INDEX, Baskets, Interactions, Items, TrainingData, Users
from recommendations.models import RecommenderSettings
from revopt.tenancy.models import Merchant

# Segment's e-commerce event names and the feedback kind each one is.
EVENT_KINDS: dict[str, str] = {
    "Product Viewed": "view",
    "Product Clicked": "click",
    "Product Added to Wishlist": "wishlist",
    "Product Added": "cart",
}
CHUNK_SIZE = 20_000
UNKNOWN_DEVICE = Device.OTHER.value


class UnixSeconds(Func):
    """A datetime column as float seconds since 1970, computed by the database.

    Turning a million datetimes into Python objects (and back into numbers) would cost more than
    reading them; the database does it in place.
    """

    output_field = FloatField()

    def as_sqlite(self, compiler, connection, **extra_context):
        # Django stores aware datetimes in SQLite as UTC text. julianday() parses it fastest (strftime is 8×
        # slower) but is off by microseconds, so round to the millisecond.
        template = "(ROUND((julianday(%(expressions)s) - 2440587.5) * 86400000.0) / 1000.0)"
        return self.as_sql(compiler, connection, template=template)

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)::double precision")


def training_data_for(
    *, merchant: Merchant, now: datetime | None = None, settings: RecommenderSettings | None = None
) -> TrainingData:
    """Everything training needs from the last `settings.training_window_days` days before `now`."""
    now = now or timezone.now()
    window_days = settings.training_window_days if settings is not None else _default_window_days()
    window_start = now - timedelta(days=window_days)

    items = _items(merchant=merchant)
    merged = _merged_customers(merchant=merchant)
    event_columns = _event_rows(merchant=merchant, window_start=window_start, now=now)
    line_columns, basket_order = _purchase_rows(merchant=merchant, window_start=window_start, now=now)

    customer_ids = _resolve_merged(np.concatenate([event_columns["customer"], line_columns["customer"]]), merged)
    product_ids = np.concatenate([event_columns["product"], line_columns["product"]])
    item_index = _index_of(items.ids, product_ids)
    user_ids, user_index = np.unique(customer_ids, return_inverse=True)
    known_item = item_index >= 0

    interactions = Interactions(
        user=user_index.astype(np.int64),
        item=item_index,
        kind=np.concatenate([event_columns["kind"], line_columns["kind"]]).astype(np.int8),
        timestamp=np.concatenate([event_columns["timestamp"], line_columns["timestamp"]]),
        session=np.concatenate([event_columns["session"], line_columns["session"]]),
    ).take(known_item)

    event_count = len(event_columns["customer"])
    line_item = item_index[event_count:]
    line_user = user_index[event_count:]
    baskets = _baskets(
        order=basket_order[line_item >= 0],
        item=line_item[line_item >= 0],
        user=line_user[line_item >= 0],
        timestamp=line_columns["timestamp"][line_item >= 0],
    )
    users = _users(merchant=merchant, user_ids=user_ids, merged=merged, window_start=window_start, now=now)
    return TrainingData(items=items, users=users, interactions=interactions, baskets=baskets, now=now.timestamp())


def _default_window_days() -> int:
    return RecommenderSettings._meta.get_field("training_window_days").default


def _items(*, merchant: Merchant) -> Items:
    ids: list[int] = []
    category: list[int] = []
    category_path: list[str] = []
    title: list[str] = []
    description: list[str] = []
    brand: list[str] = []
    attributes: list[dict] = []
    price: list[float] = []
    created_at: list[float] = []
    rows = (
        Product.objects.for_merchant(merchant)
        .order_by("pk")
        .values_list(
            "pk", "category_id", "category__path", "title", "description", "brand", "attributes", "price", "created_at"
        )
    )
    for row in rows.iterator(chunk_size=CHUNK_SIZE):
        ids.append(row[0])
        category.append(row[1] if row[1] is not None else -1)
        category_path.append(row[2] or "")
        title.append(row[3])
        description.append(row[4])
        brand.append(row[5])
        attributes.append(row[6] if isinstance(row[6], dict) else {})
        price.append(float(row[7]))
        created_at.append(row[8].timestamp())
    return Items(
        ids=np.array(ids, dtype=np.int64),
        category=np.array(category, dtype=np.int64),
        category_path=category_path,
        title=title,
        description=description,
        brand=brand,
        attributes=attributes,
        price=np.array(price, dtype=np.float64),
        created_at=np.array(created_at, dtype=np.float64),
    )


def _merged_customers(*, merchant: Merchant) -> dict[int, int]:
    """Merged customer id → the customer it was merged into (followed to the end of the chain)."""
    pairs = dict(
        Customer.objects.for_merchant(merchant)
        .filter(merged_into__isnull=False)
        .values_list("pk", "merged_into_id")
        .iterator(chunk_size=CHUNK_SIZE)
    )
    resolved: dict[int, int] = {}
    for source in pairs:
        target, seen = pairs[source], {source}
        while target in pairs and target not in seen:
            seen.add(target)
            target = pairs[target]
        resolved[source] = target
    return resolved


def _erased_customers(*, merchant: Merchant) -> QuerySet:
    """Erased customers (GDPR/CCPA) as a subquery: their events and orders are kept for the shop's totals but
    never train a model again."""
    return Customer.objects.for_merchant(merchant).filter(erased_at__isnull=False).values("pk")


def _resolve_merged(customer_ids: np.ndarray, merged: dict[int, int]) -> np.ndarray:
    # Merging moves a customer's rows, so this only catches rows written in the race around a merge.
    if not merged or not len(customer_ids):
        return customer_ids
    sources = np.fromiter(merged.keys(), dtype=np.int64, count=len(merged))
    targets = np.fromiter(merged.values(), dtype=np.int64, count=len(merged))
    order = np.argsort(sources)
    sources, targets = sources[order], targets[order]
    position = np.clip(np.searchsorted(sources, customer_ids), 0, len(sources) - 1)
    is_merged = sources[position] == customer_ids
    return np.where(is_merged, targets[position], customer_ids)


def _index_of(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in `sorted_ids`, -1 for an id that is not there."""
    if not len(sorted_ids):
        return np.full(len(ids), -1, dtype=np.int64)
    position = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[position] == ids, position, -1).astype(np.int64)


def _columns(rows, width: int) -> list[np.ndarray]:
    """Transposes (customer, product, kind, timestamp, session) tuples chunk by chunk into numpy columns."""
    customer: list[np.ndarray] = []
    product: list[np.ndarray] = []
    kind: list[np.ndarray] = []
    timestamp: list[np.ndarray] = []
    session: list[np.ndarray] = []
    extra: list[np.ndarray] = []
    chunk: list[tuple] = []

    def flush() -> None:
        if not chunk:
            return
        columns = list(zip(*chunk, strict=True))
        customer.append(np.array(columns[0], dtype=np.int64))
        product.append(np.array(columns[1], dtype=np.int64))
        kind.append(np.array(columns[2], dtype=np.int8))
        timestamp.append(np.array(columns[3], dtype=np.float64))
        session.append(np.array([-1 if value is None else value for value in columns[4]], dtype=np.int64))
        if width > 5:
            extra.append(np.array(columns[5], dtype=np.int64))
        chunk.clear()

    for row in rows.iterator(chunk_size=CHUNK_SIZE):
        chunk.append(row)
        if len(chunk) == CHUNK_SIZE:
            flush()
    flush()
    empty = {
        0: np.zeros(0, np.int64),
        1: np.zeros(0, np.int64),
        2: np.zeros(0, np.int8),
        3: np.zeros(0, np.float64),
        4: np.zeros(0, np.int64),
        5: np.zeros(0, np.int64),
    }
    parts = [customer, product, kind, timestamp, session, extra][:width]
    return [np.concatenate(part) if part else empty[position] for position, part in enumerate(parts)]


def _event_rows(*, merchant: Merchant, window_start: datetime, now: datetime) -> dict[str, np.ndarray]:
    kind_code = Case(
        *(When(name=name, then=Value(KIND_INDEX[kind])) for name, kind in EVENT_KINDS.items()),
        output_field=IntegerField(),
    )
    rows = (
        Event.objects.for_merchant(merchant)
        .filter(name__in=list(EVENT_KINDS), product__isnull=False, timestamp__gte=window_start, timestamp__lte=now)
        .exclude(customer_id__in=_erased_customers(merchant=merchant))
        .annotate(kind_code=kind_code, seconds=UnixSeconds("timestamp"))
        .values_list("customer_id", "product_id", "kind_code", "seconds", "session_id")
    )
    customer, product, kind, timestamp, session = _columns(rows, width=5)
    return {"customer": customer, "product": product, "kind": kind, "timestamp": timestamp, "session": session}


def _purchase_rows(
    *, merchant: Merchant, window_start: datetime, now: datetime
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Lines of completed orders as purchase interactions, and the order id of each line (for baskets)."""
    rows = (
        OrderLine.objects.for_merchant(merchant)
        .filter(
            product__isnull=False,
            order__status=OrderStatus.COMPLETED,
            order__placed_at__gte=window_start,
            order__placed_at__lte=now,
        )
        .exclude(order__customer_id__in=_erased_customers(merchant=merchant))
        .annotate(
            kind_code=Value(KIND_INDEX["purchase"], output_field=IntegerField()),
            seconds=UnixSeconds("order__placed_at"),
        )
        .values_list("order__customer_id", "product_id", "kind_code", "seconds", "order__session_id", "order_id")
    )
    customer, product, kind, timestamp, session, order = _columns(rows, width=6)
    columns = {"customer": customer, "product": product, "kind": kind, "timestamp": timestamp, "session": session}
    return columns, order


def _baskets(*, order: np.ndarray, item: np.ndarray, user: np.ndarray, timestamp: np.ndarray) -> Baskets:
    if not len(order):
        return Baskets.empty()
    by_order = np.lexsort((item, order))
    order, item, user, timestamp = order[by_order], item[by_order], user[by_order], timestamp[by_order]
    # An order with the same product on two lines is one basket item.
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (order[1:] != order[:-1]) | (item[1:] != item[:-1])
    order, item, user, timestamp = order[keep], item[keep], user[keep], timestamp[keep]
    _, first, counts = np.unique(order, return_index=True, return_counts=True)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Baskets(offsets=offsets, item=item.astype(np.int64), user=user[first], timestamp=timestamp[first])


def _users(
    *, merchant: Merchant, user_ids: np.ndarray, merged: dict[int, int], window_start: datetime, now: datetime
) -> Users:
    """Each customer's most used device (sessions in the window) and order segment (completed orders ever)."""
    devices = sorted(Device.values)  # sorted: ties go to the alphabetically first device, the same every time
    device_code = {device: code for code, device in enumerate(devices)}
    sessions = list(
        Session.objects.for_merchant(merchant)
        .filter(started_at__gte=window_start, started_at__lte=now)
        .values_list("customer_id", "device")
        .iterator(chunk_size=CHUNK_SIZE)
    )
    session_user = _index_of(user_ids, _resolve_merged(np.array([row[0] for row in sessions], dtype=np.int64), merged))
    session_device = np.array([device_code.get(row[1], device_code[UNKNOWN_DEVICE]) for row in sessions], np.int64)
    known = session_user >= 0
    device_counts = np.zeros((len(user_ids), len(devices)), dtype=np.int64)
    np.add.at(device_counts, (session_user[known], session_device[known]), 1)
    main_device = np.where(device_counts.any(axis=1), device_counts.argmax(axis=1), device_code[UNKNOWN_DEVICE])

    orders = list(
        Order.objects.for_merchant(merchant)
        .filter(status=OrderStatus.COMPLETED, placed_at__lte=now)
        .values("customer_id")
        .annotate(orders=Count("pk"))
        .values_list("customer_id", "orders")
        .iterator(chunk_size=CHUNK_SIZE)
    )
    order_user = _index_of(user_ids, _resolve_merged(np.array([row[0] for row in orders], dtype=np.int64), merged))
    counted = order_user >= 0
    order_counts = np.zeros(len(user_ids), dtype=np.int64)
    np.add.at(order_counts, order_user[counted], np.array([row[1] for row in orders], dtype=np.int64)[counted])
    segments = np.array(["new", "one_time", "repeat"])[np.minimum(order_counts, 2)]
    return Users(
        ids=user_ids.astype(np.int64),
        device=[devices[code] for code in main_device.tolist()],
        segment=segments.tolist(),
    )
