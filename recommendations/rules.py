"""Business rules over a blended list: pure functions, given the sets they need (no Django here).

Order of application: hard filters (inactive, out of stock, blocked, the products in play, already
bought, outside the categories) → score changes (boosts, impression discounting) → diversity (a cap
per category, then maximal marginal relevance) → pins at their positions → the first k.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .engine.precomputed import Candidate

PIN = "pin"
BOOST = "boost"
BLOCK = "block"
# MMR re-orders the best MMR_POOL_FACTOR × k candidates: picking from further down costs time and relevance.
MMR_POOL_FACTOR = 4


class ProductFacts(NamedTuple):  # a tuple: hundreds are built per request
    """What the rules need to know about a product, read from the database in the request."""

    product_id: int
    category_id: int | None
    is_active: bool
    in_stock: bool


@dataclass(frozen=True)
class PlacementPolicy:
    """A placement's rules with category sets already expanded to their subcategories."""

    exclude_purchased: bool = True
    repurchasable_categories: frozenset[int] = frozenset()
    allowed_categories: frozenset[int] = frozenset()  # empty: every category
    max_per_category: int | None = None
    mmr_lambda: float | None = None
    impression_discount: float = 0.85
    impression_window_days: int = 7
    default_k: int = 10


@dataclass(frozen=True, slots=True)
class ItemRule:
    product_id: int
    action: str  # PIN | BOOST | BLOCK
    placement: str = ""  # "" applies to every placement
    position: int | None = None
    boost: float | None = None
    starts_at: float | None = None  # unix seconds
    ends_at: float | None = None

    def applies(self, *, placement: str, now: float) -> bool:
        if self.placement and self.placement != placement:
            return False
        if self.starts_at is not None and now < self.starts_at:
            return False
        return self.ends_at is None or now < self.ends_at


@dataclass(frozen=True)
class RuleContext:
    placement: str
    policy: PlacementPolicy
    facts: Mapping[int, ProductFacts]
    now: float
    k: int
    item_rules: Sequence[ItemRule] = ()
    purchased: frozenset[int] = frozenset()
    # Products that must not be recommended here (the pdp product, the cart's items).
    excluded: frozenset[int] = frozenset()
    # The request's category filter, expanded to subcategories; None: no filter.
    requested_categories: frozenset[int] | None = None
    # Product → impressions since the visitor last clicked or viewed it (within the window).
    impressions: Mapping[int, int] = field(default_factory=dict)
    # Unit vectors for MMR; products without one count as unlike everything.
    vectors: Mapping[int, Sequence[float]] = field(default_factory=dict)


def descendants(*, parents: Mapping[int, int | None], roots: Iterable[int]) -> frozenset[int]:
    """The roots and every category below them, from a child → parent map."""
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)
    found = {root for root in roots if root in parents}
    frontier = list(found)
    while frontier:
        frontier = [child for node in frontier for child in children.get(node, ()) if child not in found]
        found.update(frontier)
    return frozenset(found)


def impression_counts(
    *, impressions: Mapping[int, Sequence[float]], engaged: Mapping[int, float], now: float, window_seconds: float
) -> dict[int, int]:
    """Impressions of each product within the window and after the visitor last clicked or viewed it."""
    horizon = now - window_seconds
    counts = {}
    for product_id, moments in impressions.items():
        since = max(horizon, engaged.get(product_id, -math.inf))
        count = sum(1 for moment in moments if moment > since)
        if count:
            counts[product_id] = count
    return counts


def active_item_rules(rules: Iterable[ItemRule], *, placement: str, now: float) -> list[ItemRule]:
    return [rule for rule in rules if rule.applies(placement=placement, now=now)]


def is_eligible(product_id: int, context: RuleContext, blocked: set[int]) -> bool:
    facts = context.facts.get(product_id)
    if facts is None or not facts.is_active or not facts.in_stock:
        return False
    if product_id in blocked or product_id in context.excluded:
        return False
    category_id = facts.category_id
    policy = context.policy
    if policy.allowed_categories and category_id not in policy.allowed_categories:
        return False
    if context.requested_categories is not None and category_id not in context.requested_categories:
        return False
    return not (
        policy.exclude_purchased
        and product_id in context.purchased
        and category_id not in policy.repurchasable_categories
    )


