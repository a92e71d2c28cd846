"""Turns the world's shoppers into Segment event sequences, one visit at a time.

No Django and no I/O: the driver hands in the day's catalog listing and sends what comes out. Every
random draw comes from one generator seeded from the world's seed and every id is derived from the
seed and a counter, so the same seed and catalog give the same event stream byte for byte.

With `WorldConfig.session_signals` a session's hesitation and price sensitivity, and the behaviour that reveals
them (price sorting, shipping and returns pages, dwell on the cart), draw from a generator of their own
(`World.session_latents`), so switching them on or off moves no other draw. For every incentive given the
stats keep the counterfactual truth (would the cart have completed without it under the same draw, its cost,
its true expected incremental margin), and a policy that records truth (`OfferTruthRecorder`) receives it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta

import numpy as np

from events.abandonment import session_signals

from .policy import (
    AttributingPolicy,
    CartContext,
    CartLine,
    CatalogListing,
    OfferTruth,
    OfferTruthRecorder,
    SessionContext,
    StorefrontPolicy,
)
from .world import CHANNELS, DEVICES, Incentive, SessionLatents, ShopperState, World, stable_id

_USER_AGENTS = {
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1",
    "desktop": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "tablet": "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Tablet Safari/604.1",
}
_LOCALES = ("en-US", "en-GB", "en-CA", "de-DE", "fr-FR")
_LOCALE_SHARES = (0.78, 0.08, 0.06, 0.04, 0.04)
# Impressions reported in a Product List Viewed event: what fits on the first screen.
LIST_EVENT_PRODUCTS = 12
# Latest session start (hours into the day), so a session never runs into the next day.
_LAST_START_HOUR = 22.5
# What loyalty points cost the merchant, per point (the simulator's truth for an offer's cost).
POINT_VALUE = 0.01


@dataclass
class SimulationStats:
    sessions: int = 0
    events: int = 0
    list_views: int = 0
    searches: int = 0
    product_views: int = 0
    carts: int = 0
    checkouts: int = 0
    orders: int = 0
    units: int = 0
    revenue: float = 0.0
    identified_mid_session: int = 0
    # Counterfactual truth of the incentives given (known only to the simulator): how many carts got an
    # offer, how many of those would have completed without it under the same random draw, what the offers
    # cost the merchant on completed orders, and the true expected incremental margin
    # Σ p_k·(margin − cost) − p_none·margin.
    offers: int = 0
    offers_would_have_bought: int = 0
    offer_orders: int = 0
    offer_cost: float = 0.0
    true_incremental_margin: float = 0.0
    offers_by_kind: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["revenue"] = round(self.revenue, 2)
        data["offer_cost"] = round(self.offer_cost, 2)
        data["true_incremental_margin"] = round(self.true_incremental_margin, 2)
        data["conversion"] = round(self.orders / self.sessions, 5) if self.sessions else 0.0
        data["cart_abandonment"] = round(1.0 - self.orders / self.carts, 5) if self.carts else 0.0
        data["aov"] = round(self.revenue / self.orders, 2) if self.orders else 0.0
        return data


class ShopSimulator:
    """Shoppers of a world visiting a storefront run by `policy`, day by day."""

    def __init__(self, *, world: World, policy: StorefrontPolicy) -> None:
        self.world = world
        self.policy = policy
        self.seed = world.config.seed
        self.rng = np.random.default_rng([self.seed, 2])
        self.state = ShopperState.initial(len(world.shoppers["user_id"]))
        self.stats = SimulationStats()
        self.locales = np.random.default_rng([self.seed, 3]).choice(
            len(_LOCALES), size=len(world.shoppers["user_id"]), p=_LOCALE_SHARES
        )
        self._message_counter = 0
        self._anonymous_ids: dict[tuple[int, str], str] = {}

    def day_start(self, day: int) -> datetime:
        return datetime.combine(self.world.config.start_date + timedelta(days=day), time(0), tzinfo=UTC)

    def day_events(self, day: int, listing: CatalogListing) -> list[dict]:
        """Every event of one simulated day, sessions in order of their start time."""
        visitors = self.world.visits_for_day(day, self.state, self.rng)
        s = self.world.shoppers
        hours = (
            s["preferred_hour"][visitors] + self.rng.normal(0.0, 1.0, size=len(visitors)) * s["hour_spread"][visitors]
        )
        hours = np.mod(hours, 24.0)
        # Reflect late draws below the cut-off rather than clip them: clipping stacked every night owl
        # (and a shopper's several sessions of one day) onto the same instant, 22:30:00.
        late = hours > _LAST_START_HOUR
        hours[late] = 2 * _LAST_START_HOUR - hours[late]
        order = np.argsort(hours, kind="stable")
        midnight = self.day_start(day)
        events: list[dict] = []
        for position in order:
            start = midnight + timedelta(seconds=float(hours[position]) * 3600.0)
            events.extend(self.session_events(int(visitors[position]), start, listing))
        self.stats.events += len(events)
        return events

    def _anonymous_id(self, shopper: int, device: str) -> str:
        key = (shopper, device)
        if key not in self._anonymous_ids:
            self._anonymous_ids[key] = self.world.anonymous_id(shopper, device)
        return self._anonymous_ids[key]

    def session_events(self, shopper: int, start: datetime, listing: CatalogListing) -> list[dict]:
        world, config, rng, stats = self.world, self.world.config, self.rng, self.stats
        shoppers = world.shoppers
        device = DEVICES[int(shoppers["device"][shopper])]
        if rng.random() < config.other_device_prob:
            device = DEVICES[int(rng.choice(3, p=np.asarray(config.device_shares) / sum(config.device_shares)))]
        anonymous_id = self._anonymous_id(shopper, device)
        registered = bool(shoppers["registered"][shopper])
        user_id = shoppers["user_id"][shopper]
        logged_in = registered and rng.random() < config.logged_in_at_start_prob
        will_log_in = registered and not logged_in and rng.random() < config.login_mid_session_prob
        source, medium, campaign = CHANNELS[int(shoppers["channel"][shopper])] if rng.random() < 0.6 else CHANNELS[0]
        context = {
            "device": {"type": device},
            "locale": _LOCALES[int(self.locales[shopper])],
            "userAgent": _USER_AGENTS[device],
        }
        if source:
            context["campaign"] = {"source": source, "medium": medium, "name": campaign}
        session_number = stats.sessions
        session_id = stable_id(self.seed, "session", session_number)
        stats.sessions += 1
        latents: SessionLatents | None = None
        latent_rng: np.random.Generator | None = None
        if config.session_signals:
            latents, latent_rng = world.session_latents(session_number)
        events: list[dict] = []
        clock = [start]

        def emit(
            kind: str,
            name: str | None,
            properties: dict,
            *,
            gap: float | None = 30.0,
            traits: dict | None = None,
            seconds: float | None = None,
        ) -> None:
            event = {
                "type": kind,
                "messageId": stable_id(self.seed, "msg", self._message_counter),
                "anonymousId": anonymous_id,
                "sessionId": session_id,
                "timestamp": clock[0].isoformat(timespec="milliseconds"),
                "properties": properties,
                "context": context,
            }
            if name is not None:
                event["event" if kind == "track" else "name"] = name
            if logged_in:
                event["userId"] = user_id
            if traits is not None:
                event["traits"] = traits
            self._message_counter += 1
            events.append(event)
            # gap=None: a fixed second and no random draw, so an event only some policies send (a click on
            # a recommended product) leaves every other draw of the session as it would have been.
            # seconds=...: a wait drawn by the caller (session signals draw from their own generator).
            if seconds is not None:
                clock[0] += timedelta(seconds=seconds)
            else:
                clock[0] += timedelta(seconds=1.0 if gap is None else 1.0 + float(rng.exponential(gap)))

        def pause(seconds: float) -> None:
            clock[0] += timedelta(seconds=seconds)

        def log_in() -> None:
            nonlocal logged_in
            logged_in = True
            stats.identified_mid_session += 1
            emit(
                "identify",
                None,
                {},
                gap=10.0,
                traits={
                    "email": f"{user_id}@shoppers.example",
                    "marketing_consent": bool(shoppers["marketing_consent"][shopper]),
                    "personalization_opt_out": bool(shoppers["personalization_opt_out"][shopper]),
                },
            )

        emit("page", "Home", {"path": "/", "title": "Home"}, gap=15.0)

        category = world.choose_category(shopper, float(rng.random()))
        category_path = world.categories[category]
        query = None
        if rng.random() < config.search_share:
            query = category_path.split(" > ")[-1].lower()
        session_context = SessionContext(
            session_id=session_id,
            anonymous_id=anonymous_id,
            user_id=user_id if logged_in else None,
            device=device,
            started_at=start,
            category_path=category_path,
            search_query=query,
            utm_source=source,
        )
        shown = [
            listing.by_sku[sku]
            for sku in self.policy.products_to_show(session_context, listing)
            if sku in listing.by_sku and sku in world.product_index_by_sku
        ]
        product_idx = np.array([world.product_index_by_sku[product["sku"]] for product in shown], dtype=np.int64)
        prices = np.array([self.policy.price_of(product) for product in shown], dtype=float)

        attributing = isinstance(self.policy, AttributingPolicy)

        def recommendation_of(position: int) -> dict:
            """`{"recommendation_id": ...}` if the shopper opens this product from a recommended list."""
            if not attributing:
                return {}
            recommendation_id = self.policy.recommendation_id_for(session_context, shown[position]["sku"])
            return {"recommendation_id": recommendation_id} if recommendation_id else {}

        def open_product(position: int, *, gap: float) -> None:
            recommendation = recommendation_of(position)
            if recommendation:
                emit("track", "Product Clicked", product_properties(position, **recommendation), gap=None)
            emit("track", "Product Viewed", product_properties(position), gap=gap)
            stats.product_views += 1

        def product_properties(position: int, **extra: object) -> dict:
            product = shown[position]
            return {
                "product_id": product.get("external_id") or product["sku"],
                "sku": product["sku"],
                "name": product.get("title", ""),
                "brand": product.get("brand", ""),
                "category": category_path,
                "price": round(float(prices[position]), 2),
                "currency": config.currency,
                "position": position + 1,
                **extra,
            }

        impressions = [
            {
                "product_id": p.get("external_id") or p["sku"],
                "sku": p["sku"],
                "price": round(float(prices[k]), 2),
                "position": k + 1,
            }
            for k, p in enumerate(shown[:LIST_EVENT_PRODUCTS])
        ]
        if query is not None:
            stats.searches += 1
            emit("track", "Products Searched", {"query": query}, gap=8.0)
            emit(
                "track",
                "Product List Viewed",
                {"list_id": "search", "category": category_path, "products": impressions},
            )
        else:
            emit(
                "track",
                "Product List Viewed",
                {"list_id": category_path, "category": category_path, "products": impressions},
            )
        stats.list_views += 1
        if latent_rng is not None and latent_rng.random() < (0.8 if latents.price_sensitive else 0.08):
            emit(
                "track",
                "Product List Filtered",
                {"list_id": category_path, "category": category_path, "sorts": [{"type": "price", "value": "asc"}]},
                seconds=1.0 + float(latent_rng.exponential(6.0)),
            )
        if will_log_in and rng.random() < 0.4:
            will_log_in = False
            log_in()
        if len(shown) == 0:
            return events

        probabilities = world.purchase_probabilities(shopper, product_idx, prices)[0]
        choice = int(np.searchsorted(np.cumsum(probabilities), rng.random() * probabilities.sum()))
        choice = min(choice, len(shown))
        bought = choice < len(shown)

        # Which products the shopper opens: attractive ones first, and always the one they buy.
        attraction = np.log(np.maximum(probabilities[:-1], 1e-300))
        n_views = min(1 + int(rng.binomial(3, 0.3)), len(shown))
        viewed = list(np.argsort(-(attraction + rng.gumbel(size=len(shown))), kind="stable")[:n_views])
        if bought:
            if choice in viewed:
                viewed.remove(choice)
            else:
                viewed.pop()
        for position in viewed:
            open_product(int(position), gap=60.0)

        cart: list[tuple[int, int]] = []
        cart_id = stable_id(self.seed, "cart", session_number)
        if bought:
            open_product(choice, gap=45.0)
            quantity = 2 if rng.random() < config.quantity_two_prob else 1
            cart.append((choice, quantity))
            emit(
                "track",
                "Product Added",
                product_properties(choice, quantity=quantity, cart_id=cart_id, **recommendation_of(choice)),
                gap=20.0,
            )
            if len(shown) > 1 and rng.random() < config.second_item_prob:
                weights = probabilities[:-1].copy()
                weights[choice] = 0.0
                second = int(np.searchsorted(np.cumsum(weights), rng.random() * weights.sum()))
                second = min(second, len(shown) - 1)
                open_product(second, gap=40.0)
                cart.append((second, 1))
                emit(
                    "track",
                    "Product Added",
                    product_properties(second, quantity=1, cart_id=cart_id, **recommendation_of(second)),
                    gap=20.0,
                )

        if cart:
            stats.carts += 1
            if rng.random() < config.removal_prob:
                position, quantity = cart.pop()
                emit("track", "Product Removed", product_properties(position, quantity=quantity, cart_id=cart_id))
        if cart:
            self._checkout(
                shopper=shopper,
                session_context=session_context,
                cart=cart,
                cart_id=cart_id,
                prices=prices,
                shown=shown,
                emit=emit,
                log_in=log_in if will_log_in else None,
                device=device,
                product_properties=product_properties,
                events=events,
                pause=pause,
                latents=latents,
                latent_rng=latent_rng,
            )
        elif will_log_in and rng.random() < 0.3:
            log_in()
        return events

    def _checkout(
        self,
        *,
        shopper: int,
        session_context: SessionContext,
        cart: list[tuple[int, int]],
        cart_id: str,
        prices: np.ndarray,
        shown: list[dict],
        emit,
        log_in,
        device: str,
        product_properties,
        events: list[dict],
        pause,
        latents: SessionLatents | None = None,
        latent_rng: np.random.Generator | None = None,
    ) -> None:
        world, config, rng, stats = self.world, self.world.config, self.rng, self.stats
        lines = [product_properties(position, quantity=quantity) for position, quantity in cart]
        subtotal = round(sum(float(prices[p]) * q for p, q in cart), 2)
        if latents is not None:
            latents = self._reveal_hesitation(
                latents=latents, latent_rng=latent_rng, subtotal=subtotal, emit=emit, pause=pause
            )
        emit("track", "Cart Viewed", {"cart_id": cart_id, "products": lines}, gap=25.0)
        prior_orders = int(self.state.orders[shopper])
        incentive = self.policy.incentive_for(
            CartContext(
                session=session_context,
                lines=tuple(CartLine(sku=shown[p]["sku"], price=float(prices[p]), quantity=q) for p, q in cart),
                prior_orders=prior_orders,
                signals=_signals_before(events, at=events[-1]["timestamp"]),
                cart_id=cart_id,
                at=datetime.fromisoformat(events[-1]["timestamp"]),
            )
        )
        discount, coupon = 0.0, ""
        if incentive is not None:
            coupon = incentive.code or incentive.kind.upper()
            if incentive.kind in ("percent_5", "percent_10"):
                percent = incentive.value or (5.0 if incentive.kind == "percent_5" else 10.0)
                discount = round(subtotal * percent / 100.0, 2)
            if incentive.kind == "points":
                emit(
                    "track",
                    "Promotion Viewed",
                    {"promotion_id": coupon, "name": f"{incentive.value:g} points"},
                    gap=5.0,
                )
            else:
                emit(
                    "track",
                    "Coupon Applied",
                    {"cart_id": cart_id, "coupon_id": coupon, "coupon_name": coupon, "discount": discount},
                    gap=5.0,
                )
        shipping = world.shipping_for(subtotal - discount, incentive)
        tax = round((subtotal - discount) * config.tax_rate, 2)
        total = round(subtotal - discount + shipping + tax, 2)
        draw = rng.random()
        p_complete = world.checkout_probability(
            cart_value=subtotal - discount,
            shipping=shipping,
            incentive=incentive,
            device=device,
            prior_orders=prior_orders,
            latents=latents,
        )
        completes = draw < p_complete
        if incentive is not None:
            p_none = world.checkout_probability(
                cart_value=subtotal,
                shipping=world.shipping_for(subtotal, None),
                incentive=None,
                device=device,
                prior_orders=prior_orders,
                latents=latents,
            )
            margin = sum(
                (float(prices[p]) - float(world.unit_cost[world.product_index_by_sku[shown[p]["sku"]]])) * q
                for p, q in cart
            )
            self._offer_truth_record(
                OfferTruth(
                    cart_id=cart_id,
                    kind=incentive.kind,
                    would_have_bought=bool(draw < p_none),
                    completed=bool(completes),
                    cost=self._offer_cost(incentive, subtotal=subtotal, discount=discount),
                    p_offer=p_complete,
                    p_none=p_none,
                    margin=margin,
                )
            )
        if not completes and rng.random() >= config.checkout_started_share_of_abandoners:
            return
        if log_in is not None:
            log_in()
        order_id = f"SIM{self.seed}-{stats.orders + 1:07d}" if completes else None
        checkout = {
            "checkout_id": cart_id,
            "value": subtotal,
            "revenue": round(subtotal - discount, 2),
            "shipping": shipping,
            "tax": tax,
            "discount": discount,
            "coupon": coupon,
            "currency": config.currency,
            "products": lines,
        }
        emit("track", "Checkout Started", checkout, gap=90.0)
        stats.checkouts += 1
        if not completes:
            return
        emit(
            "track",
            "Order Completed",
            {**checkout, "order_id": order_id, "subtotal": subtotal, "total": total},
            gap=5.0,
        )
        stats.orders += 1
        stats.units += sum(q for _, q in cart)
        stats.revenue += total
        world.record_order(self.state, shopper)

    def _reveal_hesitation(
        self, *, latents: SessionLatents, latent_rng: np.random.Generator, subtotal: float, emit, pause
    ) -> SessionLatents:
        """Behaviour between the cart and "Cart Viewed" that reveals the latents: shipping and returns pages
        (Poisson counts rising with hesitation; shipping more often below the free-shipping threshold) and a
        longer dwell on the cart for hesitant shoppers. Every draw comes from the session's own generator."""
        hesitation = latents.hesitation
        below_threshold = subtotal < self.world.config.free_shipping_threshold
        shipping_views = int(latent_rng.poisson(0.3 * np.exp(0.8 * hesitation) * (2.0 if below_threshold else 1.0)))
        returns_views = int(latent_rng.poisson(0.2 * np.exp(0.8 * hesitation)))
        pages = [("/pages/shipping", "Shipping")] * shipping_views + [("/pages/returns", "Returns")] * returns_views
        for index in latent_rng.permutation(len(pages)):
            path, title = pages[int(index)]
            emit("page", title, {"path": path, "title": title}, seconds=1.0 + float(latent_rng.exponential(25.0)))
        pause(float(latent_rng.exponential(20.0 * np.exp(0.8 * hesitation))))
        return dataclasses.replace(latents, shipping_page_views=shipping_views)

    def _offer_cost(self, incentive: Incentive, *, subtotal: float, discount: float) -> float:
        """What the offer costs the merchant if the order completes."""
        if incentive.kind == "free_shipping":
            return float(self.world.shipping_for(subtotal, None))
        if incentive.kind == "points":
            return float(incentive.value) * POINT_VALUE
        return float(discount)

    def _offer_truth_record(self, truth: OfferTruth) -> None:
        stats = self.stats
        stats.offers += 1
        stats.offers_by_kind[truth.kind] = stats.offers_by_kind.get(truth.kind, 0) + 1
        stats.offers_would_have_bought += int(truth.would_have_bought)
        if truth.completed:
            stats.offer_orders += 1
            stats.offer_cost += truth.cost
        stats.true_incremental_margin += truth.incremental_margin
        if isinstance(self.policy, OfferTruthRecorder):
            self.policy.offer_truth_record(truth)


def _signals_before(events: list[dict], *, at: str) -> dict[str, float]:
    """The session's SIGNAL_NAMES counts from the events strictly before `at`, as the event log gives them."""
    moment = datetime.fromisoformat(at)
    rows = []
    for event in events:
        timestamp = datetime.fromisoformat(event["timestamp"])
        if timestamp >= moment:
            continue
        name = "Page Viewed" if event["type"] == "page" else event.get("event")
        rows.append((name, timestamp, event.get("properties")))
    return session_signals(rows, at=moment)
