"""The per-user temporal split that every offline score (and the ranker's own tuning) uses."""

from __future__ import annotations

import numpy as np

from recommendations.engine.dataset import FEEDBACK_KINDS, KIND_INDEX, Baskets, TrainingData

# What a held-out "hit" is: the next products the customer engages with, of any kind. Counting only
# carts and purchases left a shop almost no holdout: few shoppers cart five distinct products, and
# what they buy they viewed before the cut (so it is not "new" to them). Training still weighs
# purchases above views; MovieLens has one kind only, so its split is the same either way.
POSITIVE_KINDS: tuple[str, ...] = FEEDBACK_KINDS
MIN_POSITIVE_ITEMS = 5


def positive_mask(data: TrainingData, positive_kinds: tuple[str, ...] = POSITIVE_KINDS) -> np.ndarray:
    kinds = np.array([KIND_INDEX[kind] for kind in positive_kinds], dtype=np.int64)
    mask = np.isin(data.interactions.kind, kinds)
    return mask if mask.any() else np.ones(len(data.interactions), dtype=bool)


def temporal_split(
    data: TrainingData,
    holdout_fraction: float = 0.2,
    *,
    min_items: int = MIN_POSITIVE_ITEMS,
    positive_kinds: tuple[str, ...] = POSITIVE_KINDS,
) -> tuple[TrainingData, dict[int, set[int]]]:
    """Hold out each user's last `holdout_fraction` of distinct positive items, by first time seen.

    A user with fewer than `min_items` distinct positive items stays entirely in train. For a split
    user, train keeps only interactions (and orders) strictly before the first held-out item, so no
    later item is ever in train; held-out items the user already touched before the cut (viewed,
    say) are dropped from the holdout, since rankers never recommend what a user has seen.
    Returns (train data, user index -> held-out item indexes).
    """
    interactions = data.interactions
    positive = np.flatnonzero(positive_mask(data, positive_kinds))
    cutoff = np.full(len(data.users), np.inf)
    if len(positive):
        order = np.lexsort((interactions.timestamp[positive], interactions.item[positive], interactions.user[positive]))
        ordered = positive[order]
        users, items, times = interactions.user[ordered], interactions.item[ordered], interactions.timestamp[ordered]
        first = np.ones(len(ordered), dtype=bool)
        first[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
        users, items, times = users[first], items[first], times[first]
        by_time = np.lexsort((items, times, users))
        users, items, times = users[by_time], items[by_time], times[by_time]
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        ends = np.r_[starts[1:], len(users)]
        for start, end in zip(starts, ends, strict=True):
            count = end - start
            if count < min_items:
                continue
            held = max(1, int(round(count * holdout_fraction)))
            user_cutoff = times[end - held]
            if times[start] >= user_cutoff:  # every positive at the same instant: nothing left to learn from
                continue
            cutoff[users[start]] = user_cutoff

    keep = interactions.timestamp < cutoff[interactions.user]
    train_interactions = interactions.take(keep)
    seen = set(zip(train_interactions.user.tolist(), train_interactions.item.tolist(), strict=True))
    holdout: dict[int, set[int]] = {}
    for index in positive[~keep[positive]]:
        user, item = int(interactions.user[index]), int(interactions.item[index])
        if (user, item) not in seen:
            holdout.setdefault(user, set()).add(item)

    baskets = data.baskets
    order_keep = baskets.timestamp < cutoff[baskets.user] if len(baskets) else np.zeros(0, dtype=bool)
    train_baskets = _take_orders(baskets, order_keep)
    train = TrainingData(
        items=data.items, users=data.users, interactions=train_interactions, baskets=train_baskets, now=data.now
    )
    return train, holdout


def _take_orders(baskets: Baskets, keep: np.ndarray) -> Baskets:
    if len(baskets) == 0:
        return baskets
    sizes = np.diff(baskets.offsets)
    item_keep = np.repeat(keep, sizes)
    return Baskets(
        offsets=np.r_[0, np.cumsum(sizes[keep])].astype(np.int64),
        item=baskets.item[item_keep],
        user=baskets.user[keep],
        timestamp=baskets.timestamp[keep],
    )
