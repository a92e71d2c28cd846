"""The price that best serves the merchant's objective for one product, with what it expects to happen.

Pure (no Django). Demand at price p on day t is base_units_per_day · (p / reference_price)^e · dow_t,
with e from the elasticity posterior. The optimizer searches the guardrails' feasible range (prices are
never proposed outside it), for the objective:
- profit: (p - unit cost) · units (falls back to revenue when the cost is unknown);
- revenue: p · units;
- sell_through: sell the stock by the horizon at the best margin, i.e. the highest price whose expected
  units over the horizon reach the inventory (or the floor of the range when none does).
Inventory also bends the profit and revenue objectives: overstock (more than the horizon's expected
demand, clearly) is valued at what it would fetch, scarce stock (less than the demand until the horizon)
caps the units that can be sold, which pushes the price up to ration it.

When the posterior is wide the optimizer explores: it optimizes under one Thompson draw of the elasticity
instead of the posterior mean, so the prices it tries teach the model where it knows least. Expected
changes come from posterior draws (elasticity and demand level), summarised by a 90% interval.

Implementation choices: log demand is normal under the posterior (normal elasticity, normal log level), so
the posterior expected objective on the price grid is computed in closed form (lognormal means and
shortfalls), exact and without Monte Carlo noise; draws are used for the intervals, the confidence and the
curve. Leftover stock at the horizon keeps its cost as value as long as it would sell within a year at the
current price (DEAD_STOCK_COVER_DAYS) and is worth 0 beyond that: retail writes down stock with more than a
year of cover, so clearance lowers the price only for such dead stock and only when the extra sales pay.
Valuing every unit unsold by the horizon at 0 instead cut prices on most ordinary slow movers in the
simulated shop and lost 22% of their true profit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .elasticity import ProductElasticity

OBJECTIVES = ("profit", "revenue", "sell_through")
# An elasticity posterior wider than this (sd) is uncertain enough to explore.
EXPLORE_SD = 0.25
# Stock beyond this many days of expected demand is dead stock, worth clearing at a lower price.
DEAD_STOCK_COVER_DAYS = 365


@dataclass(frozen=True)
class PricingInput:
    product_id: int
    current_price: float
    unit_cost: float | None
    estimate: ProductElasticity
    # Feasible range after every guardrail (low ≤ high); the proposal always lies inside it.
    low: float
    high: float
    objective: str = "profit"
    inventory: int | None = None  # None: not tracked
    horizon_days: int = 28
    competitor_price: float | None = None
    # Multiplicative demand per weekday over the horizon (Monday first); ones when unknown.
    day_of_week: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    start_weekday: int = 0  # weekday of the first day of the horizon (0 = Monday)
    # Stock beyond this many days of demand at today's price is worth 0 (cleared if that pays); None: never.
    dead_stock_cover_days: int | None = DEAD_STOCK_COVER_DAYS
    # What set each end of the range, in words for the reasons ("the 10% step limit"); None: "the guardrails".
    low_reason: str | None = None
    high_reason: str | None = None


@dataclass(frozen=True)
class Impact:
    """A change per week against keeping the current price, with its 90% interval."""

    expected: float
    lower: float
    upper: float


@dataclass(frozen=True)
class CurvePoint:
    price: float
    units: float  # per week
    revenue: float  # per week
    profit: float  # per week (revenue when the cost is unknown)
    profit_lower: float
    profit_upper: float


@dataclass(frozen=True)
class PriceRecommendation:
    product_id: int
    current_price: float
    proposed_price: float  # rounded to the cent, inside [low, high]
    explored: bool
    units: Impact
    revenue: Impact
    profit: Impact
    confidence: float  # posterior probability that the proposed price beats the current one on the objective
    reasons: tuple[str, ...]
    curve: tuple[CurvePoint, ...]  # ~25 points across the feasible range and the current price


@dataclass(frozen=True)
class WhatIf:
    """Predicted weekly outcome at one price (not a change), each with a 90% interval."""

    price: float
    units: Impact
    revenue: Impact
    profit: Impact


GRID_POINTS = 200
CURVE_POINTS = 25
# Beyond a bound, the objective is probed this much further out to tell "held at the limit" from "best here".
_PROBE = 0.02


@dataclass(frozen=True)
class _Posterior:
    elasticity: np.ndarray  # one value per draw
    base: np.ndarray  # units per day at the reference price on an average day, per draw


def _posterior_draws(estimate: ProductElasticity, rng: np.random.Generator, draws: int) -> _Posterior:
    elasticity = rng.normal(estimate.elasticity, max(estimate.sd, 0.0), draws)
    log_base = np.log(max(estimate.base_units_per_day, 1e-12))
    base = np.exp(rng.normal(log_base, max(estimate.log_base_se, 0.0), draws))
    return _Posterior(elasticity=elasticity, base=base)


def _dow_mean(item: PricingInput, days: int) -> float:
    factors = np.asarray(item.day_of_week, dtype=float)
    return float(np.mean(factors[(item.start_weekday + np.arange(max(days, 1))) % len(factors)]))


def _horizon_units(item: PricingInput, prices: np.ndarray, posterior: _Posterior) -> np.ndarray:
    """Expected demand over the horizon, draws × prices (uncapped by stock)."""
    log_relative = np.log(prices / item.estimate.reference_price)
    daily = posterior.base[:, None] * np.exp(posterior.elasticity[:, None] * log_relative[None, :])
    return daily * item.horizon_days * _dow_mean(item, item.horizon_days)


@dataclass(frozen=True)
class _Belief:
    """Lognormal demand: log daily units at the reference price ~ N(log_base, log_base_sd²), elasticity ~ N."""

    elasticity: float
    elasticity_sd: float
    log_base: float
    log_base_sd: float

    @classmethod
    def posterior(cls, estimate: ProductElasticity) -> _Belief:
        log_base = float(np.log(max(estimate.base_units_per_day, 1e-12)))
        return cls(estimate.elasticity, max(estimate.sd, 0.0), log_base, max(estimate.log_base_se, 0.0))

    def at_elasticity(self, elasticity: float) -> _Belief:
        return _Belief(elasticity, 0.0, self.log_base, 0.0)


def _horizon_moments(item: PricingInput, prices: np.ndarray, belief: _Belief) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of log demand over the horizon at each price (it is normal under the belief)."""
    log_relative = np.log(prices / item.estimate.reference_price)
    mean = (
        belief.log_base
        + np.log(item.horizon_days * _dow_mean(item, item.horizon_days))
        + belief.elasticity * (log_relative)
    )
    variance = belief.log_base_sd**2 + (belief.elasticity_sd * log_relative) ** 2
    return mean, np.maximum(variance, 1e-12)


