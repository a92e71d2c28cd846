"""The pricing engine against an oracle on the simulated shop, whose true demand is known.

Pure (numpy, scipy and `revopt.simulator.world`, no Django). The study runs a shop week by week:

- every day brings `sessions_per_day` sessions scaled by a weekday pattern; each product sells
  Poisson(sessions · expected_demand(prices)) units, the true logit demand with cross effects inside a
  category. Now and then (`stockout_rate` of product-days) a product sells out at a random time of day:
  the day's sales are then a binomial thinning of its demand and the day is flagged as censored;
- the first `baseline_weeks` run at list prices (the shop before revopt: no price tests);
- at the end of every later week the engine refits `demand_fit` on the whole history and reprices every
  product with `price_recommend` (profit objective, exploration on) inside the study's guardrails: a price
  band around the list price and a maximum step per week. After the last week it refits once more and
  prices without exploring: the "learned" prices, what N weeks of traffic taught it. Elasticity intervals
  from that final fit are compared with the true elasticities at the last week's prices.

The oracle is the price vector maximising the true expected profit per session inside the same band
(not the step limit), found by L-BFGS-B on log prices with the analytic gradient of the logit profit,
started from several points and polished from every price vector the engine or the static shop played,
so it is at least as good as each of them. Static pricing keeps list prices throughout.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy import optimize
from tqdm import tqdm

from pricing.demand import DemandPanel
from pricing.elasticity import DemandFit, demand_fit
from pricing.optimizer import PricingInput, price_recommend
from revopt.simulator.world import World, WorldConfig

# Monday .. Sunday, the simulator's own weekday traffic pattern.
WEEKDAY_TRAFFIC = np.array([1.0, 0.97, 0.98, 1.0, 1.06, 1.12, 1.08])
# Sizes the simulated shopper population (a quarter of it): the population the true demand integrates over.
WORLD_SESSIONS = 8000
# A Monday, so that day 0 of the study is weekday 0.
STUDY_START = date(2026, 1, 5)


@dataclass(frozen=True)
class StudyGuardrails:
    floor_ratio: float = 0.7  # of the list price
    ceiling_ratio: float = 1.5
    max_step: float = 0.15  # share of the current price, per weekly repricing

    def describe(self) -> str:
        return (
            f"price in [{self.floor_ratio:.2f}, {self.ceiling_ratio:.2f}] × list price, "
            f"at most ±{self.max_step:.0%} per weekly step"
        )


@dataclass(frozen=True)
class WeekResult:
    week: int  # 1-based
    engine_active: bool  # False for the baseline weeks at list price
    engine_profit: float  # true expected profit per session at the prices played this week
    units: float  # units sold this week (all products)
    changed: int  # products whose price changed at the start of the week
    explored: int  # of those, priced under a Thompson draw


@dataclass(frozen=True)
class ProductResult:
    product_id: int
    category_id: int
    list_price: float
    unit_cost: float
    oracle_price: float
    final_price: float  # played in the last week
    learned_price: float  # set after the last week, without exploring
    true_elasticity: float  # at the final prices, with the other prices held
    estimate: float | None
    lower: float | None
    upper: float | None

    @property
    def covered(self) -> bool:
        return self.lower is not None and self.upper is not None and self.lower <= self.true_elasticity <= self.upper


@dataclass(frozen=True)
class SimulatedPricingReport:
    seed: int
    weeks: tuple[WeekResult, ...]
    products: tuple[ProductResult, ...]
    baseline_weeks: int
    sessions_per_day: int
    guardrails: StudyGuardrails
    oracle_profit: float
    static_profit: float
    learned_profit: float  # at the prices the engine sets after the last week without exploring
    oracle_beats_every_vector: bool  # checked against every engine and the static price vector
    level: float  # the elasticity intervals' level
    min_engine_ratio: float = 0.95
    min_coverage: float = 0.90

    @property
    def final_engine_ratio(self) -> float:
        """The last week's prices against the oracle: still exploring where the model is unsure."""
        return self.weeks[-1].engine_profit / self.oracle_profit

    @property
    def learned_ratio(self) -> float:
        """The engine's best prices after the last week (posterior mean, no exploration) against the oracle."""
        return self.learned_profit / self.oracle_profit

    @property
    def static_ratio(self) -> float:
        return self.static_profit / self.oracle_profit

    @property
    def lift_over_static(self) -> float:
        return self.learned_profit / self.static_profit - 1.0

    @property
    def coverage(self) -> float:
        estimated = [product for product in self.products if product.lower is not None]
        return sum(product.covered for product in estimated) / len(estimated) if estimated else 0.0

    def ratio_curve(self) -> list[tuple[int, float, float]]:
        """(week, engine / oracle, static / oracle) per week: the regret curve."""
        return [(week.week, week.engine_profit / self.oracle_profit, self.static_ratio) for week in self.weeks]

    def checks(self) -> list[tuple[str, str, str, bool | None]]:
        """(check, value, bound, passed) rows; passed None marks a figure shown for context."""
        n_weeks = len(self.weeks)
        final = self.weeks[-1]
        return [
            (
                "setup",
                f"{len(self.products)} products, {self.sessions_per_day:,} sessions/day, {n_weeks} weeks "
                f"({self.baseline_weeks} at list price)",
                self.guardrails.describe(),
                None,
            ),
            (
                "oracle (true demand) profit per session",
                f"{self.oracle_profit:.4f}",
                "beats every price vector played" if self.oracle_beats_every_vector else "an engine vector beat it",
                self.oracle_beats_every_vector,
            ),
            (
                f"engine profit / oracle, week {final.week} (still exploring)",
                f"{self.final_engine_ratio:.1%}",
                "regret curve above",
                None,
            ),
            (
                f"engine's learned prices after {n_weeks} weeks / oracle",
                f"{self.learned_ratio:.1%}",
                f"≥ {self.min_engine_ratio:.0%}",
                self.learned_ratio >= self.min_engine_ratio,
            ),
            (
                "static (list prices) profit / oracle",
                f"{self.static_ratio:.1%}",
                "below the engine's",
                self.static_ratio < self.learned_ratio,
            ),
            (
                "engine's learned prices vs static profit",
                f"{self.lift_over_static:+.1%}",
                "> 0",
                self.lift_over_static > 0,
            ),
            (
                f"{self.level:.0%} elasticity intervals covering the true elasticity",
                f"{self.coverage:.1%} of {sum(p.lower is not None for p in self.products)}",
                f"≥ {self.min_coverage:.0%}",
                self.coverage >= self.min_coverage,
            ),
        ]


