"""What the simulated storefront shows, charges and offers: the pluggable part of the shop.

A policy sees only what a real storefront would: the shopper's ids and device, the category or search
they asked for, the catalog as the API returned it, the cart. It never sees the world's ground truth,
so a policy that does well here would do well on a real shop. Policies that call revopt's own APIs
(`RecommendationPolicy`, `PricingPolicy`) get the driver's transport through `connect`, so they go through
the same storefront API, routing and authentication as the shop's events.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .world import Incentive

if TYPE_CHECKING:
    from .driver import Transport

__all__ = [
    "ApiCallingPolicy",
    "AttributingPolicy",
    "CartContext",
    "CartLine",
    "CatalogBrowsePolicy",
    "CatalogListing",
    "Incentive",
    "OfferPolicy",
    "OfferTruth",
    "OfferTruthRecorder",
    "PricingPolicy",
    "RecommendationPolicy",
    "SessionContext",
    "StorefrontPolicy",
]

RECOMMENDATIONS_PATH = "/api/v1/recommendations"
PRICES_PATH = "/api/v1/prices"
PRICES_BATCH_SIZE = 200
OFFERS_DECIDE_PATH = "/api/v1/offers/decide"


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
    # What the storefront counted in this session so far, keyed by events.abandonment.SIGNAL_NAMES
    # (filled when the world simulates session signals).
    signals: dict[str, float] = field(default_factory=dict)
    # The cart id the session's events carry ("Product Added", "Cart Viewed"); "" when not known.
    cart_id: str = ""
    # The moment the cart is looked at ("Cart Viewed"); None when not known.
    at: datetime | None = None

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


@runtime_checkable
class ApiCallingPolicy(Protocol):
    def connect(self, transport: Transport) -> None:
        """Receive the transport the driver talks to the storefront API through."""
        ...


@runtime_checkable
class AttributingPolicy(Protocol):
    def recommendation_id_for(self, session_context: SessionContext, sku: str) -> str | None:
        """The recommendation_id of the list the shopper opened `sku` from, or None if not from one."""
        ...


class RecommendationPolicy(CatalogBrowsePolicy):
    """The shop with revopt's recommendations: a category page opens with what revopt recommends to
    this shopper in that category (`GET /api/v1/recommendations`, placement home, k = the listing size),
    then the rest of the category in the catalog's order.

    A product the shopper opens from the recommended part carries that list's recommendation_id, which
    the session sends as a storefront would (Product Clicked), so clicks, orders and revenue can be
    attributed. When the API fails the page shows the catalog order, as a real storefront would, and
    the failure is counted in `failures` (a simulation expects zero).
    """

    placement = "home"

    def __init__(self, max_products: int = 60, transport: Transport | None = None) -> None:
        super().__init__(max_products=max_products)
        self.transport = transport
        self.served_lists = 0
        self.recommended_shown = 0
        self.failures = 0
        # Only the current session's list: the simulator runs one session at a time.
        self._session_id: str | None = None
        self._recommendation_id: str | None = None
        self._recommended: frozenset[str] = frozenset()

    def connect(self, transport: Transport) -> None:
        self.transport = transport

    def products_to_show(self, session_context: SessionContext, catalog_listing: CatalogListing) -> list[str]:
        self._session_id, self._recommendation_id, self._recommended = session_context.session_id, None, frozenset()
        in_category = [
            product
            for product in catalog_listing.by_category.get(session_context.category_path, [])
            if product.get("in_stock", True)
        ]
        if not in_category:
            return []
        category_skus = [product["sku"] for product in in_category]
        answer = self._recommendations(session_context, category_id=(in_category[0].get("category") or {}).get("id"))
        if answer is None:
            return category_skus[: self.max_products]
        allowed = set(category_skus)
        recommended = list(dict.fromkeys(item["sku"] for item in answer["items"] if item["sku"] in allowed))
        self._recommendation_id = answer["recommendation_id"]
        self._recommended = frozenset(recommended)
        self.served_lists += 1
        self.recommended_shown += len(recommended)
        rest = [sku for sku in category_skus if sku not in self._recommended]
        return (recommended + rest)[: self.max_products]

    def recommendation_id_for(self, session_context: SessionContext, sku: str) -> str | None:
        if session_context.session_id != self._session_id or sku not in self._recommended:
            return None
        return self._recommendation_id

    def _recommendations(self, session_context: SessionContext, *, category_id: int | None) -> dict | None:
        from .driver import StorefrontAPIError

        if self.transport is None:
            raise RuntimeError("RecommendationPolicy needs a transport: the driver connects it")
        params: dict[str, object] = {
            "placement": self.placement,
            "anonymous_id": session_context.anonymous_id,
            "session_id": session_context.session_id,
            "k": min(self.max_products, 100),
            "device": session_context.device,
            "at": session_context.started_at.isoformat(),
        }
        if session_context.user_id:
            params["customer_id"] = session_context.user_id
        if category_id is not None:
            params["category"] = category_id
        try:
            return self.transport.get(RECOMMENDATIONS_PATH, params)
        except StorefrontAPIError:
            self.failures += 1
            return None


class PricingPolicy(CatalogBrowsePolicy):
    """The shop with revopt's prices: each product costs what `GET /api/v1/prices` says (the approved price,
    or the pricing experiment's arm), the same for every shopper.

    A storefront caches prices with its catalog: when the driver hands in a new day's listing, the policy asks
    for every listed product's price, 200 SKUs a call, and charges those all day. A failed call leaves its
    products at the catalog price and is counted in `failures` (a simulation expects zero).
    """

    def __init__(self, max_products: int = 60, transport: Transport | None = None) -> None:
        super().__init__(max_products=max_products)
        self.transport = transport
        self.failures = 0
        self.price_requests = 0
        self._listing: CatalogListing | None = None
        self._prices: dict[str, float] = {}

    def connect(self, transport: Transport) -> None:
        self.transport = transport

    def products_to_show(self, session_context: SessionContext, catalog_listing: CatalogListing) -> list[str]:
        if catalog_listing is not self._listing:
            self.prices_refresh(catalog_listing)
        return super().products_to_show(session_context, catalog_listing)

    def price_of(self, product: dict) -> float:
        return self._prices.get(product["sku"], float(product["price"]))

    @property
    def live_prices(self) -> dict[str, float]:
        """SKU → the price charged on the latest day (the API's answer; products it failed for are absent)."""
        return dict(self._prices)

    def prices_refresh(self, catalog_listing: CatalogListing) -> None:
        """The live price of every product of the listing; the catalog price where the API failed."""
        from .driver import StorefrontAPIError

        if self.transport is None:
            raise RuntimeError("PricingPolicy needs a transport: the driver connects it")
        skus = [product["sku"] for product in catalog_listing.products]
        prices: dict[str, float] = {}
        for start in range(0, len(skus), PRICES_BATCH_SIZE):
            batch = skus[start : start + PRICES_BATCH_SIZE]
            self.price_requests += 1
            try:
                answer = self.transport.get(PRICES_PATH, {"products": ",".join(batch)})
            except (StorefrontAPIError, ValueError):  # an error status, or an answer that is not JSON
                self.failures += 1
                continue
            for item in answer.get("prices", []):
                prices[item["sku"]] = float(item["price"])
        self._listing = catalog_listing
        self._prices = prices


@dataclass(frozen=True)
class OfferTruth:
    """The simulator's counterfactual truth about one incentive given at a cart (never shown to a policy's
    decisions; an evaluation reads it). `would_have_bought`: the same random draw completes without the offer."""

    cart_id: str
    kind: str
    would_have_bought: bool
    completed: bool
    cost: float  # to the merchant if the order completes: the discount, the shipping fee waived, points' value
    p_offer: float
    p_none: float
    margin: float  # the cart's margin before the offer, from product costs

    @property
    def incremental_margin(self) -> float:
        """True expected incremental margin: p_offer·(margin − cost) − p_none·margin."""
        return self.p_offer * (self.margin - self.cost) - self.p_none * self.margin


@runtime_checkable
class OfferTruthRecorder(Protocol):
    def offer_truth_record(self, truth: OfferTruth) -> None:
        """Receive the truth about an incentive this policy gave (for evaluation only)."""
        ...


@dataclass
class OfferTally:
    """Decisions and the simulator's truth about the offers of one experiment arm (or of all decisions)."""

    decisions: int = 0
    offers: int = 0
    offers_would_have_bought: int = 0
    offer_orders: int = 0
    offer_cost: float = 0.0
    # What the offers cost on orders that would have been placed without them: margin given away.
    cost_given_away: float = 0.0
    true_incremental_margin: float = 0.0
    shoppers: set[str] = field(default_factory=set)

    def as_dict(self) -> dict:
        return {
            "decisions": self.decisions,
            "shoppers": len(self.shoppers),
            "offers": self.offers,
            "offers_would_have_bought": self.offers_would_have_bought,
            "share_offers_would_have_bought": (
                round(self.offers_would_have_bought / self.offers, 4) if self.offers else None
            ),
            "offer_orders": self.offer_orders,
            "offer_cost": round(self.offer_cost, 2),
            "cost_given_away": round(self.cost_given_away, 2),
            "true_incremental_margin": round(self.true_incremental_margin, 2),
        }


class OfferPolicy(CatalogBrowsePolicy):
    """The shop with revopt's incentives: at the cart the storefront asks `POST /api/v1/offers/decide` with the
    cart, the shopper's ids and the behaviour it counted this session, and shows the offer it gets (its one-time
    code goes on the order's coupon, so the order redeems it).

    A failed call shows no offer (the shop still works) and is counted in `failures`. Decisions are tallied
    per experiment arm ("" outside an experiment), with the simulator's truth about each offer given.
    """

    def __init__(self, max_products: int = 60, transport: Transport | None = None) -> None:
        super().__init__(max_products=max_products)
        self.transport = transport
        self.failures = 0
        self.tallies: dict[str, OfferTally] = {}
        self._variant_of_cart: dict[str, str] = {}

    def connect(self, transport: Transport) -> None:
        self.transport = transport

    def incentive_for(self, cart_context: CartContext) -> Incentive | None:
        from .driver import StorefrontAPIError

        if self.transport is None:
            raise RuntimeError("OfferPolicy needs a transport: the driver connects it")
        session = cart_context.session
        payload = {
            "cart_id": _cart_id(cart_context),
            "session_id": session.session_id,
            "user_id": session.user_id,
            "anonymous_id": session.anonymous_id,
            "device": session.device,
            "source": session.utm_source,
            "channel": "onsite",
            "lines": [
                {"sku": line.sku, "quantity": line.quantity, "price": f"{line.price:.2f}"}
                for line in cart_context.lines
            ],
            "signals": dict(cart_context.signals),
        }
        if cart_context.at is not None:
            # The simulated moment, for an API that honours it as the recommendations API's `at` does.
            payload["at"] = cart_context.at.isoformat()
        try:
            answer = self.transport.post(OFFERS_DECIDE_PATH, payload)
        except (StorefrontAPIError, ValueError):  # an error status, or an answer that is not JSON
            self.failures += 1
            return None
        experiment = answer.get("experiment") or {}
        variant = str(experiment.get("variant") or "")
        self._variant_of_cart[payload["cart_id"]] = variant
        tally = self.tallies.setdefault(variant, OfferTally())
        tally.decisions += 1
        tally.shoppers.add(session.user_id or session.anonymous_id)
        offered = answer.get("incentive")
        if not offered or offered.get("kind") in (None, "", "none"):
            return None
        return Incentive(kind=offered["kind"], value=float(offered.get("value") or 0.0), code=offered.get("code") or "")

    def offer_truth_record(self, truth: OfferTruth) -> None:
        tally = self.tallies.setdefault(self._variant_of_cart.get(truth.cart_id, ""), OfferTally())
        tally.offers += 1
        tally.offers_would_have_bought += int(truth.would_have_bought)
        if truth.completed:
            tally.offer_orders += 1
            tally.offer_cost += truth.cost
            if truth.would_have_bought:
                tally.cost_given_away += truth.cost
        tally.true_incremental_margin += truth.incremental_margin


def _cart_id(cart_context: CartContext) -> str:
    # The session's cart id as its events carry it ("Product Added".cart_id); derived the same way.
    return cart_context.cart_id or cart_context.session.session_id
