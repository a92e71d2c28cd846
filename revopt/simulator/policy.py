"""What the simulated storefront shows, charges and offers: the pluggable part of the shop.

A policy sees only what a real storefront would: the shopper's ids and device, the category or search
they asked for, the catalog as the API returned it, the cart. It never sees the world's ground truth,
so a policy that does well here would do well on a real shop. Later issues add policies that call the
recommendation, pricing and offer APIs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from .world import Incentive

__all__ = [
    "CartContext",
    "CartLine",
    "CatalogBrowsePolicy",
    "CatalogListing",
    "Incentive",
    "SessionContext",
    "StorefrontPolicy",
]


class CatalogListing:
    """One day's catalog as `GET /api/v1/products` returned it, indexed the ways a storefront needs."""

    def __init__(self, products: list[dict]) -> None:
        self.products = products
        self.by_sku: dict[str, dict] = {product["sku"]: product for product in products}
        by_category: dict[str, list[dict]] = defaultdict(list)
        for product in products:
            category = product.get("category") or {}
            by_category[category.get("path", "")].append(product)
        self.by_category: dict[str, list[dict]] = dict(by_category)

    def __len__(self) -> int:
        return len(self.products)


@dataclass(frozen=True)
class SessionContext:
    session_id: str
    anonymous_id: str
    user_id: str | None
    device: str
    started_at: datetime
    # What the shopper asked for: a category page, or a search whose results are that category.
    category_path: str
    search_query: str | None = None
    utm_source: str = ""


@dataclass(frozen=True)
class CartLine:
    sku: str
    price: float
    quantity: int


@dataclass(frozen=True)
class CartContext:
    session: SessionContext
    lines: tuple[CartLine, ...] = field(default_factory=tuple)
    prior_orders: int = 0

    @property
    def subtotal(self) -> float:
        return round(sum(line.price * line.quantity for line in self.lines), 2)


@runtime_checkable
class StorefrontPolicy(Protocol):
    def products_to_show(self, session_context: SessionContext, catalog_listing: CatalogListing) -> list[str]:
        """SKUs to list on the page the shopper opened, best first."""
        ...

    def price_of(self, product: dict) -> float:
        """The price charged for a product (a row of the catalog listing)."""
        ...

    def incentive_for(self, cart_context: CartContext) -> Incentive | None:
        """An offer for a shopper with a cart, or None."""
        ...


class CatalogBrowsePolicy:
    """The shop without revopt: a category page lists in-stock products in the catalog's own order at list price."""

    def __init__(self, max_products: int = 60) -> None:
        self.max_products = max_products

    def products_to_show(self, session_context: SessionContext, catalog_listing: CatalogListing) -> list[str]:
        products = catalog_listing.by_category.get(session_context.category_path, [])
        return [product["sku"] for product in products if product.get("in_stock", True)][: self.max_products]

    def price_of(self, product: dict) -> float:
        return float(product["price"])

    def incentive_for(self, cart_context: CartContext) -> Incentive | None:
        return None