def _shortfall(level: float, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """E[max(level - U, 0)] for lognormal U with log-mean `mean` and log-variance `variance`."""
    if level <= 0:
        return np.zeros_like(mean)
    sd = np.sqrt(variance)
    below = (np.log(level) - mean) / sd
    return level * special.ndtr(below) - np.exp(mean + variance / 2) * special.ndtr(below - sd)


def _expected_objective(
    item: PricingInput, objective: str, prices: np.ndarray, belief: _Belief, carry: float, cap: bool = True
) -> np.ndarray:
    """The posterior expected objective over the horizon at each price, in closed form (see `_objective`)."""
    mean, variance = _horizon_moments(item, prices, belief)
    expected_demand = np.exp(mean + variance / 2)
    if item.inventory is None or not cap:
        if objective in ("revenue", "sell_through"):
            return prices * expected_demand
        return (prices - float(item.unit_cost or 0.0)) * expected_demand
    inventory = float(item.inventory)
    unsold = _shortfall(inventory, mean, variance)  # E[max(I - U, 0)]
    revenue = prices * (inventory - unsold)
    if objective in ("revenue", "sell_through"):
        return revenue
    cost = float(item.unit_cost or 0.0)
    # E[min(leftover, carry)]: every leftover unit keeps its cost when no stock counts as dead.
    kept_at_cost = unsold if math.isinf(carry) else unsold - _shortfall(inventory - carry, mean, variance)
    return revenue + cost * kept_at_cost - cost * inventory


def _effective_objective(item: PricingInput) -> str:
    if item.objective == "profit" and item.unit_cost is None:
        return "revenue"
    if item.objective == "sell_through" and item.inventory is None:
        return "profit" if item.unit_cost is not None else "revenue"
    return item.objective


def _objective(
    item: PricingInput, objective: str, prices: np.ndarray, posterior: _Posterior, carry: float
) -> np.ndarray:
    """The objective over the horizon, draws × prices.

    With stock tracked, sales stop at the inventory. Stock left at the end of the horizon keeps its cost as
    value up to `carry` (what sells within DEAD_STOCK_COVER_DAYS at today's price); beyond that it is valued
    at 0, so a price cut that clears dead stock counts its full revenue, and only when that pays.
    """
    demand = _horizon_units(item, prices, posterior)
    inventory = item.inventory
    sold = demand if inventory is None else np.minimum(demand, float(inventory))
    if objective == "revenue" or objective == "sell_through":
        return prices[None, :] * sold
    cost = float(item.unit_cost or 0.0)
    if inventory is None:
        return (prices[None, :] - cost) * sold
    leftover = float(inventory) - sold
    return prices[None, :] * sold + cost * np.minimum(leftover, carry) - cost * float(inventory)


def _grid(item: PricingInput) -> np.ndarray:
    points = [np.linspace(item.low, item.high, GRID_POINTS)]
    if item.low <= item.current_price <= item.high:
        points.append(np.array([item.current_price]))
    elasticity = item.estimate.elasticity
    if item.unit_cost is not None and elasticity < -1.0:
        lerner = item.unit_cost * elasticity / (1.0 + elasticity)
        if item.low <= lerner <= item.high:
            points.append(np.array([lerner]))
    return np.unique(np.concatenate(points))


def _to_cents(price: float, low: float, high: float) -> float:
    low_cents, high_cents = np.ceil(round(low * 100, 6)), np.floor(round(high * 100, 6))
    if low_cents > high_cents:
        return round(low, 2)
    return float(np.clip(np.round(price * 100), low_cents, high_cents)) / 100.0


def _weekly(item: PricingInput, prices: np.ndarray, posterior: _Posterior) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units, revenue and profit per week at each price, draws × prices (stock-limited when tracked)."""
    demand = _horizon_units(item, prices, posterior)
    units = demand * (7.0 * _dow_mean(item, 7) / (item.horizon_days * _dow_mean(item, item.horizon_days)))
    if item.inventory is not None:
        units = units * np.minimum(1.0, float(item.inventory) / np.maximum(demand, 1e-12))
    revenue = prices[None, :] * units
    profit = (prices[None, :] - item.unit_cost) * units if item.unit_cost is not None else revenue
    return units, revenue, profit


def _impacts(*values: np.ndarray) -> list[Impact]:
    """Mean and 90% interval of each per-draw array, with a single percentile pass."""
    stacked = np.stack(values)
    means = stacked.mean(axis=1)
    lower, upper = np.percentile(stacked, [5, 95], axis=1)
    return [
        Impact(expected=float(m), lower=float(lo), upper=float(hi))
        for m, lo, hi in zip(means, lower, upper, strict=True)
    ]


def _percent(share: float) -> str:
    value = abs(share) * 100
    return f"{value:.1f}%" if value < 9.95 else f"{value:.0f}%"


def _elasticity_reason(item: PricingInput, proposed: float, units_change: float) -> str:
    estimate = item.estimate
    if estimate.sd > 0:
        level = 2.0 * special.ndtr((estimate.upper - estimate.elasticity) / estimate.sd) - 1.0
        interval = f"{level:.0%} interval {estimate.lower:.1f} to {estimate.upper:.1f}"
    else:
        interval = f"range {estimate.lower:.1f} to {estimate.upper:.1f}"
    change = proposed / item.current_price - 1.0
    if estimate.elasticity >= 0:
        return (
            f"Sales have not fallen when the price rose so far (estimate {estimate.elasticity:+.1f}, {interval}), "
            "so demand gives no reason to cut the price."
        )
    start = f"Demand falls {abs(estimate.elasticity):.1f}% for each 1% price rise ({interval})"
    if abs(change) < 0.005:
        return f"{start}, so the current price is already close to the best."
    if change > 0:
        return (
            f"{start}, so a {_percent(change)} rise loses about {_percent(units_change)} of units "
            "but earns more on each sale."
        )
    return f"{start}, so a {_percent(change)} cut wins about {_percent(units_change)} more units, enough to pay off."


def _bound_reason(item: PricingInput, objective: str, proposed: float, belief: _Belief, carry: float) -> str | None:
    """'Held at …' when the proposal sits on a bound and the objective still improves beyond it."""
    for bound, beyond, label, word in (
        (item.high, item.high * (1 + _PROBE), item.high_reason, "highest"),
        (item.low, item.low * (1 - _PROBE), item.low_reason, "lowest"),
    ):
        if abs(proposed - bound) > 0.006 or item.high - item.low < 0.01:
            continue
        values = _expected_objective(item, objective, np.array([bound, beyond]), belief, carry)
        if values[1] > values[0]:
            limit = label or f"the {word} price the guardrails allow"
            return f"Held at {limit} ({bound:.2f})."
    return None


def _inventory_reason(
    item: PricingInput,
    objective: str,
    prices: np.ndarray,
    belief: _Belief,
    carry: float,
    chosen: float,
    expected: float,
) -> str | None:
    if item.inventory is None or objective == "sell_through":
        return None
    uncapped = prices[int(np.argmax(_expected_objective(item, objective, prices, belief, carry, cap=False)))]
    if chosen > uncapped + 0.005:
        return (
            f"Only {item.inventory} units left against about {expected:.0f} expected to sell in the next "
            f"{item.horizon_days} days: priced up to ration stock."
        )
    if chosen < uncapped - 0.005:
        return (
            f"{item.inventory} units in stock, far more than the about {expected:.0f} expected to sell in "
            f"{item.horizon_days} days, over a year of cover: priced down to clear stock that would sit unsold."
        )
    return None


def price_recommend(
    item: PricingInput, *, rng: np.random.Generator, explore: bool = True, draws: int = 400
) -> PriceRecommendation:
    """The price to propose, chosen on the posterior expected objective (or one Thompson draw to explore)."""
    if item.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {item.objective!r}")
    posterior = _posterior_draws(item.estimate, rng, draws)
    objective = _effective_objective(item)
    prices = _grid(item)
    belief = _Belief.posterior(item.estimate)
    # Stock the shop expects to sell after the horizon within a year at today's price keeps its cost.
    current_mean, current_variance = _horizon_moments(item, np.array([item.current_price]), belief)
    horizon_demand = float(np.exp(current_mean + current_variance / 2)[0])
    if item.dead_stock_cover_days is None:
        carry = float("inf")
    else:
        carry = horizon_demand * max(1.0, item.dead_stock_cover_days / item.horizon_days - 1.0)

    explored = bool(explore and item.estimate.sd > EXPLORE_SD)
    # Exploring optimizes under one Thompson draw of the elasticity; otherwise under the whole posterior.
    deciding = belief.at_elasticity(float(rng.normal(belief.elasticity, belief.elasticity_sd))) if explored else belief

    if objective == "sell_through":
        mean, variance = _horizon_moments(item, prices, deciding)
        clearing = prices[np.exp(mean + variance / 2) >= float(item.inventory or 0)]
        chosen = float(clearing.max()) if len(clearing) else float(item.low)
    else:
        chosen = float(prices[int(np.argmax(_expected_objective(item, objective, prices, deciding, carry)))])
    proposed = _to_cents(chosen, item.low, item.high)

    units, revenue, profit = _weekly(item, np.array([proposed, item.current_price]), posterior)
    units_impact, revenue_impact, profit_impact = _impacts(
        units[:, 0] - units[:, 1], revenue[:, 0] - revenue[:, 1], profit[:, 0] - profit[:, 1]
    )
    pair = np.array([proposed, item.current_price])
    scores = _objective(item, objective, pair, posterior, carry)
    if proposed == item.current_price:
        confidence = 0.5
    else:
        confidence = float(np.mean(scores[:, 0] > scores[:, 1]) + 0.5 * np.mean(scores[:, 0] == scores[:, 1]))

    # Demand's own response to the move (before any stock limit), at the posterior mean elasticity.
    units_change = float((proposed / item.current_price) ** item.estimate.elasticity - 1.0)
    reasons = [_elasticity_reason(item, proposed, units_change)]
    if item.objective == "profit" and item.unit_cost is None:
        reasons.append("No cost on file: optimizing revenue instead of profit.")
    if item.objective == "sell_through" and item.inventory is None:
        reasons.append("No stock level on file: optimizing profit instead of sell-through.")
    if objective == "sell_through":
        proposed_mean, proposed_variance = _horizon_moments(item, np.array([proposed]), belief)
        expected = float(np.exp(proposed_mean + proposed_variance / 2)[0])
        if expected >= float(item.inventory or 0):
            reasons.append(
                f"The highest price that sells the {item.inventory} units in stock within {item.horizon_days} days "
                f"(about {expected:.0f} expected to sell)."
            )
        else:
            reasons.append(
                f"Even at the lowest allowed price about {expected:.0f} units are expected to sell in "
                f"{item.horizon_days} days, short of the {item.inventory} in stock."
            )
    inventory_reason = _inventory_reason(item, objective, prices, deciding, carry, chosen, horizon_demand)
    if inventory_reason:
        reasons.append(inventory_reason)
    bound_reason = None if objective == "sell_through" else _bound_reason(item, objective, proposed, deciding, carry)
    if bound_reason:
        reasons.append(bound_reason)
    if explored:
        reasons.append("Exploring: the estimate is uncertain, so this price also tests demand.")
    if item.competitor_price is not None:
        reasons.append(f"Competitors sell at {item.competitor_price:.2f}.")
    if len(reasons) < 2:
        reasons.append(
            f"Expected {'profit' if item.unit_cost is not None else 'revenue'} change per week: "
            f"{profit_impact.expected:+.2f} (90% interval {profit_impact.lower:+.2f} to {profit_impact.upper:+.2f})."
        )

    curve_prices = np.linspace(min(item.low, item.current_price), max(item.high, item.current_price), CURVE_POINTS)
    curve_units, curve_revenue, curve_profit = _weekly(item, curve_prices, posterior)
    profit_lower, profit_upper = np.percentile(curve_profit, [5, 95], axis=0)
    curve = tuple(
        CurvePoint(
            price=float(price),
            units=float(point_units),
            revenue=float(point_revenue),
            profit=float(point_profit),
            profit_lower=float(lower),
            profit_upper=float(upper),
        )
        for price, point_units, point_revenue, point_profit, lower, upper in zip(
            curve_prices,
            curve_units.mean(axis=0),
            curve_revenue.mean(axis=0),
            curve_profit.mean(axis=0),
            profit_lower,
            profit_upper,
            strict=True,
        )
    )

    return PriceRecommendation(
        product_id=item.product_id,
        current_price=item.current_price,
        proposed_price=proposed,
        explored=explored,
        units=units_impact,
        revenue=revenue_impact,
        profit=profit_impact,
        confidence=confidence,
        reasons=tuple(reasons[:4]),
        curve=curve,
    )


def what_if(item: PricingInput, price: float, *, draws: int = 400, seed: int = 0) -> WhatIf:
    """Weekly units, revenue and profit at `price` (absolute, not changes), each with a 90% interval."""
    if not np.isfinite(price) or price <= 0:
        raise ValueError(f"price must be a positive number, got {price!r}")
    posterior = _posterior_draws(item.estimate, np.random.default_rng(seed), draws)
    units, revenue, profit = _weekly(item, np.array([price]), posterior)
    units_at, revenue_at, profit_at = _impacts(units[:, 0], revenue[:, 0], profit[:, 0])
    return WhatIf(price=price, units=units_at, revenue=revenue_at, profit=profit_at)
