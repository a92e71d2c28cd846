"""The per-placement blend: which precomputed lists a placement draws from, and how they mix.

Scores are comparable within one list only, so every list is first mapped onto [0.5, 1] by min-max
(order kept, the head of each list worth at most twice its tail), then weighted by what the list means
for the placement and summed: an item several lists agree on rises. The reason of an item is the list
that contributed most to it. Popular items fill whatever the placement's own lists leave empty, always
below the weakest of them, so the fill never reorders a placement's real candidates.

Real time: the products viewed in the current session (newest first, each worth half the one after it)
pull their neighbours up: on home and email they add candidates ("Because you viewed X"); elsewhere they
only re-rank what the placement found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .precomputed import Candidate

HOME = "home"
EMAIL = "email"
PDP = "pdp"
CART = "cart"
POST_PURCHASE = "post_purchase"

Pairs = Sequence[tuple[int, float]]
ItemLists = Mapping[str, Pairs]

# Weights of each list per placement. Item lists: "vt" viewed together, "pt" purchased together,
# "sc" similar content, "bt" bought together (association rules).
COLD_START_WEIGHTS = {"popular": 0.6, "trending": 0.5, "new_arrival": 0.2}
SESSION_KIND_WEIGHTS = {"vt": 1.0, "sc": 0.8, "pt": 0.6}
SESSION_WEIGHT_WITH_HISTORY = 0.6
SESSION_WEIGHT_COLD = 0.9
SESSION_RECENCY_DECAY = 0.5
MAX_SESSION_VIEWS = 5
PDP_WEIGHTS = {
    "vt": (1.0, "viewed_together"),
    "sc": (0.8, "similar"),
    "bt": (0.6, "bought_together"),
    "pt": (0.5, "bought_together"),
}
BASKET_WEIGHTS = {"bt": (1.0, "bought_together"), "pt": (0.7, "bought_together")}
# Multipliers of the re-rank on placements whose candidates come from the products in play.
PERSONAL_RERANK = 0.5
SESSION_RERANK = 0.5
FILL_CEILING = 0.5


@dataclass(frozen=True)
class BlendInput:
    placement: str
    # False for customers who opted out of personalization: no history, no session.
    personal: bool = True
    for_customer: Sequence[tuple[int, float, str, int | None]] = ()
    # The product of a pdp, the cart's items, or the last order's items (post_purchase).
    context_products: Sequence[int] = ()
    session_views: Sequence[int] = ()  # newest first
    item_lists: Mapping[int, ItemLists] = field(default_factory=dict)
    popular: Pairs = ()
    trending: Pairs = ()
    new_arrivals: Sequence[int] = ()
    # The requested categories' (popular, trending) lists: candidates a filtered request can keep.
    category_lists: Mapping[int, tuple[Pairs, Pairs]] = field(default_factory=dict)
    limit: int = 200


class _Board:
    """Accumulates weighted contributions; remembers the strongest one as the item's reason."""

    def __init__(self, excluded: set[int]):
        self.excluded = excluded
        self.score: dict[int, float] = {}
        self.reason: dict[int, tuple[float, str, int | None]] = {}

    def add(self, product_id: int, value: float, reason: str, because_of: int | None) -> None:
        if product_id in self.excluded or value <= 0.0:
            return
        self.score[product_id] = self.score.get(product_id, 0.0) + value
        best = self.reason.get(product_id)
        if best is None or value > best[0]:
            self.reason[product_id] = (value, reason, because_of)

    def add_list(self, pairs: Pairs, weight: float, reason: str, because_of: int | None) -> None:
        # `add` over `normalized(pairs)`, inlined: this loop runs over every global list on every request.
        if not pairs:
            return
        scores = [score for _, score in pairs]
        low, high = min(scores), max(scores)
        spread = high - low
        excluded, board, best = self.excluded, self.score, self.reason
        for product_id, raw in pairs:
            value = weight * (1.0 if spread <= 0.0 else 0.5 + 0.5 * (raw - low) / spread)
            if product_id in excluded or value <= 0.0:
                continue
            board[product_id] = board.get(product_id, 0.0) + value
            current = best.get(product_id)
            if current is None or value > current[0]:
                best[product_id] = (value, reason, because_of)

    def ranked(self, limit: int | None = None) -> list[Candidate]:
        # sorted() is stable: equal scores keep the order the lists gave them.
        order = sorted(self.score, key=self.score.__getitem__, reverse=True)[:limit]
        score, reason = self.score, self.reason
        return [Candidate(pid, score[pid], reason[pid][1], reason[pid][2]) for pid in order]


def normalized(pairs: Pairs) -> list[tuple[int, float]]:
    """Min-max onto [0.5, 1], keeping the list's order; a single item, or all-equal scores, map to 1."""
    if not pairs:
        return []
    scores = [score for _, score in pairs]
    low, high = min(scores), max(scores)
    spread = high - low
    if spread <= 0.0:
        return [(product_id, 1.0) for product_id, _ in pairs]
    return [(product_id, 0.5 + 0.5 * (score - low) / spread) for product_id, score in pairs]


