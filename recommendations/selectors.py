"""Reads of the recommendations app: the request path (`recommendations_for`, `search_rerank`) and the
merchant screen's figures (`placement_performance`).

A request costs a small, fixed number of queries whatever the catalog's size: the visitor, the
products in play, their order history, their recent views and clicks, one look at the candidates'
stock, and the served-list insert. Candidate lists come from the cache (see cache.py); when the cache
is down or nothing is published, a database popularity list takes their place (source "fallback").
"""

from __future__ import annotations

import logging
import time
import uuid
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from decimal import Decimal
from typing import NamedTuple

from django.db import connection
from django.db.models import (
    Case,
    Count,
    DecimalField,
    F,
    OuterRef,
    Subquery,
    Sum,
    TextField,
    UUIDField,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Lower, Replace, TruncDate
from django.utils import timezone

from catalog.models import Category, Product
from events.models import AnonymousIdentity, Customer, Event, Order, OrderLine, OrderStatus, Session
from experiments.models import Surface
from experiments.services.assignment import surface_assignment
from revopt.tenancy.models import Merchant

from . import cache
from .engine.blend import MAX_SESSION_VIEWS, BlendInput, blend, normalized, session_affinity
from .engine.precomputed import REASONS, Candidate, precomputed_from_bytes
from .models import (
    DEFAULT_FEEDBACK_WEIGHTS,
    FeedbackKind,
    Placement,
    PlacementItemRule,
    PlacementRule,
    RecommenderVersion,
    ServedRecommendation,
    ServedSource,
    VersionStatus,
)
from .rules import (
    MMR_POOL_FACTOR,
    PIN,
    ItemRule,
    PlacementPolicy,
    ProductFacts,
    RuleContext,
    apply_rules,
    descendants,
    impression_counts,
)
from .services.placements import served_recommendation_record

logger = logging.getLogger(__name__)

PRODUCT_VIEWED = "Product Viewed"
PRODUCT_CLICKED = "Product Clicked"
LIST_PLACEMENTS = (Placement.HOME, Placement.PDP, Placement.CART, Placement.POST_PURCHASE, Placement.EMAIL)
MAX_K = 100
MAX_REFERENCES = 100
MAX_CATEGORIES = 50
# Category lists fetched for a filtered request; a filter naming a huge subtree uses its first ones.
MAX_CATEGORY_LISTS = 30
SESSION_VIEWS = 20
# Candidates blended per request: enough for the rules to filter, few enough to check in one query.
POOL_MIN = 100
POOL_PER_ITEM = 8
POOL_MAX = 400
RECENT_EVENTS = 300
HISTORY_LINES = 500
FALLBACK_WINDOW_DAYS = 30
FALLBACK_LIST = 300
FALLBACK_MEMO_SECONDS = 60.0
RERANK_WEIGHTS = {"personal": 1.0, "session": 0.6, "popular": 0.3, "position": 0.2}
DEFAULT_POLICY = PlacementPolicy()
# Reasons whose `because_of` is a category id (the others name a product).
CATEGORY_REASONS = ("trending", "new_arrival")
FALLBACK_SENTENCES = {"trending": "Trending right now", "new_arrival": "Just arrived"}
# Variant configs of experiments on the recommendations surface: {"strategy": "popularity"} serves the
# non-personal mix; "hybrid" (or no experiment) the trained hybrid ranker.
STRATEGY_POPULARITY = "popularity"
STRATEGY_HYBRID = "hybrid"


class RecommendationRequestError(ValueError):
    """A request the caller must fix; `field` is the API parameter at fault."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class BecauseOf:
    kind: str  # "product" | "category"
    id: int
    reference: str  # a product's storefront id (external id, else SKU); a category's path
    title: str  # a product's title; a category's name


@dataclass(frozen=True)
class RecommendedItem:
    product_id: int
    reference: str  # the storefront's id: external id, else SKU
    sku: str
    title: str
    price: Decimal
    score: float
    reason: str
    explanation: str
    because_of: BecauseOf | None


@dataclass(frozen=True)
class ServedExperiment:
    """The experiment variant whose strategy shaped the list."""

    key: str
    variant: str


@dataclass(frozen=True)
class RecommendationResult:
    items: list[RecommendedItem]
    recommendation_id: uuid.UUID | None  # None when the list was not recorded (previews)
    placement: str
    source: str  # ServedSource: "model" | "non_personal" | "fallback"
    degraded: bool
    version: int | None
    customer_id: int | None = None
    experiment: ServedExperiment | None = None


@dataclass(frozen=True)
class RerankedItem:
    reference: str  # as the caller sent it
    product_id: int
    score: float


@dataclass(frozen=True)
class RerankResult:
    items: list[RerankedItem]
    unknown_product_ids: list[str]
    recommendation_id: uuid.UUID | None
    source: str
    degraded: bool
    version: int | None


# --- configuration: rules and the category tree ----------------------------------------------


@dataclass(frozen=True)
class ServingConfig:
    """A merchant's rules as serving reads them; cached for a minute, dropped when a rule is saved."""

    policies: dict[str, PlacementPolicy]
    item_rules: tuple[ItemRule, ...]
    categories: dict[int, tuple[int | None, str, str]]  # id → (parent id, name, path)
    # How long impressions are kept: the longest window of any placement.
    impression_window_days: int

    def policy(self, placement: str) -> PlacementPolicy:
        return self.policies.get(placement, DEFAULT_POLICY)

    def parents(self) -> dict[int, int | None]:
        return {category_id: parent for category_id, (parent, _, _) in self.categories.items()}


def _timestamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def serving_config_load(*, merchant_id: int) -> ServingConfig:
    """The rules from the database (five small queries)."""
    categories = {
        pk: (parent_id, name, path)
        for pk, parent_id, name, path in Category.objects.for_merchant(merchant_id).values_list(
            "pk", "parent_id", "name", "path"
        )
    }
    parents = {pk: parent for pk, (parent, _, _) in categories.items()}
    rules = list(PlacementRule.objects.for_merchant(merchant_id))
    repurchasable: dict[int, list[int]] = {}
    allowed: dict[int, list[int]] = {}
    for through, target in (
        (PlacementRule.repurchasable_categories.through, repurchasable),
        (PlacementRule.allowed_categories.through, allowed),
    ):
        for rule_id, category_id in through.objects.filter(placementrule__merchant_id=merchant_id).values_list(
            "placementrule_id", "category_id"
        ):
            target.setdefault(rule_id, []).append(category_id)
    policies = {
        rule.placement: PlacementPolicy(
            exclude_purchased=rule.exclude_purchased,
            repurchasable_categories=descendants(parents=parents, roots=repurchasable.get(rule.pk, ())),
            allowed_categories=descendants(parents=parents, roots=allowed.get(rule.pk, ())),
            max_per_category=rule.max_per_category,
            mmr_lambda=rule.mmr_lambda,
            impression_discount=rule.impression_discount,
            impression_window_days=rule.impression_window_days,
            default_k=rule.default_k,
        )
        for rule in rules
    }
    item_rules = tuple(
        ItemRule(
            product_id=rule.product_id,
            action=rule.action,
            placement=rule.placement,
            position=rule.position,
            boost=rule.boost,
            starts_at=_timestamp(rule.starts_at),
            ends_at=_timestamp(rule.ends_at),
        )
        for rule in PlacementItemRule.objects.for_merchant(merchant_id).only(
            "product_id", "action", "placement", "position", "boost", "starts_at", "ends_at"
        )
    )
    windows = [policy.impression_window_days for policy in policies.values()]
    return ServingConfig(
        policies=policies,
        item_rules=item_rules,
        categories=categories,
        impression_window_days=max([DEFAULT_POLICY.impression_window_days, *windows]),
    )


# --- the request's facts from the database ------------------------------------------------------


class _ProductRow(NamedTuple):  # a tuple: hundreds are built per request
    product_id: int
    reference: str
    sku: str
    title: str
    price: Decimal | float | int  # as the database driver returns it; see _money
    category_id: int | None
    is_active: bool
    inventory: int


# The request path reads with hand-written SQL: the ORM's query building cost more than the queries
# themselves here (a 100-id `pk__in` alone took a millisecond). Every statement is scoped by merchant_id;
# where a customer or session already narrows the rows, the scope is written `+x.merchant_id` so the
# planner drives the query from that narrow index rather than scanning the merchant's whole history.
_PRODUCT = Product._meta.db_table
_CUSTOMER = Customer._meta.db_table
_ALIAS = AnonymousIdentity._meta.db_table
_ORDER = Order._meta.db_table
_LINE = OrderLine._meta.db_table
_EVENT = Event._meta.db_table
_SESSION = Session._meta.db_table
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class _Visitor:
    customer_id: int
    opted_out: bool


def _rows(sql: str, params: Sequence[object]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _in(column: str, values: Sequence[object]) -> tuple[str, list[object]]:
    """`column IN (...)` for a list of values: one array parameter on PostgreSQL."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def _money(value: object) -> Decimal:
    # SQLite hands decimals back as int or float.
    return value if isinstance(value, Decimal) else Decimal(str(value)).quantize(CENTS)


def _moment(value: datetime | str) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:  # SQLite: stored in UTC without a zone
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _product_rows(merchant_id: int, product_ids: Iterable[int]) -> dict[int, _ProductRow]:
    ids = list(set(product_ids))
    if not ids:
        return {}
    condition, params = _in("id", ids)
    rows = _rows(
        f"SELECT id, external_id, sku, title, price, category_id, is_active, inventory FROM {_PRODUCT} "
        f"WHERE merchant_id = %s AND {condition}",
        [merchant_id, *params],
    )
    return {
        pk: _ProductRow(pk, external_id or sku, sku, title, price, category_id, bool(is_active), inventory)
        for pk, external_id, sku, title, price, category_id, is_active, inventory in rows
    }


def _resolve_references(merchant_id: int, references: Sequence[str]) -> dict[str, tuple[int, int | None]]:
    """Storefront reference → (product id, category id); the external id wins over the SKU.

    The same matching as catalog.selectors.products_by_reference, plus the category the pdp's
    fill needs, in the one query.
    """
    wanted = list({reference for reference in references if reference})
    if not wanted:
        return {}
    by_external, external_params = _in("external_id", wanted)
    by_sku_condition, sku_params = _in("sku", wanted)
    # Two halves rather than an OR, so each uses its (merchant, external id) / (merchant, sku) index.
    columns = f"SELECT id, sku, external_id, category_id FROM {_PRODUCT} WHERE merchant_id = %s"
    rows = _rows(
        f"{columns} AND {by_external} UNION {columns} AND {by_sku_condition} ORDER BY id",
        [merchant_id, *external_params, merchant_id, *sku_params],
    )
    by_external_id: dict[str, tuple[int, int | None]] = {}
    by_sku: dict[str, tuple[int, int | None]] = {}
    for pk, sku, external_id, category_id in rows:
        if external_id:
            by_external_id.setdefault(external_id, (pk, category_id))
        by_sku[sku] = (pk, category_id)
    found = {}
    for reference in wanted:
        match = by_external_id.get(reference) or by_sku.get(reference)
        if match is not None:
            found[reference] = match
    return found


def _visitor(merchant_id: int, customer_external_id: str | None, anonymous_id: str | None) -> _Visitor | None:
    """The customer behind the ids (the shop's user id first), following merges."""
    row = None
    if customer_external_id:
        found = _rows(
            f"SELECT id, personalization_opt_out, merged_into_id FROM {_CUSTOMER} "
            "WHERE merchant_id = %s AND external_id = %s",
            [merchant_id, customer_external_id],
        )
        row = found[0] if found else None
    if row is None and anonymous_id:
        found = _rows(
            f"SELECT c.id, c.personalization_opt_out, c.merged_into_id FROM {_ALIAS} a "
            f"JOIN {_CUSTOMER} c ON c.id = a.customer_id WHERE a.merchant_id = %s AND a.anonymous_id = %s",
            [merchant_id, anonymous_id],
        )
        row = found[0] if found else None
    hops = 0
    while row is not None and row[2] is not None and hops < 5:
        found = _rows(
            f"SELECT id, personalization_opt_out, merged_into_id FROM {_CUSTOMER} WHERE merchant_id = %s AND id = %s",
            [merchant_id, row[2]],
        )
        row = found[0] if found else None
        hops += 1
    return None if row is None else _Visitor(customer_id=row[0], opted_out=bool(row[1]))


def _visitor_and_purchases(
    merchant_id: int, customer_external_id: str | None, anonymous_id: str | None
) -> tuple[_Visitor | None, frozenset[int], list[int]]:
    """`_visitor` and, for a personal visitor, `_purchases`, in one round trip for the common case (the
    customer found directly, not merged away); merged customers take the two-step path."""
    if not customer_external_id and not anonymous_id:
        return None, frozenset(), []
    lookups, params = [], []
    if customer_external_id:
        lookups.append(f"(SELECT id FROM {_CUSTOMER} WHERE merchant_id = %s AND external_id = %s)")
        params += [merchant_id, customer_external_id]
    if anonymous_id:
        lookups.append(f"(SELECT customer_id FROM {_ALIAS} WHERE merchant_id = %s AND anonymous_id = %s)")
        params += [merchant_id, anonymous_id]
    who = lookups[0] if len(lookups) == 1 else f"COALESCE({', '.join(lookups)})"
    rows = _rows(
        f"SELECT 0, id, CASE WHEN personalization_opt_out THEN 1 ELSE 0 END, merged_into_id, 0 FROM {_CUSTOMER} "
        f"WHERE merchant_id = %s AND id = {who} "
        "UNION ALL SELECT * FROM ("
        "SELECT 1, l.product_id, l.order_id, 0, ROW_NUMBER() OVER (ORDER BY o.placed_at DESC, o.id DESC) "
        f"FROM {_ORDER} o JOIN {_LINE} l ON l.order_id = o.id WHERE o.customer_id = {who} "
        "AND +o.merchant_id = %s AND +l.merchant_id = %s AND o.status <> %s AND l.product_id IS NOT NULL "
        f"ORDER BY o.placed_at DESC, o.id DESC LIMIT {HISTORY_LINES}) AS history",
        [merchant_id, *params, *params, merchant_id, merchant_id, OrderStatus.CANCELLED.value],
    )
    customer = next((row for row in rows if row[0] == 0), None)
    if customer is None:
        return None, frozenset(), []
    if customer[3] is not None:  # merged into another customer: follow the chain, then read their orders
        visitor = _visitor(merchant_id, customer_external_id, anonymous_id)
        if visitor is None or visitor.opted_out:
            return visitor, frozenset(), []
        return visitor, *_purchases(merchant_id, visitor.customer_id)
    visitor = _Visitor(customer_id=customer[1], opted_out=bool(customer[2]))
    if visitor.opted_out:
        return visitor, frozenset(), []
    lines = sorted((row for row in rows if row[0] == 1), key=lambda row: row[4])
    return visitor, *_history(lines)


def _history(lines: Sequence[tuple]) -> tuple[frozenset[int], list[int]]:
    """(products bought, the latest order's items) from order lines, newest first: (.., product, order, ..)."""
    if not lines:
        return frozenset(), []
    last_order = lines[0][2]
    last_items = list(dict.fromkeys(line[1] for line in lines if line[2] == last_order))
    return frozenset(line[1] for line in lines), last_items


def _purchases(merchant_id: int, customer_id: int) -> tuple[frozenset[int], list[int]]:
    """Products the customer bought (cancelled orders aside), and the items of their latest order."""
    rows = _rows(
        f"SELECT l.product_id, l.order_id FROM {_ORDER} o JOIN {_LINE} l ON l.order_id = o.id "
        "WHERE o.customer_id = %s AND +o.merchant_id = %s AND +l.merchant_id = %s AND o.status <> %s "
        f"AND l.product_id IS NOT NULL ORDER BY o.placed_at DESC, o.id DESC LIMIT {HISTORY_LINES}",
        [customer_id, merchant_id, merchant_id, OrderStatus.CANCELLED.value],
    )
    if not rows:
        return frozenset(), []
    last_order = rows[0][1]
    last_items = list(dict.fromkeys(product_id for product_id, order_id in rows if order_id == last_order))
    return frozenset(product_id for product_id, _ in rows), last_items


def _recent_engagement(
    *,
    merchant_id: int,
    customer_id: int | None,
    session_id: str | None,
    impressed: Sequence[int],
    since: datetime,
) -> tuple[list[int], dict[int, float]]:
    """This session's viewed products (newest first) and when the visitor last clicked or viewed each
    impressed product: one bounded query over the session's events and the visitor's recent ones."""
    conditions: list[str] = []
    params: list[object] = [merchant_id, PRODUCT_VIEWED, PRODUCT_CLICKED]
    if session_id:
        # `=`, not `IN`: the (merchant, external id) pair is unique, and with `IN` PostgreSQL planned a scan
        # of every event of the merchant (13 ms at 37k events) instead of one index probe (0.2 ms).
        conditions.append(f"e.session_id = (SELECT id FROM {_SESSION} WHERE merchant_id = %s AND external_id = %s)")
        params += [merchant_id, session_id]
    if customer_id is not None and impressed:
        products, product_params = _in("e.product_id", list(impressed))
        conditions.append(f"(e.customer_id = %s AND e.timestamp >= %s AND {products})")
        params += [customer_id, connection.ops.adapt_datetimefield_value(since), *product_params]
    if not conditions:
        return [], {}
    rows = _rows(
        f"SELECT e.product_id, e.name, e.timestamp, s.external_id FROM {_EVENT} e "
        f"LEFT JOIN {_SESSION} s ON s.id = e.session_id "
        "WHERE +e.merchant_id = %s AND e.name IN (%s, %s) AND e.product_id IS NOT NULL "
        f"AND ({' OR '.join(conditions)}) ORDER BY e.timestamp DESC LIMIT {RECENT_EVENTS}",
        params,
    )
    views: dict[int, None] = {}
    engaged: dict[int, float] = {}
    for product_id, name, moment, session_external_id in rows:
        engaged.setdefault(product_id, _moment(moment))
        if name == PRODUCT_VIEWED and session_id and session_external_id == session_id and len(views) < SESSION_VIEWS:
            views.setdefault(product_id, None)
    return list(views), engaged


# --- the database fallback ---------------------------------------------------------------------

_fallback_memo: dict[tuple[int, frozenset[int] | None, int], tuple[float, list[tuple[int, float]]]] = {}


def fallback_popularity_forget() -> None:
    _fallback_memo.clear()


def fallback_popularity(
    *, merchant_id: int, category_ids: frozenset[int] | None = None, now: datetime | None = None
) -> list[tuple[int, float]]:
    """Active, in-stock products by purchases and views of the 30 days before `now`, in one aggregate query.

    Used while the cache is down or before the first training; kept a minute in this process so a
    dead Redis does not turn every request into an aggregate over the events.
    """
    until = now or timezone.now()
    since = until - timedelta(days=FALLBACK_WINDOW_DAYS)
    # The hour of `now` is part of the key: a request `at` another moment gets its own answer, while the
    # many requests of one simulated (or replayed) hour share one aggregate.
    key = (merchant_id, category_ids, int(until.timestamp() // 3600))
    memo = _fallback_memo.get(key)
    if memo is not None and memo[0] > time.monotonic():
        return memo[1]
    # Grouped sub-aggregates joined to the products: one pass over the window's events and lines
    # (a correlated subquery per product re-read the window once per product).
    window = [connection.ops.adapt_datetimefield_value(moment) for moment in (since, until)]
    category_filter, category_params = ("", [])
    if category_ids is not None:
        category_filter, category_params = _in("p.category_id", sorted(category_ids))
        category_filter = f" AND {category_filter}"
    purchase_weight = DEFAULT_FEEDBACK_WEIGHTS[FeedbackKind.PURCHASE]
    view_weight = DEFAULT_FEEDBACK_WEIGHTS[FeedbackKind.VIEW]
    rows = _rows(
        "SELECT p.id, COALESCE(b.quantity, 0) * %s + COALESCE(v.views, 0) * %s AS popularity "
        f"FROM {_PRODUCT} p "
        "LEFT JOIN (SELECT l.product_id, SUM(l.quantity) AS quantity "
        f"FROM {_LINE} l JOIN {_ORDER} o ON o.id = l.order_id "
        "WHERE l.merchant_id = %s AND o.placed_at >= %s AND o.placed_at < %s AND o.status <> %s "
        "AND l.product_id IS NOT NULL GROUP BY l.product_id) b ON b.product_id = p.id "
        "LEFT JOIN (SELECT e.product_id, COUNT(*) AS views "
        f"FROM {_EVENT} e WHERE e.merchant_id = %s AND e.name = %s AND e.timestamp >= %s AND e.timestamp < %s "
        "AND e.product_id IS NOT NULL GROUP BY e.product_id) v ON v.product_id = p.id "
        f"WHERE p.merchant_id = %s AND p.is_active AND p.inventory > 0{category_filter} "
        "AND (b.quantity IS NOT NULL OR v.views IS NOT NULL) "
        f"ORDER BY popularity DESC, p.id LIMIT {FALLBACK_LIST}",
        [
            purchase_weight,
            view_weight,
            merchant_id,
            *window,
            OrderStatus.CANCELLED,
            merchant_id,
            PRODUCT_VIEWED,
            *window,
            merchant_id,
            *category_params,
        ],
    )
    ranked = [(pk, float(popularity)) for pk, popularity in rows]
    if not ranked:
        # Nothing sold or viewed yet: not remembered, so the first sales show up at once.
        return ranked
    if len(_fallback_memo) > 1000:
        _fallback_memo.clear()
    _fallback_memo[key] = (time.monotonic() + FALLBACK_MEMO_SECONDS, ranked)
    return ranked


# --- the active version -------------------------------------------------------------------------


def _active_version(
    merchant_id: int, pointer: tuple[int, int | None] | None, *, cache_ok: bool
) -> tuple[int, int] | None:
    """(number, pk) of the active version, trusting the cached pointer; None when none is active."""
    if pointer is not None:
        return _version_of(pointer)
    row = (
        RecommenderVersion.objects.for_merchant(merchant_id)
        .filter(status=VersionStatus.ACTIVE)
        .values_list("number", "pk")
        .first()
    )
    if cache_ok:
        try:
            cache.active_pointer_set(
                merchant_id=merchant_id, active=None if row is None else cache.ActiveVersion(row[0], row[1])
            )
        except cache.CacheUnavailable:
            pass
    return row


def _warm(merchant_id: int, number: int, version_id: int) -> bool:
    """Publish the active version from its artifact after a cache miss; one process at a time."""
    if not cache.warm_lock_acquire(merchant_id=merchant_id, number=number):
        return False
    try:
        version = (
            RecommenderVersion.objects.for_merchant(merchant_id)
            .filter(pk=version_id, status=VersionStatus.ACTIVE)
            .only("pk", "number", "merchant_id", "artifact")
            .first()
        )
        if version is None or not version.artifact:
            cache.active_pointer_clear(merchant_id=merchant_id)
            return False
        try:
            precomputed = precomputed_from_bytes(version.artifact)
        except Exception:  # a corrupt artifact must not fail requests; the fallback answers
            logger.exception("recommender version %s has an unreadable artifact", version_id)
            return False
        cache.publish_precomputed(version=version, precomputed=precomputed)
        return True
    finally:
        cache.warm_lock_release(merchant_id=merchant_id, number=number)


# --- the request path ---------------------------------------------------------------------------


def _aware(at: datetime | None) -> datetime:
    if at is None:
        return timezone.now()
    return at if timezone.is_aware(at) else at.replace(tzinfo=UTC)


def _visitor_key(customer_external_id: str | None, anonymous_id: str | None, session_id: str | None) -> str | None:
    """Whom impressions are counted for; known before any query, so the cache is read in one trip."""
    if customer_external_id:
        return f"u:{customer_external_id}"
    if anonymous_id:
        return f"a:{anonymous_id}"
    if session_id:
        return f"s:{session_id}"
    return None


def _check_references(field: str, references: Sequence[str]) -> list[str]:
    cleaned = [reference.strip() for reference in references if reference and reference.strip()]
    if len(cleaned) > MAX_REFERENCES:
        raise RecommendationRequestError(field, f"At most {MAX_REFERENCES} products.")
    return list(dict.fromkeys(cleaned))


def _validated(
    placement: str,
    k: int | None,
    product_ids: Sequence[str],
    cart_product_ids: Sequence[str],
    category_ids: Sequence[int],
) -> tuple[list[str], list[str]]:
    if placement not in LIST_PLACEMENTS:
        raise RecommendationRequestError("placement", f"Must be one of: {', '.join(LIST_PLACEMENTS)}.")
    if k is not None and not 1 <= k <= MAX_K:
        raise RecommendationRequestError("k", f"Must be between 1 and {MAX_K}.")
    product_refs = _check_references("product_id", product_ids)
    cart_refs = _check_references("cart", cart_product_ids)
    if placement == Placement.PDP and not product_refs:
        raise RecommendationRequestError("product_id", "The pdp placement needs the product being viewed.")
    if placement == Placement.CART and not cart_refs:
        raise RecommendationRequestError("cart", "The cart placement needs the cart's products.")
    if len(category_ids) > MAX_CATEGORIES:
        raise RecommendationRequestError("category", f"At most {MAX_CATEGORIES} categories.")
    return product_refs, cart_refs


@dataclass(frozen=True)
class _ServingView:
    """What a request knows before its own reads: whether the cache answers, the active version, the rules."""

    cache_ok: bool
    version: tuple[int, int] | None  # (number, pk) of the active version; None: none active or cache down
    config: ServingConfig
    # The visitor's impressions when the cache was read for the pointer; None when this process's copy
    # of the pointer answered, and the impressions come with the version's lists instead.
    impressions: dict[int, list[float]] | None


def _serving_state(merchant_id: int, visitor_key: str | None) -> _ServingView:
    """The active version and the rules: from this process's copy (no I/O) while it is fresh, else in one
    cache round trip (with the visitor's impressions); the rules from the database when not cached."""
    local = cache.local_state_get(merchant_id=merchant_id)
    if local is not None and isinstance(local[1], ServingConfig):
        pointer, config = local
        return _ServingView(True, _version_of(pointer), config, None)
    try:
        state = cache.serving_state_get(merchant_id=merchant_id, visitor=visitor_key)
    except cache.CacheUnavailable:
        return _ServingView(False, None, serving_config_load(merchant_id=merchant_id), {})
    if isinstance(state.config, ServingConfig):
        config = state.config
    else:
        config = serving_config_load(merchant_id=merchant_id)
        try:
            cache.config_set(merchant_id=merchant_id, config=config)
        except cache.CacheUnavailable:
            return _ServingView(False, None, config, {})
    version = _active_version(merchant_id, state.pointer, cache_ok=True)
    cache.local_state_set(
        merchant_id=merchant_id, pointer=cache.NO_ACTIVE_VERSION if version is None else version, config=config
    )
    return _ServingView(True, version, config, state.impressions)


def _version_of(pointer: tuple[int, int | None]) -> tuple[int, int] | None:
    number, version_id = pointer
    return None if not number or version_id is None else (number, version_id)


def _requested_categories(config: ServingConfig, category_ids: Sequence[int]) -> frozenset[int] | None:
    if not category_ids:
        return None
    unknown = sorted({int(category_id) for category_id in category_ids} - set(config.categories))
    if unknown:
        raise RecommendationRequestError("category", f"Unknown category id(s): {', '.join(map(str, unknown))}.")
    return descendants(parents=config.parents(), roots=category_ids)


def _referenced(references: dict[str, tuple[int, int | None]], field: str, refs: Sequence[str]) -> list[int]:
    unknown = [reference for reference in refs if reference not in references]
    if unknown:
        raise RecommendationRequestError(field, f"Unknown product(s): {', '.join(unknown[:10])}.")
    return [references[reference][0] for reference in refs]


def _list_categories(
    *, placement: str, requested: frozenset[int] | None, policy: PlacementPolicy, pdp_category: int | None
) -> list[int]:
    """Categories whose popular and trending lists join the candidates (a filtered request, or the
    pdp product's own category for the fill)."""
    if requested is not None:
        chosen = requested & policy.allowed_categories if policy.allowed_categories else requested
    elif policy.allowed_categories:
        chosen = policy.allowed_categories
    elif placement == Placement.PDP and pdp_category is not None:
        chosen = frozenset({pdp_category})
    else:
        chosen = frozenset()
    return sorted(chosen)[:MAX_CATEGORY_LISTS]


def _explanation(reason: str, because_of: BecauseOf | None) -> str:
    template = REASONS.get(reason, REASONS["popular"])
    if "{product}" in template:
        if because_of is None or because_of.kind != "product":
            return REASONS["for_you"]
        return template.format(product=because_of.title)
    if "{category}" in template:
        if because_of is None or because_of.kind != "category":
            return FALLBACK_SENTENCES.get(reason, REASONS["popular"])
        return template.format(category=because_of.title)
    return template


def _because_of(
    candidate: Candidate, rows: dict[int, _ProductRow], categories: dict[int, tuple[int | None, str, str]]
) -> BecauseOf | None:
    if candidate.reason in CATEGORY_REASONS:
        category_id = candidate.because_of
        if category_id is None:
            row = rows.get(candidate.product_id)
            category_id = row.category_id if row else None
        if category_id is None or category_id not in categories:
            return None
        _, name, path = categories[category_id]
        return BecauseOf("category", category_id, path, name)
    if candidate.because_of is None or candidate.reason in ("popular", "for_you", "pinned"):
        return None
    row = rows.get(candidate.because_of)
    if row is None:
        return None
    return BecauseOf("product", row.product_id, row.reference, row.title)


def _recommended_item(
    candidate: Candidate, rows: dict[int, _ProductRow], categories: dict[int, tuple[int | None, str, str]]
) -> RecommendedItem:
    row = rows[candidate.product_id]
    because = _because_of(candidate, rows, categories)
    return RecommendedItem(
        product_id=row.product_id,
        reference=row.reference,
        sku=row.sku,
        title=row.title,
        price=_money(row.price),
        score=round(candidate.score, 6),
        reason=candidate.reason,
        explanation=_explanation(candidate.reason, because),
        because_of=because,
    )


@dataclass(frozen=True)
class _Sources:
    blend_input: BlendInput
    source: str
    version: tuple[int, int] | None  # (number, pk) of the version served; None from the fallback


def _sources(
    *,
    merchant_id: int,
    placement: str,
    lists: cache.VersionLists | None,
    version: tuple[int, int] | None,
    personal: bool,
    in_play: list[int],
    session_views: list[int],
    list_categories: list[int],
    fallback_categories: frozenset[int] | None,
    now: datetime,
    pool: int,
) -> _Sources:
    """The published version's lists, or the database's popularity when there is nothing to read."""
    if lists is None:
        popular = fallback_popularity(merchant_id=merchant_id, category_ids=fallback_categories, now=now)
        return _Sources(
            BlendInput(placement=placement, personal=False, context_products=in_play, popular=popular, limit=pool),
            ServedSource.FALLBACK,
            None,
        )
    blend_input = BlendInput(
        placement=placement,
        personal=personal,
        for_customer=lists.for_customer,
        context_products=in_play,
        session_views=session_views,
        item_lists=lists.items,
        popular=lists.popular,
        trending=lists.trending,
        new_arrivals=lists.new_arrivals,
        category_lists={c: lists.categories[c] for c in list_categories if c in lists.categories},
        limit=pool,
    )
    return _Sources(blend_input, ServedSource.MODEL if personal else ServedSource.NON_PERSONAL, version)


def _lists_read(
    merchant_id: int,
    view: _ServingView,
    *,
    customer_id: int | None,
    product_ids: list[int],
    category_ids: list[int],
    impressions_of: str | None = None,
) -> cache.VersionLists | None:
    """The active version's lists for this request (warming the version on a miss); None: fall back."""
    if not view.cache_ok or view.version is None:
        return None
    try:
        return _version_lists(
            merchant_id,
            view.version,
            customer_id=customer_id,
            product_ids=product_ids,
            category_ids=category_ids,
            impressions_of=impressions_of,
        )
    except cache.CacheUnavailable:
        return None


def _version_lists(
    merchant_id: int,
    version: tuple[int, int],
    *,
    customer_id: int | None,
    product_ids: list[int],
    category_ids: list[int],
    impressions_of: str | None = None,
) -> cache.VersionLists | None:
    number, version_id = version
    arguments = {
        "merchant_id": merchant_id,
        "number": number,
        "customer_id": customer_id,
        "product_ids": product_ids,
        "category_ids": category_ids,
        "impressions_of": impressions_of,
    }
    lists = cache.version_lists_get(**arguments)
    if lists is None and _warm(merchant_id, number, version_id):
        lists = cache.version_lists_get(**arguments)
    return lists


def _vectors(
    merchant_id: int,
    version: tuple[int, int] | None,
    policy: PlacementPolicy,
    candidates: Sequence[Candidate],
    facts: dict[int, ProductFacts],
    k: int,
) -> dict[int, list[float]]:
    if version is None or policy.mmr_lambda is None or policy.mmr_lambda >= 1.0:
        return {}
    servable = [c.product_id for c in candidates if c.product_id in facts and facts[c.product_id].in_stock][
        : MMR_POOL_FACTOR * k
    ]
    try:
        return cache.item_vectors_get(merchant_id=merchant_id, number=version[0], product_ids=servable)
    except cache.CacheUnavailable:
        return {}


def _remember_impressions(
    merchant_id: int, visitor_key: str, stored: dict[int, list[float]], shown: list[int], now_ts: float, days: int
) -> None:
    window_seconds = days * 86400.0
    updated = cache.impressions_after_serving(
        impressions=stored, shown=shown, now=now_ts, window_seconds=window_seconds
    )
    try:
        cache.impressions_set(
            merchant_id=merchant_id, visitor=visitor_key, impressions=updated, window_seconds=window_seconds
        )
    except cache.CacheUnavailable:
        pass


def _stored_impressions(
    merchant_id: int, view: _ServingView, lists: cache.VersionLists | None, visitor_key: str | None
) -> dict[int, list[float]]:
    """The visitor's impressions: read with the pointer, or with the lists, or (no version) on their own."""
    if view.impressions is not None:
        return view.impressions
    if lists is not None:
        return lists.impressions
    if not view.cache_ok or not visitor_key:
        return {}
    try:
        return cache.impressions_get(merchant_id=merchant_id, visitor=visitor_key)
    except cache.CacheUnavailable:
        return {}


def _more_item_lists(
    merchant_id: int, view: _ServingView, lists: cache.VersionLists | None, product_ids: list[int]
) -> None:
    """Add the neighbour lists of products known only after the first read (a known visitor's session)."""
    if lists is None or view.version is None or not product_ids:
        return
    try:
        more = cache.item_lists_get(merchant_id=merchant_id, number=view.version[0], product_ids=product_ids)
    except cache.CacheUnavailable:
        return
    lists.items.update(more)


def _record_served(
    merchant: Merchant,
    placement: str,
    product_ids: list[int],
    sources: _Sources,
    now: datetime,
    visitor: _Visitor | None,
    anonymous_id: str | None,
    session_id: str | None,
) -> uuid.UUID:
    return served_recommendation_record(
        merchant=merchant,
        placement=placement,
        product_ids=product_ids,
        source=sources.source,
        created_at=now,
        customer_id=visitor.customer_id if visitor is not None else None,
        anonymous_id=anonymous_id or "",
        session_external_id=session_id or "",
        version_id=sources.version[1] if sources.version else None,
    ).id


def recommendations_for(
    *,
    merchant: Merchant,
    placement: str,
    customer_external_id: str | None = None,
    anonymous_id: str | None = None,
    session_id: str | None = None,
    product_ids: Sequence[str] = (),
    cart_product_ids: Sequence[str] = (),
    category_ids: Sequence[int] = (),
    k: int | None = None,
    device: str | None = None,
    at: datetime | None = None,
    record: bool = True,
) -> RecommendationResult:
    """The list a placement shows this visitor now, after every business rule, recorded for attribution.

    Raises RecommendationRequestError (naming the API field at fault) for requests the caller must
    fix. `device` is context for experiment targeting; no list depends on it.
    """
    product_refs, cart_refs = _validated(placement, k, product_ids, cart_product_ids, category_ids)
    merchant_id = merchant.pk
    now = _aware(at)
    now_ts = now.timestamp()
    visitor_key = _visitor_key(customer_external_id, anonymous_id, session_id)
    view = _serving_state(merchant_id, visitor_key)
    config = view.config
    policy = config.policy(placement)
    requested = _requested_categories(config, category_ids)
    references = _resolve_references(merchant_id, [*product_refs, *cart_refs])
    context_ids = _referenced(references, "product_id", product_refs)
    cart_ids = _referenced(references, "cart", cart_refs)

    # An experiment on the recommendations surface may serve this visitor the non-personal mix: the path
    # opted-out customers take. Free while none is live (the assignment memo answers).
    assignment = surface_assignment(
        merchant=merchant,
        surface=Surface.RECOMMENDATIONS,
        customer_external_id=customer_external_id,
        anonymous_id=anonymous_id,
        device=device,
        at=now,
        record=record,
    )
    experiment = None
    popularity_only = False
    if assignment is not None and assignment.variant_key is not None:
        experiment = ServedExperiment(assignment.experiment_key, assignment.variant_key)
        popularity_only = assignment.config.get("strategy") == STRATEGY_POPULARITY
    visitor, purchased, last_order = _visitor_and_purchases(merchant_id, customer_external_id, anonymous_id)
    personal = (visitor is None or not visitor.opted_out) and not popularity_only
    if not personal:
        purchased, last_order = frozenset(), []
    in_play = {
        Placement.PDP: context_ids[:1],
        Placement.CART: cart_ids,
        Placement.POST_PURCHASE: last_order or [*context_ids, *cart_ids],
    }.get(placement, [])
    since = now - timedelta(days=policy.impression_window_days)
    session_views: list[int] = []
    engaged: dict[int, float] = {}
    # An unknown visitor's engagement is this session's events alone: read before the cache, so the
    # session's neighbour lists come in the same round trip as everything else.
    engagement_first = personal and bool(session_id) and visitor is None
    if engagement_first:
        session_views, engaged = _recent_engagement(
            merchant_id=merchant_id, customer_id=None, session_id=session_id, impressed=(), since=since
        )
    fetched = [*in_play, *session_views[:MAX_SESSION_VIEWS]]
    list_categories = _list_categories(
        placement=placement,
        requested=requested,
        policy=policy,
        pdp_category=references[product_refs[0]][1] if placement == Placement.PDP else None,
    )
    lists = _lists_read(
        merchant_id,
        view,
        customer_id=visitor.customer_id if visitor is not None and personal else None,
        product_ids=fetched,
        category_ids=list_categories,
        impressions_of=visitor_key if personal and view.impressions is None else None,
    )
    stored_impressions = _stored_impressions(merchant_id, view, lists, visitor_key) if personal else {}
    if not engagement_first and personal and (session_id or (visitor is not None and stored_impressions)):
        session_views, engaged = _recent_engagement(
            merchant_id=merchant_id,
            customer_id=visitor.customer_id if visitor is not None else None,
            session_id=session_id,
            impressed=list(stored_impressions),
            since=since,
        )
        _more_item_lists(merchant_id, view, lists, [p for p in session_views[:MAX_SESSION_VIEWS] if p not in fetched])

    k = k or policy.default_k
    fallback_categories = requested
    if policy.allowed_categories:
        fallback_categories = (requested or policy.allowed_categories) & policy.allowed_categories
    sources = _sources(
        merchant_id=merchant_id,
        placement=placement,
        lists=lists,
        version=view.version if lists is not None else None,
        personal=personal,
        in_play=in_play,
        session_views=session_views,
        list_categories=list_categories,
        fallback_categories=fallback_categories,
        now=now,
        pool=min(max(POOL_MIN, POOL_PER_ITEM * k), POOL_MAX),
    )
    candidates = blend(sources.blend_input)

    item_rules = tuple(rule for rule in config.item_rules if rule.applies(placement=placement, now=now_ts))
    pinned = [rule.product_id for rule in item_rules if rule.action == PIN]
    explaining = [c.because_of for c in candidates if c.because_of is not None and c.reason not in CATEGORY_REASONS]
    rows = _product_rows(merchant_id, [*(c.product_id for c in candidates), *pinned, *explaining])
    facts = {pk: ProductFacts(pk, row.category_id, row.is_active, row.inventory > 0) for pk, row in rows.items()}
    final = apply_rules(
        candidates,
        RuleContext(
            placement=placement,
            policy=policy,
            facts=facts,
            now=now_ts,
            k=k,
            item_rules=item_rules,
            purchased=purchased,
            excluded=frozenset(in_play),
            requested_categories=requested,
            impressions=impression_counts(
                impressions=stored_impressions,
                engaged=engaged,
                now=now_ts,
                window_seconds=policy.impression_window_days * 86400.0,
            ),
            vectors=_vectors(merchant_id, sources.version, policy, candidates, facts, k),
        ),
    )
    items = [_recommended_item(candidate, rows, config.categories) for candidate in final]

    recommendation_id = None
    if record:
        recommendation_id = _record_served(
            merchant, placement, [item.product_id for item in items], sources, now, visitor, anonymous_id, session_id
        )
        if visitor_key and personal and view.cache_ok and items:
            shown = [item.product_id for item in items]
            _remember_impressions(
                merchant_id, visitor_key, stored_impressions, shown, now_ts, config.impression_window_days
            )
    return RecommendationResult(
        items=items,
        recommendation_id=recommendation_id,
        placement=placement,
        source=sources.source,
        degraded=sources.source == ServedSource.FALLBACK,
        version=sources.version[0] if sources.version else None,
        customer_id=visitor.customer_id if visitor is not None else None,
        experiment=experiment,
    )


# --- search re-rank -----------------------------------------------------------------------------


def search_rerank(
    *,
    merchant: Merchant,
    product_ids: Sequence[str],
    customer_external_id: str | None = None,
    anonymous_id: str | None = None,
    session_id: str | None = None,
    at: datetime | None = None,
    record: bool = True,
) -> RerankResult:
    """The caller's products in this customer's order: personal score, session affinity, popularity,
    and a little of the order they came in. Unknown ids are reported, never silently dropped."""
    references = _check_references("product_ids", product_ids)
    if not references:
        raise RecommendationRequestError("product_ids", "Send at least one product id.")
    merchant_id = merchant.pk
    now = _aware(at)
    resolved = _resolve_references(merchant_id, references)
    known = [reference for reference in references if reference in resolved]
    unknown = [reference for reference in references if reference not in resolved]
    visitor = _visitor(merchant_id, customer_external_id, anonymous_id)
    personal = visitor is None or not visitor.opted_out
    session_views: list[int] = []
    if personal and session_id:
        session_views, _ = _recent_engagement(
            merchant_id=merchant_id, customer_id=None, session_id=session_id, impressed=(), since=now
        )
    view = _serving_state(merchant_id, None)
    lists = _lists_read(
        merchant_id,
        view,
        customer_id=visitor.customer_id if visitor is not None and personal else None,
        product_ids=session_views[:MAX_SESSION_VIEWS],
        category_ids=[],
    )
    sources = _sources(
        merchant_id=merchant_id,
        placement=Placement.HOME,
        lists=lists,
        version=view.version if lists is not None else None,
        personal=personal,
        in_play=[],
        session_views=session_views,
        list_categories=[],
        fallback_categories=None,
        now=now,
        pool=POOL_MAX,
    )
    lists = sources.blend_input
    personal_scores = dict(normalized([(c[0], c[1]) for c in lists.for_customer])) if lists.personal else {}
    affinity = session_affinity(lists) if lists.personal else {}
    popularity = dict(normalized(lists.popular))
    count = len(known)
    scored = []
    for position, reference in enumerate(known):
        product_id = resolved[reference][0]
        score = (
            RERANK_WEIGHTS["personal"] * personal_scores.get(product_id, 0.0)
            + RERANK_WEIGHTS["session"] * affinity.get(product_id, (0.0, 0))[0]
            + RERANK_WEIGHTS["popular"] * popularity.get(product_id, 0.0)
            + RERANK_WEIGHTS["position"] * (1.0 - position / count)
        )
        scored.append(RerankedItem(reference, product_id, round(score, 6)))
    scored.sort(key=lambda item: item.score, reverse=True)

    recommendation_id = None
    if record and scored:
        shown = [item.product_id for item in scored]
        recommendation_id = _record_served(
            merchant, Placement.SEARCH, shown, sources, now, visitor, anonymous_id, session_id
        )
    return RerankResult(
        items=scored,
        unknown_product_ids=unknown,
        recommendation_id=recommendation_id,
        source=sources.source,
        degraded=sources.source == ServedSource.FALLBACK,
        version=sources.version[0] if sources.version else None,
    )


# --- attribution: the merchant screen's figures -------------------------------------------------

ATTRIBUTION_WINDOW = timedelta(hours=24)
_UUID_HEX = r"^[0-9a-f]{32}$"


@dataclass(frozen=True)
class PlacementDay:
    day: date
    lists_served: int
    impressions: int  # products shown
    clicks: int
    ctr: float  # clicks / impressions; 0.0 without impressions
    attributed_orders: int
    attributed_revenue: Decimal


@dataclass(frozen=True)
class PlacementPerformance:
    placement: str
    label: str
    days: list[PlacementDay]  # oldest first, one per day of the window, zeros included
    lists_served: int
    impressions: int
    clicks: int
    ctr: float
    attributed_orders: int
    attributed_revenue: Decimal


def placement_figures_sum(rows: Sequence[PlacementDay | PlacementPerformance]) -> dict[str, object]:
    """The figures of several days or placements added up (the CTR recomputed, not averaged)."""
    impressions = sum(row.impressions for row in rows)
    clicks = sum(row.clicks for row in rows)
    return {
        "lists_served": sum(row.lists_served for row in rows),
        "impressions": impressions,
        "clicks": clicks,
        "ctr": clicks / impressions if impressions else 0.0,
        "attributed_orders": sum(row.attributed_orders for row in rows),
        "attributed_revenue": sum((row.attributed_revenue for row in rows), Decimal("0.00")),
    }


def _served_placement(merchant_id: int, recommendation_id: F | OuterRef) -> Subquery:
    return Subquery(
        ServedRecommendation.objects.for_merchant(merchant_id).filter(pk=recommendation_id).values("placement")[:1]
    )


def _clicks_with_placement(merchant_id: int):
    """Product Clicked events annotated with the placement of the list they came from (None: no list).

    The recommendation id comes from the event's JSON properties as text; only well-formed UUIDs are
    cast (CASE guards the cast: PostgreSQL would reject a malformed one).
    """
    rid_text = KeyTextTransform("recommendation_id", "properties")
    rid_hex = Lower(Replace(rid_text, Value("-"), Value(""), output_field=TextField()))
    return (
        Event.objects.for_merchant(merchant_id)
        .filter(name=PRODUCT_CLICKED)
        .annotate(rid_hex=rid_hex)
        .annotate(
            rid=Case(
                When(rid_hex__regex=_UUID_HEX, then=Cast("rid_hex", output_field=UUIDField())),
                default=Value(None),
                output_field=UUIDField(),
            )
        )
        .filter(rid__isnull=False)
        .annotate(placement=_served_placement(merchant_id, OuterRef("rid")))
    )


def placement_performance(
    *, merchant: Merchant, days: int = 30, today: date | None = None
) -> list[PlacementPerformance]:
    """Per placement and per day (in the merchant's time zone): lists served, impressions, clicks, CTR,
    and orders and revenue attributed to a click (same customer, within 24 h after it, the clicked
    product in the order; revenue is that line's unit price × quantity). Three aggregate queries."""
    tz = zoneinfo.ZoneInfo(merchant.timezone or "UTC")
    today = today or timezone.localdate(timezone=tz)
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, day_time.min, tzinfo=tz)
    end = datetime.combine(today + timedelta(days=1), day_time.min, tzinfo=tz)
    merchant_id = merchant.pk

    served = (
        ServedRecommendation.objects.for_merchant(merchant_id)
        .filter(created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("placement", "day")
        .annotate(lists=Count("pk"), shown=Sum("item_count"))
        .order_by()
    )
    clicks = (
        _clicks_with_placement(merchant_id)
        .filter(timestamp__gte=start, timestamp__lt=end, placement__isnull=False)
        .annotate(day=TruncDate("timestamp", tzinfo=tz))
        .values("placement", "day")
        .annotate(clicks=Count("pk"))
        .order_by()
    )
    attributing_click = (
        _clicks_with_placement(merchant_id)
        .filter(
            placement__isnull=False,
            customer_id=OuterRef("order__customer_id"),
            product_id=OuterRef("product_id"),
            timestamp__lte=OuterRef("order__placed_at"),
            timestamp__gte=OuterRef("order__placed_at") - ATTRIBUTION_WINDOW,
        )
        .order_by("-timestamp")
        .values("placement")[:1]
    )
    orders = (
        OrderLine.objects.for_merchant(merchant_id)
        .filter(
            order__placed_at__gte=start,
            order__placed_at__lt=end,
            order__status=OrderStatus.COMPLETED,
            product_id__isnull=False,
        )
        .annotate(placement=Subquery(attributing_click))
        .filter(placement__isnull=False)
        .annotate(day=TruncDate("order__placed_at", tzinfo=tz))
        .values("placement", "day")
        .annotate(
            orders=Count("order_id", distinct=True),
            revenue=Sum(F("unit_price") * F("quantity"), output_field=DecimalField(max_digits=16, decimal_places=2)),
        )
        .order_by()
    )

    figures: dict[tuple[str, date], dict[str, object]] = {}
    for row in served:
        figures.setdefault((row["placement"], row["day"]), {}).update(lists=row["lists"], shown=row["shown"] or 0)
    for row in clicks:
        figures.setdefault((row["placement"], row["day"]), {})["clicks"] = row["clicks"]
    for row in orders:
        figures.setdefault((row["placement"], row["day"]), {}).update(orders=row["orders"], revenue=row["revenue"])

    report = []
    for placement, label in Placement.choices:
        placement_days = []
        for offset in range(days):
            day = first + timedelta(days=offset)
            values = figures.get((placement, day), {})
            shown = int(values.get("shown", 0))
            day_clicks = int(values.get("clicks", 0))
            placement_days.append(
                PlacementDay(
                    day=day,
                    lists_served=int(values.get("lists", 0)),
                    impressions=shown,
                    clicks=day_clicks,
                    ctr=day_clicks / shown if shown else 0.0,
                    attributed_orders=int(values.get("orders", 0)),
                    attributed_revenue=Decimal(values.get("revenue") or 0).quantize(Decimal("0.01")),
                )
            )
        report.append(
            PlacementPerformance(
                placement=placement, label=str(label), days=placement_days, **placement_figures_sum(placement_days)
            )
        )
    return report