def profit_and_gradient(world: World, log_prices: np.ndarray, listings: list[np.ndarray]) -> tuple[float, np.ndarray]:
    """True expected profit per session and its gradient with respect to log prices.

    With P_ik the logit probabilities, beta_k the price coefficient, s_i the shopper's sensitivity and
    m = p - cost: d profit / d log p_k = D_k p_k + beta_k · sum_i w_i s_i P_ik (m_k - sum_j P_ij m_j).
    """
    prices = np.exp(log_prices)
    margin = prices - world.unit_cost
    weights = world.shopper_weights()
    everyone = np.arange(len(weights))
    sensitivity = world.shoppers["price_sensitivity"]
    price_coef = world.products["price_coef"]
    profit = 0.0
    gradient = np.zeros(len(prices))
    for category, shown in enumerate(listings):
        if len(shown) == 0:
            continue
        w = weights * world.category_choice[:, category]
        probs = world.purchase_probabilities(everyone, shown, prices[shown])[:, :-1]
        demand = w @ probs
        profit += float(demand @ margin[shown])
        expected_margin = probs @ margin[shown]
        cross = ((w * sensitivity)[:, None] * probs * (margin[shown][None, :] - expected_margin[:, None])).sum(axis=0)
        gradient[shown] += demand * prices[shown] + price_coef[shown] * cross
    return profit, gradient


def oracle_prices(
    world: World,
    *,
    low: np.ndarray,
    high: np.ndarray,
    listings: list[np.ndarray],
    starts: list[np.ndarray],
) -> np.ndarray:
    """The prices in [low, high] maximising the true expected profit: L-BFGS-B from each start, best kept."""
    bounds = list(zip(np.log(low), np.log(high), strict=True))
    best_prices, best_profit = None, -math.inf
    for start in starts:
        x0 = np.clip(np.log(start), np.log(low), np.log(high))
        result = optimize.minimize(
            lambda x: tuple(-value for value in profit_and_gradient(world, x, listings)),
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 500, "ftol": 1e-13, "gtol": 1e-10},
        )
        prices = np.clip(np.exp(result.x), low, high)
        profit = world.expected_profit(prices, listings)
        if profit > best_profit:
            best_prices, best_profit = prices, profit
    return best_prices


