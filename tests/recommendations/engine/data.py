"""Hand-made `TrainingData` for the engine's tests: small shops whose right answers are known."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recommendations.engine.dataset import KIND_INDEX, Baskets, Interactions, Items, TrainingData, Users

DAY = 86_400.0
NOW = 1_800_000_000.0


def make_items(
    count: int,
    *,
    categories: Sequence[int] | None = None,
    titles: Sequence[str] | None = None,
    brands: Sequence[str] | None = None,
    prices: Sequence[float] | None = None,
    created_days_ago: Sequence[float] | None = None,
    attributes: Sequence[dict] | None = None,
) -> Items:
    """Items with ids 100, 101, ...; defaults: category 1, title "item i", no brand, price 10, a year old."""
    return Items(
        ids=np.arange(100, 100 + count, dtype=np.int64),
        category=np.array(categories if categories is not None else [1] * count, dtype=np.int64),
        category_path=[f"Cat {c}" if c >= 0 else "" for c in (categories if categories is not None else [1] * count)],
        title=list(titles) if titles is not None else [f"item {i}" for i in range(count)],
        description=["" for _ in range(count)],
        brand=list(brands) if brands is not None else ["" for _ in range(count)],
        attributes=list(attributes) if attributes is not None else [{} for _ in range(count)],
        price=np.array(prices if prices is not None else [10.0] * count, dtype=np.float64),
        created_at=NOW - DAY * np.array(created_days_ago if created_days_ago is not None else [365.0] * count),
    )


def make_data(
    events: Sequence[tuple[int, int, str, float]] | Sequence[tuple[int, int, str, float, int]],
    *,
    items: Items | int,
    users: int,
    orders: Sequence[tuple[int, Sequence[int], float]] = (),
    devices: Sequence[str] | None = None,
    segments: Sequence[str] | None = None,
) -> TrainingData:
    """`events` are (user, item, kind, days before NOW[, session]); `orders` are (user, items, days before NOW).

    Users get ids 1000, 1001, ...
    """
    item_block = make_items(items) if isinstance(items, int) else items
    rows = [tuple(event) + ((-1,) if len(event) == 4 else ()) for event in events]
    order_items = [list(entry[1]) for entry in orders]
    return TrainingData(
        items=item_block,
        users=Users(
            ids=np.arange(1000, 1000 + users, dtype=np.int64),
            device=list(devices) if devices is not None else ["mobile"] * users,
            segment=list(segments) if segments is not None else ["new"] * users,
        ),
        interactions=Interactions(
            user=np.array([row[0] for row in rows], dtype=np.int64),
            item=np.array([row[1] for row in rows], dtype=np.int64),
            kind=np.array([KIND_INDEX[row[2]] for row in rows], dtype=np.int8),
            timestamp=np.array([NOW - DAY * row[3] for row in rows], dtype=np.float64),
            session=np.array([row[4] for row in rows], dtype=np.int64),
        ),
        baskets=Baskets(
            offsets=np.r_[0, np.cumsum([len(entry) for entry in order_items])].astype(np.int64),
            item=np.array([item for entry in order_items for item in entry], dtype=np.int64),
            user=np.array([entry[0] for entry in orders], dtype=np.int64),
            timestamp=np.array([NOW - DAY * entry[2] for entry in orders], dtype=np.float64),
        )
        if orders
        else Baskets.empty(),
        now=NOW,
    )


def clustered_shop(*, users: int = 60, items: int = 20, purchases: int = 6, seed: int = 0) -> TrainingData:
    """Two tastes: even users buy from the first half of the items (category 1), odd users from the
    second half (category 2), `purchases` each, a few days apart."""
    generator = np.random.default_rng(seed)
    half = items // 2
    events = []
    for user in range(users):
        group = user % 2
        # Within a taste, lower items are more popular.
        weights = 1.0 / np.arange(1, half + 1)
        chosen = generator.choice(half, size=purchases, replace=False, p=weights / weights.sum()) + group * half
        for position, item in enumerate(chosen):
            events.append((user, int(item), "purchase", 60.0 - 5 * position - generator.random()))
    return make_data(
        events,
        items=make_items(items, categories=[1] * half + [2] * (items - half)),
        users=users,
    )
