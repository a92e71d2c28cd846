"""Fast NDCG@10 on an inner temporal split, for choosing hyperparameters and blend weights.

Only the training data is ever split here; the evaluation holdout is never seen by any tuning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommendations.engine.dataset import Baskets, TrainingData
from recommendations.engine.split import temporal_split

K = 10
MAX_USERS = 1_500
MIN_USERS = 20


@dataclass(frozen=True)
class ValidationSet:
    """Held-out users of an inner split, ranked over `columns` (the items inner train has seen).

    NDCG's ideal DCG counts every held-out item, so an item outside `columns` is a miss, as it
    would be for the final ranker.
    """

    train: TrainingData
    users: np.ndarray
    columns: np.ndarray
    relevant: np.ndarray  # bool, users × columns
    seen_penalty: np.ndarray  # float32, users × columns: -inf where the user touched the item
    ideal: np.ndarray  # ideal DCG per user

    def restrict(self, scores: np.ndarray) -> np.ndarray:
        """Users × all items -> users × columns."""
        return np.asarray(scores, dtype=np.float32)[:, self.columns]

    def is_relevant(self, items: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Users × n item indexes -> whether each item is held out for its row's user (`rows`: which
        of `users` the rows of `items` are, all of them by default)."""
        position = np.full(self.train.items.ids.shape[0], -1)
        position[self.columns] = np.arange(len(self.columns))
        columns = position[items]
        rows = (np.arange(len(self.users)) if rows is None else np.asarray(rows))[:, None]
        return np.where(columns >= 0, self.relevant[rows, np.maximum(columns, 0)], False)

    def ndcg(self, scores: np.ndarray) -> float:
        """Mean NDCG@10 of users × columns scores."""
        masked = scores + self.seen_penalty
        k = min(K, masked.shape[1])
        top = -np.sort(-np.partition(masked, masked.shape[1] - k, axis=1)[:, -k:], axis=1)
        hits = self.relevant & (masked >= top[:, -1:])
        rows, cols = np.nonzero(hits)
        values = masked[rows, cols]
        ranks = (top[rows] > values[:, None]).sum(axis=1)
        inside = (ranks < k) & np.isfinite(values)
        gains = np.bincount(rows[inside], weights=1.0 / np.log2(ranks[inside] + 2.0), minlength=len(self.users))
        return float(np.mean(gains / self.ideal))

    def recall(self, scores: np.ndarray, k: int) -> float:
        """Mean share of each user's held-out items (inside `columns`) among its top k unseen scores."""
        masked = scores + self.seen_penalty
        k = min(k, masked.shape[1])
        threshold = np.partition(masked, masked.shape[1] - k, axis=1)[:, -k][:, None]
        found = (self.relevant & (masked >= threshold) & np.isfinite(masked)).sum(axis=1)
        return float(np.mean(found / np.maximum(self.relevant.sum(axis=1), 1)))


def seen_matrix(data: TrainingData) -> sp.csr_matrix:
    matrix = sp.csr_matrix(
        (np.ones(len(data.interactions)), (data.interactions.user, data.interactions.item)),
        shape=(len(data.users), len(data.items)),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def sample_users(data: TrainingData, *, max_users: int, seed: int = 0) -> tuple[TrainingData, float]:
    """`data` with only the interactions and orders of at most `max_users` random active users, and
    the factor by which the active users were thinned (1.0 when all are kept). Indexes are unchanged."""
    active = np.unique(data.interactions.user)
    if len(active) <= max_users:
        return data, 1.0
    kept = np.zeros(len(data.users), dtype=bool)
    kept[np.random.default_rng(seed).choice(active, max_users, replace=False)] = True
    baskets = data.baskets
    if len(baskets):
        order_kept = kept[baskets.user]
        sizes = np.diff(baskets.offsets)
        baskets = Baskets(
            offsets=np.r_[0, np.cumsum(sizes[order_kept])].astype(np.int64),
            item=baskets.item[np.repeat(order_kept, sizes)],
            user=baskets.user[order_kept],
            timestamp=baskets.timestamp[order_kept],
        )
    sampled = TrainingData(
        items=data.items,
        users=data.users,
        interactions=data.interactions.take(kept[data.interactions.user]),
        baskets=baskets,
        now=data.now,
    )
    return sampled, len(active) / max_users


def validation_set(data: TrainingData, *, seed: int = 0, max_users: int = MAX_USERS) -> ValidationSet | None:
    """An inner temporal split of `data`, or None when it holds out too few users to choose anything."""
    train, holdout = temporal_split(data)
    users = np.array(sorted(user for user, items in holdout.items() if items), dtype=np.int64)
    if len(users) < MIN_USERS:
        return None
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    seen = seen_matrix(train)
    columns = np.flatnonzero(np.asarray(seen.sum(axis=0)).ravel() > 0)
    position = np.full(len(data.items), -1)
    position[columns] = np.arange(len(columns))
    relevant = np.zeros((len(users), len(columns)), dtype=bool)
    ideal = np.zeros(len(users))
    for row, user in enumerate(users):
        items = np.fromiter(holdout[int(user)], dtype=np.int64)
        inside = position[items]
        relevant[row, inside[inside >= 0]] = True
        ideal[row] = np.sum(1.0 / np.log2(np.arange(min(K, len(items))) + 2.0))
    seen_penalty = np.zeros((len(users), len(columns)), dtype=np.float32)
    rows = seen[users][:, columns].tocoo()
    seen_penalty[rows.row, rows.col] = -np.inf
    return ValidationSet(
        train=train, users=users, columns=columns, relevant=relevant, seen_penalty=seen_penalty, ideal=ideal
    )