def _round_cents_inside(value: float, *, up: bool) -> float:
    cents = value * 100.0
    return (math.ceil(cents - 1e-9) if up else math.floor(cents + 1e-9)) / 100.0


def simulated_pricing_study(
    *,
    seed: int = 0,
    weeks: int = 12,
    n_products: int = 60,
    n_categories: int = 6,
    sessions_per_day: int = 3000,
    baseline_weeks: int = 2,
    guardrails: StudyGuardrails | None = None,
    stockout_rate: float = 0.01,
    explore: bool = True,
    draws: int = 200,
    progress: bool = False,
) -> SimulatedPricingReport:
    """Run the weekly refit-and-reprice loop on a generated world; deterministic from `seed`."""
    if weeks <= baseline_weeks:
        raise ValueError("weeks must exceed baseline_weeks: the engine needs at least one week to act")
    if baseline_weeks < 1:
        raise ValueError("baseline_weeks must be at least 1: the first fit needs history")
    guardrails = guardrails or StudyGuardrails()
    # The world (products, 2,000 shoppers, true demand) depends on the seed and the catalog size only, so
    # studies with more traffic or more weeks face the same shop and the same oracle.
    world = World.generate(
        WorldConfig(
            seed=seed,
            n_sessions=WORLD_SESSIONS,
            days=84,
            n_products=n_products,
            n_categories=n_categories,
            start_date=STUDY_START,
        )
    )
    listings = world.default_listings()
    on_sale = np.sort(np.concatenate([shown for shown in listings if len(shown)]))
    list_price = world.list_price.copy()
    unit_cost = world.unit_cost
    low = np.round(list_price * guardrails.floor_ratio, 2)
    high = np.round(list_price * guardrails.ceiling_ratio, 2)
    category = world.products["category"]

    demand_rng = np.random.default_rng([seed, 501])
    engine_rng = np.random.default_rng([seed, 502])

    prices = list_price.copy()
    played: list[np.ndarray] = []
    week_results: list[WeekResult] = []
    rows: dict[str, list[np.ndarray]] = {
        name: [] for name in ("product_id", "category_id", "day", "price", "units", "traffic", "stocked_out")
    }
    changed = explored = 0

    bar = tqdm(total=weeks, desc="simulated weeks", unit="week", file=sys.stderr, leave=False, disable=not progress)
    for week in range(weeks):
        per_session = world.expected_demand(prices, listings)
        played.append(prices.copy())
        units_this_week = 0.0
        for weekday in range(7):
            day = week * 7 + weekday
            traffic = float(round(sessions_per_day * WEEKDAY_TRAFFIC[weekday] / WEEKDAY_TRAFFIC.mean()))
            demand = demand_rng.poisson(traffic * per_session[on_sale]).astype(float)
            stocked_out = demand_rng.random(len(on_sale)) < stockout_rate
            # A sell-out at a uniform time of day: only the demand before it turns into sales.
            before_sellout = demand_rng.binomial(demand.astype(np.int64), demand_rng.random(len(on_sale)))
            sold = np.where(stocked_out, before_sellout, demand)
            units_this_week += float(sold.sum())
            rows["product_id"].append(on_sale)
            rows["category_id"].append(category[on_sale])
            rows["day"].append(np.full(len(on_sale), STUDY_START.toordinal() + day, dtype=np.int64))
            rows["price"].append(prices[on_sale])
            rows["units"].append(sold)
            rows["traffic"].append(np.full(len(on_sale), traffic))
            rows["stocked_out"].append(stocked_out)
        week_results.append(
            WeekResult(
                week=week + 1,
                engine_active=week >= baseline_weeks,
                engine_profit=world.expected_profit(prices, listings),
                units=units_this_week,
                changed=changed,
                explored=explored,
            )
        )
        bar.update(1)
        if week + 1 < baseline_weeks:
            continue
        fit = demand_fit(_panel(rows))
        last_week = week + 1 == weeks
        # After the last week the engine prices without exploring: what it has learned, not what it still tries.
        prices, changed, explored = _reprice(
            fit=fit,
            prices=prices,
            on_sale=on_sale,
            unit_cost=unit_cost,
            low=low,
            high=high,
            max_step=guardrails.max_step,
            rng=engine_rng,
            explore=explore and not last_week,
            draws=draws,
        )
    bar.close()

    learned_prices = prices
    final_prices = played[-1]
    starts = [list_price, low, high, np.sqrt(low * high), learned_prices, *played]
    oracle = oracle_prices(world, low=low, high=high, listings=listings, starts=starts)
    oracle_profit = world.expected_profit(oracle, listings)
    best_played = max(world.expected_profit(vector, listings) for vector in [*played, learned_prices])
    static_profit = world.expected_profit(list_price, listings)

    true_elasticity = world.elasticities(final_prices, listings)
    products = []
    for index in on_sale:
        estimate = fit.products.get(int(index))
        products.append(
            ProductResult(
                product_id=int(index),
                category_id=int(category[index]),
                list_price=float(list_price[index]),
                unit_cost=float(unit_cost[index]),
                oracle_price=float(oracle[index]),
                final_price=float(final_prices[index]),
                learned_price=float(learned_prices[index]),
                true_elasticity=float(true_elasticity[index]),
                estimate=estimate.elasticity if estimate else None,
                lower=estimate.lower if estimate else None,
                upper=estimate.upper if estimate else None,
            )
        )
    return SimulatedPricingReport(
        seed=seed,
        weeks=tuple(week_results),
        products=tuple(products),
        baseline_weeks=baseline_weeks,
        sessions_per_day=sessions_per_day,
        guardrails=guardrails,
        oracle_profit=oracle_profit,
        static_profit=static_profit,
        learned_profit=world.expected_profit(learned_prices, listings),
        oracle_beats_every_vector=oracle_profit >= max(best_played, static_profit) - 1e-12,
        level=fit.level,
    )


