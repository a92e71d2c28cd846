"""The serving cache: a published version's candidate lists, per merchant, in Django's cache (Redis).

Keys (`m` = merchant id, `n` = version number):

    rec:{m}:active          the active version: (number, version pk); (0, None) when none is active
    rec:{m}:config:{f}      placement rules, item rules and the category tree (short TTL; f: the format)
    rec:{m}:imp:{visitor}   impressions shown to one visitor: {product id: [unix seconds, ...]}
    rec:{m}:{n}:global      popular, trending and new arrivals, truncated
    rec:{m}:{n}:c:{id}      one customer's personal candidates: [(product, score, reason, because_of)]
    rec:{m}:{n}:i:{id}      one product's neighbours: {"vt", "pt", "sc", "bt"} → [(product, score)]
    rec:{m}:{n}:cat:{id}    one category's (popular, trending) lists
    rec:{m}:{n}:vec:{id}    one product's unit vector (float32 bytes) for MMR
    rec:{m}:{n}:warming     held by the one process warming the version from its artifact

Memory stays bounded: every list is truncated, every key expires (the global key a day before the
others, so a miss re-warms the version before its per-item keys vanish), and Redis runs with a
maxmemory policy. Every call here raises CacheUnavailable when the backend fails; after a failure the
cache is skipped for a few seconds so a dead Redis costs one timeout, not one per request.

A request reads the cache once when it can: each process keeps the pointer and the rules a few seconds
(`local_state_*`), so the version's lists and the visitor's impressions come in one `get_many`
(a second only for a known customer's session views, which the database names after that read).
"""

from __future__ import annotations

import logging
import time
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache

from .engine.precomputed import Precomputed
from .models import RecommenderVersion

logger = logging.getLogger(__name__)

DEFAULTS = {
    # Lifetime of a published version's keys; nightly training refreshes them long before.
    "RECOMMENDATION_CACHE_TTL": 3 * 24 * 3600,
    # How long the active-version pointer and the rules are trusted before the database is asked again.
    "RECOMMENDATION_POINTER_TTL": 300,
    "RECOMMENDATION_CONFIG_TTL": 60,
    # After a cache failure, requests skip the cache (and answer from the database) for this long.
    "RECOMMENDATION_CACHE_RETRY_SECONDS": 5.0,
    # How long a process trusts its own copy of the active-version pointer and the rules before it reads
    # them from the cache again: a version published or a rule saved elsewhere is served within this long
    # (at once by the process that did it). 0 turns the copy off.
    "RECOMMENDATION_LOCAL_SECONDS": 5.0,
}
GLOBAL_LIST_LIMIT = 300
CATEGORY_LIST_LIMIT = 100
ITEM_LIST_LIMIT = 50
CUSTOMER_LIST_LIMIT = 100
NEW_ARRIVALS_LIMIT = 100
SET_MANY_CHUNK = 500
WARM_LOCK_SECONDS = 120
IMPRESSIONS_PER_PRODUCT = 20
IMPRESSION_PRODUCTS_LIMIT = 300

NO_ACTIVE_VERSION = (0, None)
CONFIG_FORMAT = 1

_unavailable_until = 0.0


class CacheUnavailable(Exception):
    """The cache backend failed (Redis down or unreachable); callers answer from the database."""


def _setting(name: str) -> Any:
    return getattr(settings, "REVOPT", {}).get(name, DEFAULTS[name])


@dataclass(frozen=True)
class ActiveVersion:
    number: int
    version_id: int


