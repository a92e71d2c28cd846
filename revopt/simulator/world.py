"""The synthetic shop's ground truth: products, shoppers and the true behaviour that links them.

Pure numpy, no Django: later issues load a stored world with `World.from_ground_truth` to compute
oracle prices, oracle policies and regret, so everything a simulated shopper does is a function of
the arrays here plus a seeded random stream.

The demand model is a multinomial logit over the products a shopper is shown plus an outside option:

    u_ij = taste_i · latent_j / sqrt(d) + quality_j + brand_effect_j
           + price_coef_j · sensitivity_i · log(price_j / ref_price_j) - position_decay · log(1 + rank)

so the own-price elasticity of shopper i's purchase probability is price_coef_j · sensitivity_i · (1 - P_ij).
`price_coef` is calibrated so that the aggregate elasticity over the shopper population at reference
prices equals a target drawn per product (category mean + noise, clipped into [-3, -0.5]).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import date

import numpy as np

DEVICES = ("mobile", "desktop", "tablet")
CHANNELS = (
    ("", "", ""),  # direct: no campaign
    ("google", "cpc", "search-brand"),
    ("google", "organic", ""),
    ("newsletter", "email", "weekly-picks"),
    ("facebook", "paid_social", "retargeting"),
    ("instagram", "social", "creators"),
)
INCENTIVE_KINDS = ("none", "free_shipping", "percent_5", "percent_10", "points")
ELASTICITY_BOUNDS = (-3.0, -0.5)

# Names only make the demo shop readable; nothing in the model depends on them.
_CATEGORY_NAMES = (
    ("Outdoor", "Tents"),
    ("Outdoor", "Backpacks"),
    ("Outdoor", "Sleeping Bags"),
    ("Apparel", "Jackets"),
    ("Apparel", "Base Layers"),
    ("Footwear", "Hiking Boots"),
    ("Footwear", "Trail Runners"),
    ("Kitchen", "Camp Cookware"),
    ("Kitchen", "Bottles & Mugs"),
    ("Electronics", "Headlamps"),
    ("Electronics", "GPS & Watches"),
    ("Accessories", "Sunglasses"),
    ("Accessories", "Hats & Gloves"),
    ("Fitness", "Climbing Gear"),
    ("Fitness", "Yoga & Mats"),
    ("Travel", "Luggage"),
)
_BRAND_SYLLABLES = (
    "Al",
    "Bor",
    "Cas",
    "Del",
    "Eri",
    "Fen",
    "Gar",
    "Hal",
    "Iv",
    "Jor",
    "Kes",
    "Lum",
    "Mar",
    "Nor",
    "Or",
    "Pel",
)
_BRAND_ENDINGS = ("pine", "ridge", "vale", "peak", "wood", "stone", "field", "crest")
_ADJECTIVES = (
    "Classic",
    "Ultralight",
    "Trail",
    "Summit",
    "Everyday",
    "Pro",
    "Compact",
    "Alpine",
    "Urban",
    "Expedition",
)
_COLORS = ("black", "navy", "olive", "red", "grey", "sand", "teal", "orange")
_MATERIALS = ("nylon", "wool", "cotton", "polyester", "aluminium", "leather", "steel", "recycled")
_STYLES = ("technical", "casual", "minimal", "rugged", "sporty", "premium")
# The namespace of every id the simulator derives (message ids, order ids, anonymous ids).
ID_NAMESPACE = uuid.UUID("5b0f2d7e-1d6a-4c55-9d0e-2f4f3a6e9c11")


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 42
    n_sessions: int = 10_000
    days: int = 60
    # The first simulated day; the caller picks it so that the last day is not in the future.
    start_date: date | None = None
    n_categories: int = 12
    n_products: int = 400
    # Defaults to a quarter of the sessions, so an average shopper visits about four times.
    n_shoppers: int | None = None
    latent_dim: int = 8
    # Share of sessions that add something to the cart, share of carts abandoned, mean order total.
    target_cart_rate: float = 0.10
    target_abandonment: float = 0.70
    target_aov: float = 80.0
    registered_share: float = 0.45
    device_shares: tuple[float, float, float] = (0.60, 0.35, 0.05)
    currency: str = "USD"
    free_shipping_threshold: float = 75.0
    shipping_fee: float = 6.95
    tax_rate: float = 0.07
    # Products the default storefront shows on one category page.
    listing_size: int = 60
    # Shopper behaviour inside a session.
    second_item_prob: float = 0.25
    quantity_two_prob: float = 0.10
    checkout_started_share_of_abandoners: float = 0.5
    removal_prob: float = 0.12
    search_share: float = 0.3
    logged_in_at_start_prob: float = 0.55
    login_mid_session_prob: float = 0.6
    other_device_prob: float = 0.2
    # Repeat purchase and churn: an order multiplies the shopper's visit rate (up to a cap).
    repeat_visit_lift: float = 1.5
    repeat_visit_cap: float = 4.0
    existing_shopper_share: float = 0.35
    # Funnel realism: a latent hesitation per session that lowers checkout, shows in behaviour (shipping and
    # returns pages, price sorting, dwell) and changes how much each incentive helps. Off by default so
    # earlier evaluations keep their numbers.
    session_signals: bool = False

    @property
    def shopper_count(self) -> int:
        return self.n_shoppers if self.n_shoppers is not None else max(50, self.n_sessions // 4)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["start_date"] = self.start_date.isoformat() if self.start_date else None
        data["device_shares"] = list(self.device_shares)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> WorldConfig:
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        if values.get("start_date"):
            values["start_date"] = date.fromisoformat(values["start_date"])
        if "device_shares" in values:
            values["device_shares"] = tuple(values["device_shares"])
        return cls(**values)


@dataclass(frozen=True)
class Incentive:
    """An offer made to a shopper with a cart. `value` is the percentage or the points awarded."""

    kind: str
    value: float = 0.0
    code: str = ""

    def __post_init__(self) -> None:
        if self.kind not in INCENTIVE_KINDS:
            raise ValueError(f"unknown incentive kind {self.kind!r}")


@dataclass
class Coefficients:
    """The true model's scalar coefficients (the per-product and per-shopper ones live in arrays)."""

    outside_utility: float = 0.0
    taste_weight: float = 1.0
    category_taste_weight: float = 1.5
    position_decay: float = 0.25
    # Checkout completion: logit = intercept + value * log(cart/aov) + shipping paid + incentive + device + history.
    checkout_intercept: float = 0.0
    checkout_value: float = -0.35
    checkout_shipping_paid: float = -0.6
    checkout_incentive: dict[str, float] = field(
        default_factory=lambda: {
            "none": 0.0,
            "free_shipping": 0.15,
            "percent_5": 0.25,
            "percent_10": 0.45,
            "points": 0.15,
        }
    )
    checkout_device: dict[str, float] = field(default_factory=lambda: {"mobile": -0.25, "desktop": 0.3, "tablet": 0.0})
    checkout_history: float = 0.35
    price_scale: float = 1.0
    # Funnel realism (WorldConfig.session_signals): see `SessionLatents` for how they enter the checkout logit.
    checkout_hesitation: float = -1.0
    price_sensitive_intercept: float = -0.5
    price_sensitive_hesitation: float = 1.0
    percent_effect_price_sensitive: float = 2.2
    percent_effect_other: float = 0.4
    free_shipping_looked_effect: float = 0.6
    points_effect_returning: float = 2.0
    points_effect_new: float = 0.3