def _panel(rows: dict[str, list[np.ndarray]]) -> DemandPanel:
    product_id = np.concatenate(rows["product_id"]).astype(np.int64)
    return DemandPanel(
        product_id=product_id,
        category_id=np.concatenate(rows["category_id"]).astype(np.int64),
        day=np.concatenate(rows["day"]).astype(np.int64),
        price=np.concatenate(rows["price"]).astype(float),
        units=np.concatenate(rows["units"]).astype(float),
        traffic=np.concatenate(rows["traffic"]).astype(float),
        competitor_ratio=np.full(len(product_id), np.nan),
        promoted=np.zeros(len(product_id), dtype=bool),
        stocked_out=np.concatenate(rows["stocked_out"]).astype(bool),
    )


def _reprice(
    *,
    fit: DemandFit,
    prices: np.ndarray,
    on_sale: np.ndarray,
    unit_cost: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    max_step: float,
    rng: np.random.Generator,
    explore: bool,
    draws: int,
) -> tuple[np.ndarray, int, int]:
    """Next week's prices from the engine; returns (prices, products changed, products explored)."""
    new_prices = prices.copy()
    changed = explored = 0
    for index in on_sale:
        estimate = fit.products.get(int(index))
        if estimate is None:
            continue
        current = float(prices[index])
        item_low = _round_cents_inside(max(float(low[index]), current * (1.0 - max_step)), up=True)
        item_high = _round_cents_inside(min(float(high[index]), current * (1.0 + max_step)), up=False)
        if item_low > item_high:
            continue
        recommendation = price_recommend(
            PricingInput(
                product_id=int(index),
                current_price=current,
                unit_cost=float(unit_cost[index]),
                estimate=estimate,
                low=item_low,
                high=item_high,
                objective="profit",
                horizon_days=7,
                day_of_week=fit.day_of_week,
                start_weekday=0,
            ),
            rng=rng,
            explore=explore,
            draws=draws,
        )
        new_prices[index] = recommendation.proposed_price
        if abs(recommendation.proposed_price - current) >= 0.005:
            changed += 1
            explored += int(recommendation.explored)
    return new_prices, changed, explored