def apply_rules(candidates: Sequence[Candidate], context: RuleContext) -> list[Candidate]:
    """The final list: at most k candidates that pass every rule, pins in place."""
    rules = active_item_rules(context.item_rules, placement=context.placement, now=context.now)
    blocked = {rule.product_id for rule in rules if rule.action == BLOCK}
    boosts: dict[int, float] = {}
    for rule in rules:
        if rule.action == BOOST and rule.boost is not None:
            boosts[rule.product_id] = boosts.get(rule.product_id, 1.0) * rule.boost
    pins: dict[int, int] = {}
    for rule in sorted((rule for rule in rules if rule.action == PIN), key=lambda rule: rule.position or 1):
        if rule.product_id not in pins and is_eligible(rule.product_id, context, blocked):
            pins[rule.product_id] = rule.position or 1

    discount = context.policy.impression_discount
    scored: list[Candidate] = []
    seen: set[int] = set()
    for candidate in candidates:
        product_id = candidate.product_id
        if product_id in seen or product_id in pins or not is_eligible(product_id, context, blocked):
            continue
        seen.add(product_id)
        score = candidate.score * boosts.get(product_id, 1.0) * discount ** context.impressions.get(product_id, 0)
        scored.append(Candidate(product_id, score, candidate.reason, candidate.because_of))
    scored.sort(key=lambda candidate: candidate.score, reverse=True)

    organic_slots = max(context.k - len(pins), 0)
    organic = cap_per_category(scored, facts=context.facts, limit=context.policy.max_per_category)
    if context.policy.mmr_lambda is not None and context.policy.mmr_lambda < 1.0:
        pool = organic[: MMR_POOL_FACTOR * organic_slots]
        organic = mmr(pool, vectors=context.vectors, lambda_=context.policy.mmr_lambda, k=organic_slots)
    return place_pins(organic[:organic_slots], pins=pins, k=context.k)


def cap_per_category(
    candidates: Sequence[Candidate], *, facts: Mapping[int, ProductFacts], limit: int | None
) -> list[Candidate]:
    if not limit:
        return list(candidates)
    taken: dict[int | None, int] = {}
    kept = []
    for candidate in candidates:
        category_id = facts[candidate.product_id].category_id
        if taken.get(category_id, 0) < limit:
            taken[category_id] = taken.get(category_id, 0) + 1
            kept.append(candidate)
    return kept


def mmr(
    candidates: Sequence[Candidate], *, vectors: Mapping[int, Sequence[float]], lambda_: float, k: int
) -> list[Candidate]:
    """Greedy maximal marginal relevance: λ·relevance − (1 − λ)·(similarity to the items already picked).

    Relevance is the score over the best score, so λ trades like against like; products without a
    vector are unlike everything. The picked items keep their scores; only their order changes.
    """
    if not candidates or k <= 0:
        return []
    pool = list(candidates)
    top = max(candidate.score for candidate in pool) or 1.0
    relevance = np.array([candidate.score / top for candidate in pool])
    dimensions = max((len(vector) for vector in vectors.values()), default=0)
    matrix = np.zeros((len(pool), dimensions))
    for index, candidate in enumerate(pool):
        vector = vectors.get(candidate.product_id)
        if vector is not None and len(vector) == dimensions:
            matrix[index] = vector
    similarity = matrix @ matrix.T
    closest = np.zeros(len(pool))  # each item's highest similarity to a picked one
    available = np.ones(len(pool), dtype=bool)
    picked: list[Candidate] = []
    while len(picked) < min(k, len(pool)):
        value = np.where(available, lambda_ * relevance - (1.0 - lambda_) * closest, -np.inf)
        chosen = int(np.argmax(value))  # the first of equals: the better-scored one
        available[chosen] = False
        picked.append(pool[chosen])
        closest = np.maximum(closest, similarity[chosen])
    return picked


def place_pins(organic: Sequence[Candidate], *, pins: Mapping[int, int], k: int) -> list[Candidate]:
    """Put each pinned product at its 1-based position (or last, when the list is shorter)."""
    result = list(organic)
    for product_id, position in sorted(pins.items(), key=lambda pin: pin[1]):
        index = min(position - 1, len(result))
        # A pin takes the score of the item it displaces, so scores still read best-first.
        score = result[index].score if index < len(result) else (result[-1].score if result else 1.0)
        result.insert(index, Candidate(product_id, score, "pinned", None))
    return result[:k]
