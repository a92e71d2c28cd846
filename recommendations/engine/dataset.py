"""What training reads: items, users, interactions and order baskets as numpy arrays.

Ids are the database primary keys (products, customers, categories) so that the lists training
produces can be served without translation. Indexes (`Interactions.user`, `.item`) point into
`Users.ids` and `Items.ids`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The feedback kinds in `Interactions.kind` (an index into this tuple), weakest first.
FEEDBACK_KINDS: tuple[str, ...] = ("view", "click", "wishlist", "cart", "purchase")
KIND_INDEX: dict[str, int] = {kind: index for index, kind in enumerate(FEEDBACK_KINDS)}


@dataclass(frozen=True)
class Items:
    ids: np.ndarray  # int64 product ids
    category: np.ndarray  # int64 category id, -1 when none
    category_path: list[str]  # "Outdoor > Tents", "" when none
    title: list[str]
    description: list[str]
    brand: list[str]
    attributes: list[dict]
    price: np.ndarray  # float64
    created_at: np.ndarray  # float64 unix seconds

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Users:
    ids: np.ndarray  # int64 customer ids
    # Coarse, non-sensitive features for the hybrid model: the device most used, an activity segment.
    device: list[str]
    segment: list[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Interactions:
    user: np.ndarray  # int64 index into Users
    item: np.ndarray  # int64 index into Items
    kind: np.ndarray  # int8 index into FEEDBACK_KINDS
    timestamp: np.ndarray  # float64 unix seconds
    session: np.ndarray  # int64 session number, -1 when unknown (co-view neighbours use it)

    def __len__(self) -> int:
        return len(self.user)

    def take(self, mask_or_index: np.ndarray) -> Interactions:
        return Interactions(
            user=self.user[mask_or_index],
            item=self.item[mask_or_index],
            kind=self.kind[mask_or_index],
            timestamp=self.timestamp[mask_or_index],
            session=self.session[mask_or_index],
        )


@dataclass(frozen=True)
class Baskets:
    """Orders as compressed rows: the items of order o are item[offsets[o]:offsets[o + 1]]."""

    offsets: np.ndarray  # int64, len = orders + 1
    item: np.ndarray  # int64 index into Items
    user: np.ndarray  # int64 index into Users, one per order
    timestamp: np.ndarray  # float64 unix seconds, one per order

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def empty(cls) -> Baskets:
        return cls(
            offsets=np.zeros(1, dtype=np.int64),
            item=np.zeros(0, dtype=np.int64),
            user=np.zeros(0, dtype=np.int64),
            timestamp=np.zeros(0, dtype=np.float64),
        )


@dataclass(frozen=True)
class TrainingParams:
    feedback_weights: dict[str, float] = field(
        default_factory=lambda: {"view": 1.0, "click": 2.0, "wishlist": 3.0, "cart": 4.0, "purchase": 8.0}
    )
    half_life_days: float = 30.0
    new_arrival_days: int = 14
    # How many candidates are precomputed per customer and neighbours per product.
    candidates_per_user: int = 100
    neighbours_per_item: int = 30
    seed: int = 0

    def to_dict(self) -> dict:
        return {
            "feedback_weights": dict(self.feedback_weights),
            "half_life_days": self.half_life_days,
            "new_arrival_days": self.new_arrival_days,
            "candidates_per_user": self.candidates_per_user,
            "neighbours_per_item": self.neighbours_per_item,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class TrainingData:
    items: Items
    users: Users
    interactions: Interactions
    baskets: Baskets
    now: float  # unix seconds: "today" for time decay, trending and new arrivals
