"""Whether a shop uses an optional feature at all, cached: the ingest path asks for every batch with orders,
and a shop that never issued an offer or scheduled a recovery message should pay no query for it.

`feature_in_use` answers from the cache or runs the check once a minute; `feature_used` marks the feature in
use when the transaction that started using it commits (a rolled-back first use leaves no stale "yes").
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.cache import cache
from django.db import transaction

IN_USE_CACHE_SECONDS = 60


def _key(feature: str, merchant_id: int) -> str:
    return f"revopt:in-use:{feature}:{merchant_id}"


def feature_in_use(*, feature: str, merchant_id: int, check: Callable[[], bool]) -> bool:
    key = _key(feature, merchant_id)
    cached = cache.get(key)
    if cached is None:
        cached = bool(check())
        cache.set(key, cached, IN_USE_CACHE_SECONDS)
    return bool(cached)


def feature_used(*, feature: str, merchant_id: int) -> None:
    key = _key(feature, merchant_id)
    transaction.on_commit(lambda: cache.set(key, True, IN_USE_CACHE_SECONDS))
