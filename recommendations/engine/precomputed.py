"""What serving reads: the candidate lists a training precomputes, keyed by database ids.

Everything here is plain Python (ints, floats, strings, lists, dicts) so it pickles small and goes
into the cache as is. Scores are comparable within one list, not across lists.
"""

from __future__ import annotations

import pickle
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

# Reason codes of a recommended item, and the sentence the API builds from each one.
# `because_of` is the product (or category) the sentence names.
REASONS: dict[str, str] = {
    "viewed": "Because you viewed {product}",
    "purchased": "Because you bought {product}",
    "for_you": "Picked for you",
    "bought_together": "Often bought with {product}",
    "viewed_together": "Customers who viewed {product} also viewed this",
    "similar": "Similar to {product}",
    "trending": "Trending in {category}",
    "popular": "Popular right now",
    "new_arrival": "New in {category}",
    "pinned": "Featured",
}


class Candidate(NamedTuple):
    # A named tuple, not a dataclass: a large shop precomputes millions of these, and a tuple is
    # several times cheaper to build and to pickle into the artifact.
    product_id: int
    score: float
    reason: str  # a key of REASONS
    because_of: int | None = None  # a product id, or a category id for trending / new_arrival


@dataclass(frozen=True)
class BoughtTogether:
    product_id: int
    support: float
    confidence: float
    lift: float

    @property
    def score(self) -> float:
        return self.confidence * self.lift


@dataclass
class Precomputed:
    version: int | None = None
    # Personal candidates from the hybrid model, best first, with the history item that explains each.
    for_customer: dict[int, list[Candidate]] = field(default_factory=dict)
    # Item-to-item lists, best first: (product id, score).
    viewed_together: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    purchased_together: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    similar_content: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    # Association rules on orders, ranked by confidence × lift.
    bought_together: dict[int, list[BoughtTogether]] = field(default_factory=dict)
    # Sets of products often ordered together as a whole (for a "bundle" widget): list of product ids.
    bundles: dict[int, list[list[int]]] = field(default_factory=dict)
    popular: list[tuple[int, float]] = field(default_factory=list)
    trending: list[tuple[int, float]] = field(default_factory=list)
    # Keyed by category id.
    popular_by_category: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    trending_by_category: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    new_arrivals: list[int] = field(default_factory=list)
    product_category: dict[int, int] = field(default_factory=dict)
    # Low-dimensional item vectors (unit norm) for MMR diversity: product id -> list of floats.
    item_vectors: dict[int, list[float]] = field(default_factory=dict)


def precomputed_to_bytes(precomputed: Precomputed) -> bytes:
    return zlib.compress(pickle.dumps(precomputed, protocol=pickle.HIGHEST_PROTOCOL), level=6)


def precomputed_from_bytes(data: bytes) -> Precomputed:
    # Only revopt writes these bytes (RecommenderVersion.artifact), never a client.
    return pickle.loads(zlib.decompress(bytes(data)))
