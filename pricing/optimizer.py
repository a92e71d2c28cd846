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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .elasticity import ProductElasticity

OBJECTIVES = ("profit", "revenue", "sell_through")
# An elasticity posterior wider than this (sd) is uncertain enough to explore.
EXPLORE_SD = 0.25


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


def price_recommend(
    item: PricingInput, *, rng: np.random.Generator, explore: bool = True, draws: int = 400
) -> PriceRecommendation:
    raise NotImplementedError


def what_if(item: PricingInput, price: float, *, draws: int = 400, seed: int = 0) -> WhatIf:
    raise NotImplementedError
