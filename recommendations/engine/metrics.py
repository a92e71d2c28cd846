"""Ranking metrics at k for one user's list, and catalog-level coverage and novelty.

Conventions: precision@k = hits / k; recall@k = hits / |relevant|; NDCG@k with binary gains and the
ideal DCG over min(k, |relevant|) hits; MAP@k (AP@k averaged) divides by min(k, |relevant|).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np


def precision_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    return sum(1 for item in ranked[:k] if item in relevant) / k


def recall_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    if not relevant:
        return 0.0
    return sum(1 for item in ranked[:k] if item in relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(position + 2) for position, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(position + 2) for position in range(min(k, len(relevant))))
    return dcg / ideal


def average_precision_at_k(ranked: Sequence[int], relevant: set[int], k: int) -> float:
    if not relevant:
        return 0.0
    hits = 0
    total = 0.0
    for position, item in enumerate(ranked[:k]):
        if item in relevant:
            hits += 1
            total += hits / (position + 1)
    return total / min(k, len(relevant))


def catalog_coverage(lists: Iterable[Sequence[int]], *, catalog_size: int) -> float:
    """Share of the catalog that appears in at least one list."""
    if catalog_size == 0:
        return 0.0
    return len({item for ranked in lists for item in ranked}) / catalog_size


def novelty(lists: Iterable[Sequence[int]], *, popularity_share: np.ndarray) -> float:
    """Mean self-information −log2(share) of the recommended items.

    `popularity_share[i]` is the share of training users who interacted with item i; an item nobody
    interacted with counts as one user's worth, so it is novel but not infinitely so.
    """
    total = 0.0
    count = 0
    floor = float(popularity_share[popularity_share > 0].min()) if (popularity_share > 0).any() else 1.0
    for ranked in lists:
        for item in ranked:
            total += -math.log2(max(float(popularity_share[item]), floor))
            count += 1
    return total / count if count else 0.0


def ranking_metrics(
    lists: dict[int, Sequence[int]],
    holdout: dict[int, set[int]],
    *,
    k: int,
    catalog_size: int,
    popularity_share: np.ndarray,
) -> dict[str, float]:
    """Mean precision, recall, NDCG and MAP at k over the holdout users, plus coverage and novelty."""
    users = [user for user in holdout if holdout[user]]
    if not users:
        return {
            f"precision@{k}": 0.0,
            f"recall@{k}": 0.0,
            f"ndcg@{k}": 0.0,
            f"map@{k}": 0.0,
            "coverage": 0.0,
            "novelty": 0.0,
            "users": 0.0,
        }
    top = [list(lists.get(user, []))[:k] for user in users]
    relevant = [holdout[user] for user in users]
    return {
        f"precision@{k}": float(np.mean([precision_at_k(r, h, k) for r, h in zip(top, relevant, strict=True)])),
        f"recall@{k}": float(np.mean([recall_at_k(r, h, k) for r, h in zip(top, relevant, strict=True)])),
        f"ndcg@{k}": float(np.mean([ndcg_at_k(r, h, k) for r, h in zip(top, relevant, strict=True)])),
        f"map@{k}": float(np.mean([average_precision_at_k(r, h, k) for r, h in zip(top, relevant, strict=True)])),
        "coverage": catalog_coverage(top, catalog_size=catalog_size),
        "novelty": novelty(top, popularity_share=popularity_share),
        "users": float(len(users)),
    }