def ranked_pairs(product_ids: Sequence[int]) -> list[tuple[int, float]]:
    """Scores for an unscored list (new arrivals): its order, as descending ranks."""
    count = len(product_ids)
    return [(product_id, float(count - index)) for index, product_id in enumerate(product_ids)]


def session_affinity(blend: BlendInput) -> dict[int, tuple[float, int]]:
    """Product → (affinity in [0, 1], the viewed product that explains it best)."""
    affinity: dict[int, tuple[float, int]] = {}
    total_weight = 0.0
    for position, viewed in enumerate(blend.session_views[:MAX_SESSION_VIEWS]):
        recency = SESSION_RECENCY_DECAY**position
        total_weight += recency
        lists = blend.item_lists.get(viewed, {})
        for kind, kind_weight in SESSION_KIND_WEIGHTS.items():
            for product_id, value in normalized(lists.get(kind, ())):
                contribution = recency * kind_weight * value
                current, because = affinity.get(product_id, (0.0, viewed))
                if contribution > current:
                    because = viewed
                affinity[product_id] = (current + contribution, because)
    if total_weight == 0.0:
        return {}
    peak = max((value for value, _ in affinity.values()), default=1.0) or 1.0
    return {product_id: (value / peak, because) for product_id, (value, because) in affinity.items()}


def blend(blend_input: BlendInput) -> list[Candidate]:
    """The placement's candidates, best first, at most `limit`, before business rules."""
    placement = blend_input.placement
    excluded = set(blend_input.context_products) if placement in (PDP, CART, POST_PURCHASE) else set()
    board = _Board(excluded)
    personal = blend_input.personal
    affinity = session_affinity(blend_input) if personal else {}

    if placement in (PDP, CART, POST_PURCHASE):
        _context_lists(board, blend_input)
        if personal:
            _rerank(board, blend_input, affinity)
    else:
        _home_lists(board, blend_input, affinity)
    ranked = board.ranked(blend_input.limit)
    return _fill(ranked, blend_input, excluded)[: blend_input.limit]


def _home_lists(board: _Board, blend_input: BlendInput, affinity: dict[int, tuple[float, int]]) -> None:
    history = blend_input.personal and bool(blend_input.for_customer)
    if history:
        # The offline evaluation scores exactly this list, so its order is kept: values never rise
        # down the list even if a score does.
        ceiling = 1.0
        for (product_id, _, reason, because_of), (_, value) in zip(
            blend_input.for_customer, normalized([(c[0], c[1]) for c in blend_input.for_customer]), strict=True
        ):
            ceiling = min(ceiling, value)
            board.add(product_id, ceiling, reason, because_of)
    else:
        board.add_list(blend_input.popular, COLD_START_WEIGHTS["popular"], "popular", None)
        board.add_list(blend_input.trending, COLD_START_WEIGHTS["trending"], "trending", None)
        board.add_list(ranked_pairs(blend_input.new_arrivals), COLD_START_WEIGHTS["new_arrival"], "new_arrival", None)
        for category_id, (popular, trending) in blend_input.category_lists.items():
            board.add_list(popular, COLD_START_WEIGHTS["popular"], "popular", None)
            board.add_list(trending, COLD_START_WEIGHTS["trending"], "trending", category_id)
    weight = SESSION_WEIGHT_WITH_HISTORY if history else SESSION_WEIGHT_COLD
    for product_id, (value, because) in affinity.items():
        board.add(product_id, weight * value, "viewed", because)


def _context_lists(board: _Board, blend_input: BlendInput) -> None:
    weights = PDP_WEIGHTS if blend_input.placement == PDP else BASKET_WEIGHTS
    for product_id in blend_input.context_products:
        lists = blend_input.item_lists.get(product_id, {})
        for kind, (weight, reason) in weights.items():
            board.add_list(lists.get(kind, ()), weight, reason, product_id)


def _rerank(board: _Board, blend_input: BlendInput, affinity: dict[int, tuple[float, int]]) -> None:
    personal = dict(normalized([(product_id, score) for product_id, score, _, _ in blend_input.for_customer]))
    for product_id in board.score:
        factor = 1.0
        if product_id in personal:
            factor *= 1.0 + PERSONAL_RERANK * personal[product_id]
        if product_id in affinity:
            factor *= 1.0 + SESSION_RERANK * affinity[product_id][0]
        board.score[product_id] *= factor


def _fill(ranked: list[Candidate], blend_input: BlendInput, excluded: set[int]) -> list[Candidate]:
    """Popular items after the placement's own candidates, scored below the weakest of them."""
    if len(ranked) >= blend_input.limit:
        return ranked
    ceiling = FILL_CEILING * (ranked[-1].score if ranked else 1.0)
    present = {candidate.product_id for candidate in ranked} | excluded
    fill = _Board(present)
    for popular, _ in blend_input.category_lists.values():
        fill.add_list(popular, 1.0, "popular", None)
    fill.add_list(blend_input.popular, 0.5 if blend_input.category_lists else 1.0, "popular", None)
    fill.add_list(blend_input.trending, 0.25, "trending", None)
    filled = fill.ranked(blend_input.limit - len(ranked))
    top = filled[0].score if filled else 1.0
    return ranked + [
        Candidate(candidate.product_id, ceiling * candidate.score / top, candidate.reason, candidate.because_of)
        for candidate in filled
    ]