@dataclass(frozen=True)
class VersionLists:
    """What one request reads of a published version."""

    popular: list[tuple[int, float]]
    trending: list[tuple[int, float]]
    new_arrivals: list[int]
    for_customer: list[tuple[int, float, str, int | None]]
    # product id → {"vt": viewed together, "pt": purchased together, "sc": similar content, "bt": bought together}
    items: dict[int, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    # category id → (popular, trending)
    categories: dict[int, tuple[list[tuple[int, float]], list[tuple[int, float]]]] = field(default_factory=dict)
    # The visitor's impressions, when asked for in the same round trip ({} otherwise).
    impressions: dict[int, list[float]] = field(default_factory=dict)


def _guarded() -> None:
    if time.monotonic() < _unavailable_until:
        raise CacheUnavailable("cache marked unavailable after a recent failure")


def _failed(error: Exception) -> CacheUnavailable:
    global _unavailable_until
    _unavailable_until = time.monotonic() + float(_setting("RECOMMENDATION_CACHE_RETRY_SECONDS"))
    logger.warning("recommendation cache unavailable: %s", error)
    return CacheUnavailable(str(error))


def cache_reset_circuit() -> None:
    """Forget a recorded failure and this process's copies (tests, and an operator who knows Redis is back)."""
    global _unavailable_until
    _unavailable_until = 0.0
    local_state_forget()


# --- this process's copy of the pointer and the rules ----------------------------------------------
# (cache key prefix, merchant id) → (monotonic expiry, the pointer, the rules). The prefix keeps copies
# made under another cache namespace (tests, benchmark runs) apart.
_local: dict[tuple[str, int], tuple[float, tuple[int, int | None], Any]] = {}
LOCAL_LIMIT = 10_000


def _local_key(merchant_id: int) -> tuple[str, int]:
    return (str(getattr(cache, "key_prefix", "")), merchant_id)


def local_state_get(*, merchant_id: int) -> tuple[tuple[int, int | None], Any] | None:
    """(pointer, rules) as this process last read them, while fresh; no I/O."""
    entry = _local.get(_local_key(merchant_id))
    if entry is None or entry[0] <= time.monotonic():
        return None
    return entry[1], entry[2]


def local_state_set(*, merchant_id: int, pointer: tuple[int, int | None], config: Any) -> None:
    seconds = float(_setting("RECOMMENDATION_LOCAL_SECONDS"))
    if seconds <= 0:
        return
    if len(_local) >= LOCAL_LIMIT:
        _local.clear()
    _local[_local_key(merchant_id)] = (time.monotonic() + seconds, pointer, config)


def local_state_forget(*, merchant_id: int | None = None) -> None:
    if merchant_id is None:
        _local.clear()
    else:
        _local.pop(_local_key(merchant_id), None)


def _get_many(keys: list[str]) -> dict[str, Any]:
    _guarded()
    try:
        return cache.get_many(keys)
    except Exception as error:  # any backend error: connection refused, timeout, protocol
        raise _failed(error) from error


def _set_many(values: dict[str, Any], timeout: int | None) -> None:
    _guarded()
    try:
        for chunk in _chunks(values, SET_MANY_CHUNK):
            cache.set_many(chunk, timeout=timeout)
    except Exception as error:
        raise _failed(error) from error


def _chunks(values: dict[str, Any], size: int) -> Iterator[dict[str, Any]]:
    chunk: dict[str, Any] = {}
    for key, value in values.items():
        chunk[key] = value
        if len(chunk) >= size:
            yield chunk
            chunk = {}
    if chunk:
        yield chunk


def active_key(merchant_id: int) -> str:
    return f"rec:{merchant_id}:active"


def config_key(merchant_id: int) -> str:
    # The rules are pickled dataclasses: a new format gets a new key rather than a stale shape.
    return f"rec:{merchant_id}:config:{CONFIG_FORMAT}"


def impressions_key(merchant_id: int, visitor: str) -> str:
    return f"rec:{merchant_id}:imp:{visitor}"


def version_key(merchant_id: int, number: int, suffix: str) -> str:
    return f"rec:{merchant_id}:{number}:{suffix}"


def _pairs(values: Iterable[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
    return [(int(product_id), float(score)) for product_id, score in list(values)[:limit]]


def precomputed_cache_entries(*, merchant_id: int, number: int, precomputed: Precomputed) -> dict[str, Any]:
    """Every key a version publishes except its global key, truncated to the serving limits."""
    entries: dict[str, Any] = {}
    for customer_id, candidates in precomputed.for_customer.items():
        if candidates:
            entries[version_key(merchant_id, number, f"c:{customer_id}")] = [
                (int(c.product_id), float(c.score), c.reason, None if c.because_of is None else int(c.because_of))
                for c in candidates[:CUSTOMER_LIST_LIMIT]
            ]
    product_ids = (
        set(precomputed.viewed_together)
        | set(precomputed.purchased_together)
        | set(precomputed.similar_content)
        | set(precomputed.bought_together)
    )
    for product_id in product_ids:
        lists = {
            "vt": _pairs(precomputed.viewed_together.get(product_id, ()), ITEM_LIST_LIMIT),
            "pt": _pairs(precomputed.purchased_together.get(product_id, ()), ITEM_LIST_LIMIT),
            "sc": _pairs(precomputed.similar_content.get(product_id, ()), ITEM_LIST_LIMIT),
            "bt": [
                (int(rule.product_id), float(rule.score))
                for rule in precomputed.bought_together.get(product_id, ())[:ITEM_LIST_LIMIT]
            ],
        }
        entries[version_key(merchant_id, number, f"i:{product_id}")] = {
            kind: pairs for kind, pairs in lists.items() if pairs
        }
    for category_id in set(precomputed.popular_by_category) | set(precomputed.trending_by_category):
        entries[version_key(merchant_id, number, f"cat:{category_id}")] = (
            _pairs(precomputed.popular_by_category.get(category_id, ()), CATEGORY_LIST_LIMIT),
            _pairs(precomputed.trending_by_category.get(category_id, ()), CATEGORY_LIST_LIMIT),
        )
    for product_id, vector in precomputed.item_vectors.items():
        entries[version_key(merchant_id, number, f"vec:{product_id}")] = array("f", vector).tobytes()
    return entries


def precomputed_global_entry(precomputed: Precomputed) -> dict[str, Any]:
    return {
        "popular": _pairs(precomputed.popular, GLOBAL_LIST_LIMIT),
        "trending": _pairs(precomputed.trending, GLOBAL_LIST_LIMIT),
        "new_arrivals": [int(product_id) for product_id in precomputed.new_arrivals[:NEW_ARRIVALS_LIMIT]],
    }


def publish_precomputed(*, version: RecommenderVersion, precomputed: Precomputed) -> None:
    """Write a version's lists to the cache and point the merchant's requests at it.

    Called when a version becomes active (and to re-warm it from its artifact after a miss). The
    pointer moves last, so no request reads a half-written version.
    """
    merchant_id, number = version.merchant_id, version.number
    local_state_forget(merchant_id=merchant_id)
    ttl = int(_setting("RECOMMENDATION_CACHE_TTL"))
    # Per-item keys outlive the global key by a day: the global key's miss re-warms them first.
    _set_many(precomputed_cache_entries(merchant_id=merchant_id, number=number, precomputed=precomputed), ttl + 86400)
    _set_many({version_key(merchant_id, number, "global"): precomputed_global_entry(precomputed)}, ttl)
    _set_many({active_key(merchant_id): (number, version.pk)}, int(_setting("RECOMMENDATION_POINTER_TTL")))
    local_state_forget(merchant_id=merchant_id)


def active_pointer_set(*, merchant_id: int, active: ActiveVersion | None) -> None:
    local_state_forget(merchant_id=merchant_id)
    value = NO_ACTIVE_VERSION if active is None else (active.number, active.version_id)
    # "Nothing is active" is re-checked sooner than a real pointer: a first training may land any minute.
    timeout = int(_setting("RECOMMENDATION_POINTER_TTL")) if active is not None else 30
    _set_many({active_key(merchant_id): value}, timeout)


def active_pointer_clear(*, merchant_id: int) -> None:
    local_state_forget(merchant_id=merchant_id)
    _guarded()
    try:
        cache.delete(active_key(merchant_id))
    except Exception as error:
        raise _failed(error) from error


@dataclass(frozen=True)
class ServingState:
    """The version-independent keys of one request, read in one round trip."""

    # (number, version pk); NO_ACTIVE_VERSION when none is active; None when the cache has no pointer.
    pointer: tuple[int, int | None] | None
    config: Any  # the selectors' ServingConfig, or None
    impressions: dict[int, list[float]]


def serving_state_get(*, merchant_id: int, visitor: str | None) -> ServingState:
    keys = [active_key(merchant_id), config_key(merchant_id)]
    if visitor:
        keys.append(impressions_key(merchant_id, visitor))
    found = _get_many(keys)
    return ServingState(
        pointer=found.get(keys[0]),
        config=found.get(keys[1]),
        impressions=found.get(keys[2], {}) if visitor else {},
    )


def version_lists_get(
    *,
    merchant_id: int,
    number: int,
    customer_id: int | None,
    product_ids: Iterable[int],
    category_ids: Iterable[int] = (),
    impressions_of: str | None = None,
) -> VersionLists | None:
    """One round trip for everything a request reads of a version (and the visitor's impressions, when
    `impressions_of` names the visitor); None when the version is not warm."""
    global_key = version_key(merchant_id, number, "global")
    customer_key = version_key(merchant_id, number, f"c:{customer_id}") if customer_id is not None else None
    item_keys = {version_key(merchant_id, number, f"i:{product_id}"): product_id for product_id in product_ids}
    category_keys = {
        version_key(merchant_id, number, f"cat:{category_id}"): category_id for category_id in category_ids
    }
    keys = [global_key, *item_keys, *category_keys]
    if customer_key:
        keys.append(customer_key)
    visitor_key = impressions_key(merchant_id, impressions_of) if impressions_of else None
    if visitor_key:
        keys.append(visitor_key)
    found = _get_many(keys)
    global_entry = found.get(global_key)
    if global_entry is None:
        return None
    return VersionLists(
        popular=global_entry["popular"],
        trending=global_entry["trending"],
        new_arrivals=global_entry["new_arrivals"],
        for_customer=found.get(customer_key, []) if customer_key else [],
        items={product_id: found[key] for key, product_id in item_keys.items() if key in found},
        categories={category_id: found[key] for key, category_id in category_keys.items() if key in found},
        impressions=found.get(visitor_key, {}) if visitor_key else {},
    )


def item_lists_get(
    *, merchant_id: int, number: int, product_ids: Iterable[int]
) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """Neighbour lists of more products of a version (the session's views, known after the first read)."""
    keys = {version_key(merchant_id, number, f"i:{product_id}"): product_id for product_id in product_ids}
    if not keys:
        return {}
    found = _get_many(list(keys))
    return {product_id: found[key] for key, product_id in keys.items() if key in found}


def impressions_get(*, merchant_id: int, visitor: str) -> dict[int, list[float]]:
    key = impressions_key(merchant_id, visitor)
    return _get_many([key]).get(key, {})


def item_vectors_get(*, merchant_id: int, number: int, product_ids: Iterable[int]) -> dict[int, list[float]]:
    keys = {version_key(merchant_id, number, f"vec:{product_id}"): product_id for product_id in product_ids}
    if not keys:
        return {}
    found = _get_many(list(keys))
    vectors = {}
    for key, raw in found.items():
        vector = array("f")
        vector.frombytes(raw)
        vectors[keys[key]] = vector.tolist()
    return vectors


def warm_lock_acquire(*, merchant_id: int, number: int) -> bool:
    _guarded()
    try:
        return bool(cache.add(version_key(merchant_id, number, "warming"), 1, timeout=WARM_LOCK_SECONDS))
    except Exception as error:
        raise _failed(error) from error


def warm_lock_release(*, merchant_id: int, number: int) -> None:
    _guarded()
    try:
        cache.delete(version_key(merchant_id, number, "warming"))
    except Exception as error:
        raise _failed(error) from error


def config_set(*, merchant_id: int, config: Any) -> None:
    _set_many({config_key(merchant_id): config}, int(_setting("RECOMMENDATION_CONFIG_TTL")))


def config_invalidate(*, merchant_id: int) -> None:
    local_state_forget(merchant_id=merchant_id)
    _guarded()
    try:
        cache.delete(config_key(merchant_id))
    except Exception as error:
        raise _failed(error) from error


def impressions_set(
    *, merchant_id: int, visitor: str, impressions: dict[int, list[float]], window_seconds: float
) -> None:
    # One SET: set_many of a single key costs a MULTI/EXEC pipeline on Redis, on every request.
    _guarded()
    try:
        cache.set(impressions_key(merchant_id, visitor), impressions, timeout=max(int(window_seconds), 60))
    except Exception as error:
        raise _failed(error) from error


def impressions_after_serving(
    *, impressions: dict[int, list[float]], shown: Iterable[int], now: float, window_seconds: float
) -> dict[int, list[float]]:
    """The visitor's impressions with this list added: old ones dropped, every part bounded."""
    horizon = now - window_seconds
    updated = {
        product_id: [moment for moment in moments if moment >= horizon][-IMPRESSIONS_PER_PRODUCT:]
        for product_id, moments in impressions.items()
    }
    for product_id in shown:
        updated.setdefault(product_id, []).append(now)
        del updated[product_id][:-IMPRESSIONS_PER_PRODUCT]
    updated = {product_id: moments for product_id, moments in updated.items() if moments}
    if len(updated) > IMPRESSION_PRODUCTS_LIMIT:
        newest = sorted(updated, key=lambda product_id: updated[product_id][-1], reverse=True)
        updated = {product_id: updated[product_id] for product_id in newest[:IMPRESSION_PRODUCTS_LIMIT]}
    return updated