@dataclass(frozen=True)
class SessionLatents:
    """What a shopper brings to one session's checkout (WorldConfig.session_signals), and the true rule
    of how incentives work on them.

    hesitation h ~ N(0, 1); price_sensitive ~ Bernoulli(sigmoid(a + b·h)), so hesitant shoppers are more
    often price sensitive. The checkout logit gains `checkout_hesitation · h`, and each incentive's effect
    `checkout_incentive[kind]` is scaled per shopper:
      percent_5 / percent_10: × percent_effect_price_sensitive (2.2) for price-sensitive shoppers,
                              × percent_effect_other (0.4) for the others;
      free_shipping:          removes the shipping-paid term as before, plus free_shipping_looked_effect (0.6)
                              when shipping would have been paid and the shopper looked at the shipping page;
      points:                 × points_effect_returning (2.0) with prior orders, × points_effect_new (0.3) without.
    """

    hesitation: float = 0.0
    price_sensitive: bool = False
    shipping_page_views: int = 0


@dataclass
class ShopperState:
    """What changes while the shop runs: who has churned, who has bought, how often they return."""

    alive: np.ndarray
    orders: np.ndarray
    visit_lift: np.ndarray

    @classmethod
    def initial(cls, n_shoppers: int) -> ShopperState:
        return cls(
            alive=np.ones(n_shoppers, dtype=bool),
            orders=np.zeros(n_shoppers, dtype=np.int64),
            visit_lift=np.ones(n_shoppers),
        )


def stable_id(seed: int, kind: str, *parts: object) -> str:
    """A deterministic id: the same seed and counter always give the same message/order/device id."""
    return str(uuid.uuid5(ID_NAMESPACE, ":".join([str(seed), kind, *map(str, parts)])))


def _softmax_rows(utilities: np.ndarray) -> np.ndarray:
    shifted = utilities - utilities.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-x))


