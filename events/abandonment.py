"""Cart-abandonment prediction: the features of a live cart and the gradient-boosted model that scores it.

Pure: no Django. A `CartSnapshot` is what is known about a session at the moment its cart is looked at
(the storefront's "Cart Viewed", or a call to `POST /api/v1/offers/decide`). Training builds one snapshot per
past cart from the event log (`events.selectors.abandonment`), counting only events up to that moment, and
labels it with whether the session then placed an order; serving builds it from the request (the storefront
counts the session's signals itself) merged with what the event log already holds. The same
`snapshot_features` turns both into the model's matrix, so training and serving cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Behaviour the storefront may count for the live session and send with a decide request ("signals").
# The event log gives the same counts for past sessions:
#   product_views        "Product Viewed" events
#   list_views           "Product List Viewed" events
#   searches             "Products Searched" events
#   cart_adds            "Product Added" events
#   cart_removals        "Product Removed" events
#   shipping_info_views  "Page Viewed" whose properties.path contains "shipping" or "delivery"
#   returns_info_views   "Page Viewed" whose properties.path contains "return" or "refund"
#   price_sorted         1 if a "Product List Filtered" has a sort of type "price" (either direction)
#   coupon_attempts      "Coupon Entered" + "Coupon Denied" events
#   seconds_on_site      seconds from the session's first event to the snapshot
#   seconds_on_cart      seconds from the last "Product Added" to the snapshot
SIGNAL_NAMES: tuple[str, ...] = (
    "product_views",
    "list_views",
    "searches",
    "cart_adds",
    "cart_removals",
    "shipping_info_views",
    "returns_info_views",
    "price_sorted",
    "coupon_attempts",
    "seconds_on_site",
    "seconds_on_cart",
)
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet", "other")


@dataclass(frozen=True)
class CartSnapshot:
    cart_value: float  # the cart's subtotal in the shop's currency
    items: int  # units in the cart
    distinct_products: int
    device: str  # one of DEVICES
    source: str  # utm_source, "" for direct traffic
    hour_of_day: int  # in the shop's time zone, 0..23
    weekday: int  # Monday = 0
    logged_in: bool
    # The customer's history before this session.
    prior_orders: int = 0
    prior_sessions: int = 0
    days_since_last_order: float | None = None
    prior_revenue: float = 0.0
    # The session's behaviour so far, keyed by SIGNAL_NAMES (missing = 0).
    signals: dict[str, float] | None = None
    # Amount still needed for free shipping (0 when it is already free or the shop has no threshold).
    free_shipping_gap: float = 0.0


def feature_names() -> tuple[str, ...]:
    """Column names of `snapshot_features`, in order."""
    raise NotImplementedError


def snapshot_features(snapshots: Sequence[CartSnapshot]) -> np.ndarray:
    """The model matrix, shape (len(snapshots), len(feature_names())), float64."""
    raise NotImplementedError