class World:
    """Products, shoppers and coefficients of one synthetic shop. Build with `generate` or `from_ground_truth`."""

    def __init__(
        self,
        *,
        config: WorldConfig,
        categories: list[str],
        products: dict,
        shoppers: dict,
        category_centroids: np.ndarray,
        category_popularity: np.ndarray,
        brand_effects: dict[str, float],
        coefficients: Coefficients,
    ) -> None:
        self.config = config
        self.categories = categories
        self.category_centroids = category_centroids
        self.category_popularity = category_popularity
        self.brand_effects = brand_effects
        self.coefficients = coefficients
        self.products = products
        self.shoppers = shoppers
        self.product_index_by_sku = {sku: index for index, sku in enumerate(products["sku"])}
        self._sessions_per_day: np.ndarray | None = None
        self._refresh_derived()

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def generate(cls, config: WorldConfig) -> World:
        if config.start_date is None:
            raise ValueError("WorldConfig.start_date is required (pick it so the last day is not in the future)")
        if not 1 <= config.n_categories <= len(_CATEGORY_NAMES):
            raise ValueError(f"n_categories must be between 1 and {len(_CATEGORY_NAMES)}")
        if config.n_products < config.n_categories:
            raise ValueError("n_products must be at least n_categories")
        rng = np.random.default_rng([config.seed, 0])
        d = config.latent_dim
        n_cat, n_prod, n_shop = config.n_categories, config.n_products, config.shopper_count

        categories = [f"{top} > {leaf}" for top, leaf in _CATEGORY_NAMES[:n_cat]]
        centroids = rng.normal(0.0, 1.0, size=(n_cat, d))
        popularity = rng.dirichlet(np.full(n_cat, 8.0))

        # Every category gets at least one product; the rest follow the category's popularity.
        category = np.concatenate([np.arange(n_cat), rng.choice(n_cat, size=n_prod - n_cat, p=popularity)])
        category = np.sort(rng.permutation(category), kind="stable")
        latent = centroids[category] + rng.normal(0.0, 0.7, size=(n_prod, d))
        quality = rng.normal(0.0, 0.6, size=n_prod)

        brands_per_category = [
            [
                _BRAND_SYLLABLES[int(rng.integers(len(_BRAND_SYLLABLES)))]
                + _BRAND_ENDINGS[int(rng.integers(len(_BRAND_ENDINGS)))]
                for _ in range(int(rng.integers(3, 7)))
            ]
            for _ in range(n_cat)
        ]
        brand = [brands_per_category[c][int(rng.integers(len(brands_per_category[c])))] for c in category]
        brand_effects = {name: float(rng.normal(0.0, 0.3)) for name in sorted(set(brand))}

        rating = np.clip(np.round(3.9 + 0.6 * quality + rng.normal(0.0, 0.3, size=n_prod), 1), 1.0, 5.0)
        rating_count = rng.poisson(np.exp(rng.normal(3.0, 1.0, size=n_prod)))

        # Log-normal prices per category; the overall level is rescaled below so the AOV lands on target.
        category_log_price = rng.normal(math.log(40.0), 0.55, size=n_cat)
        ref_price = np.exp(category_log_price[category] + rng.normal(0.0, 0.35, size=n_prod))
        # The shop's own list price sits near, not at, the shoppers' reference price.
        list_price_ratio = np.clip(np.exp(rng.normal(0.0, 0.06, size=n_prod)), 0.88, 1.12)
        cost_share = rng.uniform(0.40, 0.70, size=n_prod)
        inventory = np.where(rng.random(n_prod) < 0.05, 0, np.round(np.exp(rng.normal(4.0, 0.9, size=n_prod))) + 1)

        category_elasticity = rng.uniform(-2.3, -1.1, size=n_cat)
        # Clipped a little inside the bounds so that at list prices, not only at reference prices, it stays in range.
        target_elasticity = np.clip(category_elasticity[category] + rng.normal(0.0, 0.45, size=n_prod), -2.8, -0.6)

        leaf_names = [path.split(" > ")[1].rstrip("s") for path in categories]
        adjectives = [_ADJECTIVES[int(rng.integers(len(_ADJECTIVES)))] for _ in range(n_prod)]
        titles = [f"{brand[j]} {adjectives[j]} {leaf_names[category[j]]}" for j in range(n_prod)]
        # Visible attributes are noisy readings of the latent vector, as on a real product page.
        color = np.argmax(latent[:, :4] + rng.normal(0.0, 0.5, size=(n_prod, 4)), axis=1) * 2 + (latent[:, 4] > 0)
        material = np.abs(np.floor(latent[:, 5] * 2.0 + 4)).astype(int) % len(_MATERIALS)
        style = np.abs(np.floor(latent[:, 6] * 1.5 + 3)).astype(int) % len(_STYLES)

        products = {
            "sku": [f"SIM{config.seed}-{j + 1:04d}" for j in range(n_prod)],
            "title": titles,
            "brand": brand,
            "category": category.astype(np.int64),
            "latent": latent,
            "quality": quality,
            "rating": rating,
            "rating_count": rating_count.astype(np.int64),
            "ref_price": ref_price,
            "list_price_ratio": list_price_ratio,
            "cost_share": cost_share,
            "inventory": inventory.astype(np.int64),
            "target_elasticity": target_elasticity,
            "price_coef": target_elasticity.copy(),
            "color": [_COLORS[int(c) % len(_COLORS)] for c in color],
            "material": [_MATERIALS[int(m)] for m in material],
            "style": [_STYLES[int(s)] for s in style],
        }

        device_primary = rng.choice(3, size=n_shop, p=np.asarray(config.device_shares) / sum(config.device_shares))
        # Time-of-day habits: mobile shoppers lean to evenings, desktop shoppers to office hours.
        habit_peaks = np.array([8.5, 12.5, 20.5])
        habit_weights = np.array([[0.2, 0.2, 0.6], [0.3, 0.45, 0.25], [0.25, 0.15, 0.6]])
        peak = np.array([rng.choice(3, p=habit_weights[dev]) for dev in device_primary])
        registered = rng.random(n_shop) < config.registered_share
        shoppers = {
            "taste": rng.normal(0.0, 1.0, size=(n_shop, d)),
            "price_sensitivity": np.exp(rng.normal(0.0, 0.3, size=n_shop) - 0.045),
            "device": device_primary.astype(np.int64),
            "preferred_hour": habit_peaks[peak] + rng.normal(0.0, 1.0, size=n_shop),
            "hour_spread": rng.uniform(0.8, 2.5, size=n_shop),
            # Sessions per week when active; rescaled below so the expected total matches n_sessions.
            "visit_rate": rng.gamma(0.9, 1.0, size=n_shop) + 0.05,
            "weekly_churn": rng.beta(2.0, 18.0, size=n_shop),
            "registered": registered,
            "acquisition_day": np.where(
                rng.random(n_shop) < config.existing_shopper_share, 0, rng.integers(0, config.days, size=n_shop)
            ).astype(np.int64),
            "channel": rng.choice(len(CHANNELS), size=n_shop, p=[0.35, 0.2, 0.2, 0.1, 0.1, 0.05]).astype(np.int64),
            "user_id": [f"u{config.seed}-{i + 1:06d}" if registered[i] else None for i in range(n_shop)],
            "marketing_consent": rng.random(n_shop) < 0.6,
            "personalization_opt_out": rng.random(n_shop) < 0.03,
        }
        expected_weeks = _expected_active_weeks(shoppers, config.days)
        shoppers["visit_rate"] *= config.n_sessions / float((shoppers["visit_rate"] * expected_weeks).sum())

        world = cls(
            config=config,
            categories=categories,
            products=products,
            shoppers=shoppers,
            category_centroids=centroids,
            category_popularity=popularity,
            brand_effects=brand_effects,
            coefficients=Coefficients(),
        )
        world._calibrate(np.random.default_rng([config.seed, 1]))
        return world

    def _refresh_derived(self) -> None:
        p = self.products
        scale = self.coefficients.price_scale
        p["ref_price_scaled"] = p["ref_price"] * scale
        self.list_price = np.round(p["ref_price_scaled"] * p["list_price_ratio"]) - 0.01
        self.list_price = np.maximum(self.list_price, 0.99)
        self.unit_cost = np.round(self.list_price * p["cost_share"], 2)
        self.brand_effect = np.array([self.brand_effects[b] for b in p["brand"]])
        self.product_fixed_utility = p["quality"] + self.brand_effect
        self.products_by_category = [np.flatnonzero(p["category"] == c) for c in range(len(self.categories))]
        category_utility = self.coefficients.category_taste_weight * (
            self.shoppers["taste"] @ self.category_centroids.T
        ) / math.sqrt(self.config.latent_dim) + np.log(self.category_popularity)
        self.category_choice = _softmax_rows(category_utility)
        self._category_cdf = np.cumsum(self.category_choice, axis=1)

    # --- the demand model ----------------------------------------------------------------------
    @property
    def ref_price(self) -> np.ndarray:
        return self.products["ref_price_scaled"]

    def utilities(self, shoppers: np.ndarray | int, product_idx: np.ndarray, prices: np.ndarray) -> np.ndarray:
        """Deterministic utility of each shown product (in display order) for each shopper; shape (S, K)."""
        shoppers = np.atleast_1d(shoppers)
        product_idx = np.asarray(product_idx, dtype=np.int64)
        taste = self.shoppers["taste"][shoppers]
        latent = self.products["latent"][product_idx]
        match = (taste @ latent.T) * (self.coefficients.taste_weight / math.sqrt(self.config.latent_dim))
        log_price_ratio = np.log(np.asarray(prices, dtype=float) / self.ref_price[product_idx])
        price_term = (
            self.shoppers["price_sensitivity"][shoppers][:, None]
            * (self.products["price_coef"][product_idx] * log_price_ratio)[None, :]
        )
        position_term = -self.coefficients.position_decay * np.log1p(np.arange(len(product_idx)))
        return match + (self.product_fixed_utility[product_idx] + position_term)[None, :] + price_term

    def purchase_probabilities(
        self, shoppers: np.ndarray | int, product_idx: np.ndarray, prices: np.ndarray
    ) -> np.ndarray:
        """True MNL choice probabilities; the last column is the outside option (buy nothing). Shape (S, K + 1)."""
        utility = self.utilities(shoppers, product_idx, prices)
        outside = np.full((utility.shape[0], 1), self.coefficients.outside_utility)
        return _softmax_rows(np.hstack([utility, outside]))

    def checkout_probability(
        self,
        *,
        cart_value: float,
        shipping: float,
        incentive: Incentive | None,
        device: str,
        prior_orders: int,
        latents: SessionLatents | None = None,
    ) -> float:
        """True probability that a shopper with this cart completes the order (1 - abandonment).

        Without `latents` this is the model without session signals; with them, the hesitation term and the
        heterogeneous incentive effects of `SessionLatents` apply.
        """
        kind = incentive.kind if incentive is not None else "none"
        c = self.coefficients
        incentive_effect = c.checkout_incentive[kind]
        hesitation_effect = 0.0
        if latents is not None:
            hesitation_effect = c.checkout_hesitation * latents.hesitation
            if kind in ("percent_5", "percent_10"):
                scale = c.percent_effect_price_sensitive if latents.price_sensitive else c.percent_effect_other
                incentive_effect *= scale
            elif kind == "free_shipping":
                would_pay = cart_value < self.config.free_shipping_threshold
                if would_pay and latents.shipping_page_views > 0:
                    incentive_effect += c.free_shipping_looked_effect
            elif kind == "points":
                incentive_effect *= c.points_effect_returning if prior_orders > 0 else c.points_effect_new
        logit = self._checkout_logit(
            cart_value=np.asarray(cart_value, dtype=float),
            shipping_paid=np.asarray(shipping > 0),
            incentive_effect=incentive_effect + hesitation_effect,
            device_effect=c.checkout_device[device],
            prior_orders=np.asarray(prior_orders),
        )
        return float(_sigmoid(logit))

    def session_latents(self, session_number: int) -> tuple[SessionLatents, np.random.Generator]:
        """A session's hesitation and price sensitivity, and the generator its revealing behaviour draws from.

        Seeded from (seed, session number) apart from the session stream, so switching session signals on
        or off never moves any other draw.
        """
        rng = np.random.default_rng([self.config.seed, 11, session_number])
        hesitation = float(rng.normal())
        c = self.coefficients
        price_sensitive = bool(
            rng.random() < _sigmoid(c.price_sensitive_intercept + c.price_sensitive_hesitation * hesitation)
        )
        return SessionLatents(hesitation=hesitation, price_sensitive=price_sensitive), rng

    def _checkout_logit(
        self,
        *,
        cart_value: np.ndarray,
        shipping_paid: np.ndarray,
        incentive_effect: float | np.ndarray,
        device_effect: float | np.ndarray,
        prior_orders: np.ndarray,
    ) -> np.ndarray:
        c = self.coefficients
        return (
            c.checkout_intercept
            + c.checkout_value * np.log(np.maximum(cart_value, 0.01) / self.config.target_aov)
            + np.where(shipping_paid, c.checkout_shipping_paid, 0.0)
            + incentive_effect
            + device_effect
            + c.checkout_history * np.log1p(prior_orders)
        )

    def shipping_for(self, subtotal: float, incentive: Incentive | None) -> float:
        if incentive is not None and incentive.kind == "free_shipping":
            return 0.0
        return 0.0 if subtotal >= self.config.free_shipping_threshold else self.config.shipping_fee

    def choose_category(self, shopper: int, u: float) -> int:
        return int(
            min(
                np.searchsorted(self._category_cdf[shopper], u * self._category_cdf[shopper, -1]),
                len(self.categories) - 1,
            )
        )

    # --- oracle helpers ------------------------------------------------------------------------
    def default_listings(self, max_products: int | None = None) -> list[np.ndarray]:
        """What the default storefront shows per category: in-stock products in SKU order (the catalog API's order)."""
        limit = max_products or self.config.listing_size
        listings = []
        for idx in self.products_by_category:
            in_stock = idx[self.products["inventory"][idx] > 0]
            order = np.argsort(np.asarray(self.products["sku"], dtype=object)[in_stock], kind="stable")
            listings.append(in_stock[order][:limit])
        return listings

    def shopper_weights(self) -> np.ndarray:
        rate = self.shoppers["visit_rate"]
        return rate / rate.sum()

    def _demand_terms(self, prices: np.ndarray, listings: list[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """Expected units per session of each product and the elasticity numerator Σ w P β s (1-P)."""
        prices = np.asarray(prices, dtype=float)
        listings = listings if listings is not None else self.default_listings()
        n_prod = len(self.products["sku"])
        demand = np.zeros(n_prod)
        slope = np.zeros(n_prod)
        weights = self.shopper_weights()
        everyone = np.arange(len(weights))
        sensitivity = self.shoppers["price_sensitivity"]
        for category, shown in enumerate(listings):
            if len(shown) == 0:
                continue
            w = weights * self.category_choice[:, category]
            probs = self.purchase_probabilities(everyone, shown, prices[shown])[:, :-1]
            demand[shown] += w @ probs
            slope[shown] += (w * sensitivity) @ (probs * (1.0 - probs))
        slope *= self.products["price_coef"]
        return demand, slope

    def expected_demand(self, prices: np.ndarray, listings: list[np.ndarray] | None = None) -> np.ndarray:
        """Expected purchases of each product per session (first cart choice) at the given prices."""
        return self._demand_terms(prices, listings)[0]

    def elasticities(self, prices: np.ndarray, listings: list[np.ndarray] | None = None) -> np.ndarray:
        """True own-price elasticity of each product's aggregate demand at the given prices (NaN if never shown)."""
        demand, slope = self._demand_terms(prices, listings)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(demand > 0, slope / demand, np.nan)

    def expected_profit(self, prices: np.ndarray, listings: list[np.ndarray] | None = None) -> float:
        """Expected gross margin per session from first cart choices (before abandonment)."""
        prices = np.asarray(prices, dtype=float)
        return float((self.expected_demand(prices, listings) * (prices - self.unit_cost)).sum())

    def anonymous_id(self, shopper: int, device: str) -> str:
        return stable_id(self.config.seed, "anon", shopper, device)

    # --- shopper dynamics ----------------------------------------------------------------------
    def sessions_per_day(self) -> np.ndarray:
        """Sessions on each day: n_sessions split by a weekday pattern, so `--sessions N` means N."""
        if self._sessions_per_day is not None:
            return self._sessions_per_day
        weekday = (self.config.start_date.weekday() + np.arange(self.config.days)) % 7
        # Monday .. Sunday: shops see a little more traffic towards the weekend.
        weight = np.array([1.0, 0.97, 0.98, 1.0, 1.06, 1.12, 1.08])[weekday]
        exact = self.config.n_sessions * weight / weight.sum()
        counts = np.floor(exact).astype(np.int64)
        remainder_order = np.argsort(-(exact - counts), kind="stable")
        counts[remainder_order[: self.config.n_sessions - int(counts.sum())]] += 1
        self._sessions_per_day = counts
        return counts

    def visits_for_day(self, day: int, state: ShopperState, rng: np.random.Generator) -> np.ndarray:
        """Shopper index of each session on `day` (a shopper may visit twice); updates churn in `state`.

        Given the day's total, independent Poisson visits per shopper are a multinomial draw with
        probabilities proportional to their current rates, which is what this does.
        """
        s = self.shoppers
        acquired = s["acquisition_day"] <= day
        # Churn happens between visits: a daily hazard from the weekly one.
        daily_churn = 1.0 - (1.0 - s["weekly_churn"]) ** (1.0 / 7.0)
        churned = state.alive & (s["acquisition_day"] < day) & (rng.random(len(daily_churn)) < daily_churn)
        state.alive &= ~churned
        rate = np.where(acquired & state.alive, s["visit_rate"] * state.visit_lift, 0.0)
        if rate.sum() <= 0:
            # Everyone acquired so far has churned: the day's traffic comes from the acquired pool anyway.
            rate = np.where(acquired, s["visit_rate"], 0.0) if acquired.any() else s["visit_rate"].copy()
        counts = rng.multinomial(int(self.sessions_per_day()[day]), rate / rate.sum())
        return np.repeat(np.arange(len(counts)), counts)

    def record_order(self, state: ShopperState, shopper: int) -> None:
        state.orders[shopper] += 1
        state.visit_lift[shopper] = min(
            state.visit_lift[shopper] * self.config.repeat_visit_lift, self.config.repeat_visit_cap
        )

    # --- calibration ---------------------------------------------------------------------------
    def _calibrate(self, rng: np.random.Generator) -> None:
        """Fit the outside option, price coefficients, price level and checkout intercept to the targets."""
        listings = self.default_listings()
        weights = self.shopper_weights()
        everyone = np.arange(len(weights))
        c = self.coefficients

        # At reference prices the price term vanishes, so each shopper's inclusive value per category
        # is fixed and the share buying anything is a logistic function of the outside utility.
        inclusive = np.full((len(weights), len(listings)), -np.inf)
        for category, shown in enumerate(listings):
            if len(shown):
                utility = self.utilities(everyone, shown, self.ref_price[shown])
                peak = utility.max(axis=1)
                inclusive[:, category] = peak + np.log(np.exp(utility - peak[:, None]).sum(axis=1))
        visit_weight = weights[:, None] * self.category_choice

        def cart_rate(outside: float) -> float:
            return float((visit_weight * _sigmoid(inclusive - outside)).sum())

        c.outside_utility = _bisect(lambda x: cart_rate(x) - self.config.target_cart_rate, -5.0, 20.0, increasing=False)

        # At reference prices the price term is zero, so choice probabilities do not depend on price_coef:
        # scaling price_coef by target / current makes the aggregate elasticity hit the target exactly.
        self.products["price_coef"] = self.products["target_elasticity"].copy()
        elasticity = self.elasticities(self.ref_price, listings)
        shown_any = ~np.isnan(elasticity)
        self.products["price_coef"][shown_any] *= self.products["target_elasticity"][shown_any] / elasticity[shown_any]

        # Price level and checkout intercept, on a Monte Carlo sample of carts at list prices. Scaling
        # reference and list prices together leaves choices unchanged, only cart values move.
        sample = self._sample_carts(rng, listings, n=4000)
        for _ in range(4):
            scale = c.price_scale
            values = sample["value_ratio"] * scale

            device_effect = np.array([c.checkout_device[DEVICES[int(dev)]] for dev in sample["device"]])
            if self.config.session_signals:
                # A separate stream, so the calibration sample without signals is drawn exactly as before.
                hesitation = np.random.default_rng([self.config.seed, 12]).normal(size=len(values))
                device_effect = device_effect + c.checkout_hesitation * hesitation

            def completion(intercept: float, values: np.ndarray = values, device_effect: np.ndarray = device_effect):
                c.checkout_intercept = intercept
                logit = self._checkout_logit(
                    cart_value=values,
                    shipping_paid=values < self.config.free_shipping_threshold,
                    incentive_effect=0.0,
                    device_effect=device_effect,
                    prior_orders=np.zeros(len(values)),
                )
                return _sigmoid(logit)

            c.checkout_intercept = _bisect(
                lambda x, completion=completion: completion(x).mean() - (1.0 - self.config.target_abandonment),
                -10.0,
                10.0,
                increasing=True,
            )
            p_complete = completion(c.checkout_intercept)
            shipping = np.where(values >= self.config.free_shipping_threshold, 0.0, self.config.shipping_fee)
            totals = values * (1.0 + self.config.tax_rate) + shipping
            aov = float((p_complete * totals).sum() / p_complete.sum())
            c.price_scale = scale * self.config.target_aov / aov
            self._refresh_derived()

    def _sample_carts(self, rng: np.random.Generator, listings: list[np.ndarray], n: int) -> dict:
        """Carts as the session simulator builds them, with values in units of the current price level."""
        weights = self.shopper_weights()
        shoppers = rng.choice(len(weights), size=n, p=weights)
        values = np.zeros(n)
        scale = self.coefficients.price_scale
        for row, shopper in enumerate(shoppers):
            category = self.choose_category(int(shopper), rng.random())
            shown = listings[category]
            if len(shown) == 0:
                continue
            probs = self.purchase_probabilities(int(shopper), shown, self.list_price[shown])[0, :-1]
            probs = probs / probs.sum()
            first = rng.choice(len(shown), p=probs)
            quantity = 2 if rng.random() < self.config.quantity_two_prob else 1
            value = self.list_price[shown[first]] * quantity
            if len(shown) > 1 and rng.random() < self.config.second_item_prob:
                probs[first] = 0.0
                second = rng.choice(len(shown), p=probs / probs.sum())
                value += self.list_price[shown[second]]
            values[row] = value / scale
        device = np.where(
            rng.random(n) < self.config.other_device_prob, rng.integers(0, 3, size=n), self.shoppers["device"][shoppers]
        )
        keep = values > 0
        return {"shopper": shoppers[keep], "value_ratio": values[keep], "device": device[keep]}

    # --- ground truth --------------------------------------------------------------------------
    def to_ground_truth(self) -> dict:
        p, s = self.products, self.shoppers
        products = [
            {
                "sku": p["sku"][j],
                "title": p["title"][j],
                "brand": p["brand"][j],
                "category": int(p["category"][j]),
                "latent": p["latent"][j].tolist(),
                "quality": float(p["quality"][j]),
                "rating": float(p["rating"][j]),
                "rating_count": int(p["rating_count"][j]),
                "ref_price_unscaled": float(p["ref_price"][j]),
                "ref_price": float(self.ref_price[j]),
                "list_price_ratio": float(p["list_price_ratio"][j]),
                "list_price": float(self.list_price[j]),
                "cost_share": float(p["cost_share"][j]),
                "unit_cost": float(self.unit_cost[j]),
                "inventory": int(p["inventory"][j]),
                "target_elasticity": float(p["target_elasticity"][j]),
                "price_coef": float(p["price_coef"][j]),
                "attributes": {"color": p["color"][j], "material": p["material"][j], "style": p["style"][j]},
            }
            for j in range(len(p["sku"]))
        ]
        shoppers = [
            {
                "user_id": s["user_id"][i],
                "anonymous_ids": {device: self.anonymous_id(i, device) for device in DEVICES},
                "taste": s["taste"][i].tolist(),
                "price_sensitivity": float(s["price_sensitivity"][i]),
                "device": DEVICES[int(s["device"][i])],
                "preferred_hour": float(s["preferred_hour"][i]),
                "hour_spread": float(s["hour_spread"][i]),
                "visit_rate": float(s["visit_rate"][i]),
                "weekly_churn": float(s["weekly_churn"][i]),
                "registered": bool(s["registered"][i]),
                "acquisition_day": int(s["acquisition_day"][i]),
                "channel": int(s["channel"][i]),
                "marketing_consent": bool(s["marketing_consent"][i]),
                "personalization_opt_out": bool(s["personalization_opt_out"][i]),
            }
            for i in range(len(s["user_id"]))
        ]
        return {
            "version": 1,
            "config": self.config.to_dict(),
            "categories": [
                {
                    "path": path,
                    "centroid": self.category_centroids[c].tolist(),
                    "popularity": float(self.category_popularity[c]),
                }
                for c, path in enumerate(self.categories)
            ],
            "brand_effects": dict(self.brand_effects),
            "coefficients": asdict(self.coefficients),
            "channels": [list(channel) for channel in CHANNELS],
            "products": products,
            "shoppers": shoppers,
        }

    @classmethod
    def from_ground_truth(cls, data: dict) -> World:
        config = WorldConfig.from_dict(data["config"])
        rows, people = data["products"], data["shoppers"]
        products = {
            "sku": [r["sku"] for r in rows],
            "title": [r["title"] for r in rows],
            "brand": [r["brand"] for r in rows],
            "category": np.array([r["category"] for r in rows], dtype=np.int64),
            "latent": np.array([r["latent"] for r in rows], dtype=float).reshape(len(rows), config.latent_dim),
            "quality": np.array([r["quality"] for r in rows]),
            "rating": np.array([r["rating"] for r in rows]),
            "rating_count": np.array([r["rating_count"] for r in rows], dtype=np.int64),
            "ref_price": np.array([r["ref_price_unscaled"] for r in rows]),
            "list_price_ratio": np.array([r["list_price_ratio"] for r in rows]),
            "cost_share": np.array([r["cost_share"] for r in rows]),
            "inventory": np.array([r["inventory"] for r in rows], dtype=np.int64),
            "target_elasticity": np.array([r["target_elasticity"] for r in rows]),
            "price_coef": np.array([r["price_coef"] for r in rows]),
            "color": [r["attributes"]["color"] for r in rows],
            "material": [r["attributes"]["material"] for r in rows],
            "style": [r["attributes"]["style"] for r in rows],
        }
        shoppers = {
            "taste": np.array([r["taste"] for r in people], dtype=float).reshape(len(people), config.latent_dim),
            "price_sensitivity": np.array([r["price_sensitivity"] for r in people]),
            "device": np.array([DEVICES.index(r["device"]) for r in people], dtype=np.int64),
            "preferred_hour": np.array([r["preferred_hour"] for r in people]),
            "hour_spread": np.array([r["hour_spread"] for r in people]),
            "visit_rate": np.array([r["visit_rate"] for r in people]),
            "weekly_churn": np.array([r["weekly_churn"] for r in people]),
            "registered": np.array([r["registered"] for r in people], dtype=bool),
            "acquisition_day": np.array([r["acquisition_day"] for r in people], dtype=np.int64),
            "channel": np.array([r["channel"] for r in people], dtype=np.int64),
            "user_id": [r["user_id"] for r in people],
            "marketing_consent": np.array([r["marketing_consent"] for r in people], dtype=bool),
            "personalization_opt_out": np.array([r["personalization_opt_out"] for r in people], dtype=bool),
        }
        return cls(
            config=config,
            categories=[c["path"] for c in data["categories"]],
            products=products,
            shoppers=shoppers,
            category_centroids=np.array([c["centroid"] for c in data["categories"]], dtype=float),
            category_popularity=np.array([c["popularity"] for c in data["categories"]]),
            brand_effects=dict(data["brand_effects"]),
            coefficients=Coefficients(**data["coefficients"]),
        )


def _expected_active_weeks(shoppers: dict, days: int) -> np.ndarray:
    """Expected weeks each shopper is active: from acquisition until churn or the end of the simulation."""
    daily_churn = 1.0 - (1.0 - shoppers["weekly_churn"]) ** (1.0 / 7.0)
    remaining = days - shoppers["acquisition_day"]
    active_days = (1.0 - (1.0 - daily_churn) ** remaining) / daily_churn
    return active_days / 7.0


def _bisect(f, low: float, high: float, *, increasing: bool, iterations: int = 60) -> float:
    """Root of a monotone function on [low, high]."""
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        value = f(mid)
        if (value > 0) == increasing:
            high = mid
        else:
            low = mid
    return 0.5 * (low + high)
