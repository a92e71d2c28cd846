"""AI pricing vs static pricing, run for real on the simulated shop through the experiments engine.

The shop runs with `PricingPolicy`: every simulated day the storefront asks `GET /api/v1/prices` for the
price of every product and charges it to every shopper. Until `split_day` nothing is priced by revopt (the
pre-period, list prices). At the end of the day before the split the back office does what a merchant who
trusts the guardrails would: it sets the guardrails, lets proposals inside a 10% band go live without a
person, fits the demand model and starts a product-randomised pricing experiment, "ai-vs-static" (half the
products keep their list price, half follow the engine). From then on, every night: a demand fit and a round
of proposals; those that pass every guardrail and move the price at most 10% go live by themselves.

The analysis treats the product as the unit (that is what was randomised): per product, merchandise revenue
and gross margin of completed orders over the experiment period, CUPED with the same product's pre-period
values, Welch's t on the adjusted means. The simulator also knows the true demand, so the report sets the
measured lift beside the expected profit per session under the world's demand at the final prices.

Products compete within a category, so the arms are not independent: a shopper who turns away from a
product the engine made dearer often buys a static neighbour instead (and a cheaper engine product takes
sales from static neighbours). The static arm therefore moves too, in the opposite direction to the engine,
and the test measures engine − (static contaminated by the engine). For price rises the measured lift
understates what a shop-wide roll-out would earn on margin (and overstates the loss of units); for price
cuts it overstates the gain. The report prints how much the static arm's true profit moved because of it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import numpy as np
from django.db.models import Count, F, FloatField, Sum
from django.db.models.functions import Cast, TruncDate

from catalog.models import Product
from events.models import Event, OrderLine, OrderStatus
from experiments.models import Experiment, Surface
from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_start
from experiments.stats.cuped import cuped_estimates
from experiments.stats.frequentist import lift, welch_degrees_of_freedom, welch_t_test
from experiments.stats.summaries import LiftEstimate, SampleSums
from revopt.simulator.models import SimulationRun
from revopt.simulator.policy import PricingPolicy
from revopt.simulator.services import simulation_config_resolve, simulation_run
from revopt.simulator.world import World, WorldConfig
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import merchant_create

from ..guardrails import GuardrailLimits
from ..models import GuardrailScope, PriceChange
from ..selectors.experiments import pricing_arms_for_products
from ..selectors.guardrails import pricing_settings_for
from ..services.guardrails import guardrail_save, pricing_settings_save
from ..services.model import demand_model_fit
from ..services.proposals import price_proposals_generate

EXPERIMENT_KEY = "ai-vs-static"
STATIC, ENGINE = "static", "engine"
PRICING_VARIANTS: tuple[VariantSpec, ...] = (
    VariantSpec(key=STATIC, name="Static prices", weight=0.5, config={"pricing": "static"}),
    VariantSpec(key=ENGINE, name="revopt pricing engine", weight=0.5, config={"pricing": "engine"}),
)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PricingGuardrailPlan:
    """What the back office sets at the split: a shop-wide row, and each product's floor and ceiling."""

    max_change_per_step: Decimal = Decimal("0.10")
    min_margin: Decimal = Decimal("0.15")
    # Floor and ceiling per product, as shares of its list price.
    band: Decimal = Decimal("0.30")
    auto_approve_max_change: Decimal = Decimal("0.10")
    # At most one change per product a week: each price stays long enough for its demand to be seen, and the
    # shop's prices do not churn nightly on Thompson draws.
    max_changes_per_period: int = 1
    period_days: int = 7
    # PricingSettings (None keeps the merchant's).
    horizon_days: int | None = None
    # The simulated shop's stock never ages and costs nothing to hold, and its true profit counts only the
    # margin on sales, so its merchant does not cut prices to clear slow stock (with the default year of cover,
    # the engine marked slow movers stocked for years down to 0.7-0.8x list and lost true profit).
    clear_dead_stock: bool = False
    explore: bool | None = None

    def floor_of(self, list_price: Decimal) -> Decimal:
        return (list_price * (1 - self.band)).quantize(Decimal("0.01"), rounding=ROUND_CEILING)

    def ceiling_of(self, list_price: Decimal) -> Decimal:
        return (list_price * (1 + self.band)).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)

    def describe(self) -> str:
        return (
            f"shop-wide: at most {self.max_change_per_step:.0%} per step and {self.max_changes_per_period} change per "
            f"{self.period_days} days, margin at least {self.min_margin:.0%}; "
            f"per product: floor and ceiling ±{self.band:.0%} of the list price; proposals within "
            f"{self.auto_approve_max_change:.0%} that pass every guardrail go live without a person"
            + (f"; stock judged over {self.horizon_days} days" if self.horizon_days is not None else "")
            + ("" if self.clear_dead_stock else "; no price cuts to clear slow stock")
            + (f"; exploration {'on' if self.explore else 'off'}" if self.explore is not None else "")
        )


@dataclass(frozen=True)
class ArmOutcome:
    arm: str
    products: int
    revenue: float  # merchandise revenue of completed orders over the experiment period
    margin: float
    pre_revenue: float
    pre_margin: float
    revenue_per_active_user: float  # the arm's revenue / the shop's active users
    margin_per_active_user: float
    repriced_products: int  # products whose live price changed at least once
    price_changes: int
    mean_final_price_ratio: float  # final price / list price, averaged over the arm's products
    true_profit_per_session_list: float  # expected gross margin per session from the arm's products, list prices
    true_profit_per_session_final: float  # the same at the final prices of both arms
    true_revenue_per_session_list: float
    true_revenue_per_session_final: float


@dataclass(frozen=True)
class PricingExperimentReport:
    sessions: int
    seed: int
    days: int
    split_day: int
    n_products: int
    n_categories: int
    guardrails: str
    arms: dict[str, ArmOutcome]
    active_users: int
    # Engine vs static, unit = product: CUPED-adjusted Welch, and plain Welch for comparison.
    margin_lift: LiftEstimate
    revenue_lift: LiftEstimate
    margin_lift_plain: LiftEstimate
    revenue_lift_plain: LiftEstimate
    margin_variance_reduction: float
    revenue_variance_reduction: float
    # What the shop's true demand says about the same contrast (each arm against its own list-price level).
    true_margin_lift: float
    true_revenue_lift: float
    true_profit_per_session_list: float  # the whole shop at list prices
    true_profit_per_session_final: float  # the whole shop at the final prices
    # Substitution: how much the static arm's true profit moved although its prices did not.
    static_arm_substitution: float
    demand_fits: int
    proposals_created: int
    proposals_auto_approved: int
    price_api_failures: int
    price_api_requests: int
    guardrail_violations: tuple[str, ...]  # engine price changes outside the guardrails (expected none)
    static_price_changes: int  # live price changes of static products (expected 0)
    days_with_several_prices: int  # (product, day) pairs where shoppers saw more than one price (expected 0)
    simulation_id: int | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(check, value, bound, result) for `manage.py evaluate_pricing`; "info" rows carry no bound."""

        def passed(ok: bool) -> str:
            return "pass" if ok else "fail"

        engine, static = self.arms[ENGINE], self.arms[STATIC]
        revenue_growth = _growth_ratio(engine.revenue, engine.pre_revenue, static.revenue, static.pre_revenue)
        margin_growth = _growth_ratio(engine.margin, engine.pre_margin, static.margin, static.pre_margin)
        true_engine_gain = engine.true_profit_per_session_final - engine.true_profit_per_session_list
        return [
            (
                "experiment: engine products repriced",
                f"{engine.repriced_products} of {engine.products} ({engine.price_changes} changes)",
                "> 0",
                passed(engine.repriced_products > 0),
            ),
            (
                "experiment: engine price changes inside the guardrails",
                f"{len(self.guardrail_violations)} outside",
                "0",
                passed(not self.guardrail_violations),
            ),
            (
                "experiment: static products repriced",
                str(self.static_price_changes),
                "0",
                passed(not self.static_price_changes),
            ),
            (
                "experiment: product-days with more than one price shown",
                str(self.days_with_several_prices),
                "0 (one price for every shopper)",
                passed(self.days_with_several_prices == 0),
            ),
            (
                "experiment: price API failures",
                f"{self.price_api_failures} of {self.price_api_requests}",
                "0",
                passed(self.price_api_failures == 0),
            ),
            (
                "experiment: margin per product, engine vs static (CUPED, 95% CI)",
                _lift_text(self.margin_lift),
                "info",
                "info",
            ),
            (
                "experiment: revenue per product, engine vs static (CUPED, 95% CI)",
                _lift_text(self.revenue_lift),
                "info",
                "info",
            ),
            (
                "experiment: RPAU contribution, engine vs static",
                f"{_ratio(engine.revenue_per_active_user, static.revenue_per_active_user):+.1%} "
                f"({engine.revenue_per_active_user:.2f} vs {static.revenue_per_active_user:.2f}, "
                f"{self.active_users} users); against each arm's pre-period "
                f"{revenue_growth:+.1%}",
                "info",
                "info",
            ),
            (
                "experiment: margin per active user, engine vs static",
                f"{_ratio(engine.margin_per_active_user, static.margin_per_active_user):+.1%} "
                f"({engine.margin_per_active_user:.2f} vs {static.margin_per_active_user:.2f}); against each "
                f"arm's pre-period {margin_growth:+.1%}",
                "info",
                "info",
            ),
            (
                "experiment: true margin lift (world's demand) inside the measured 95% CI",
                f"{self.true_margin_lift:+.1%} in {_interval_text(self.margin_lift)}",
                "info",
                "yes" if self.margin_lift.relative_interval.contains(self.true_margin_lift) else "no",
            ),
            (
                "experiment: engine arm's true profit per session, final vs list prices",
                f"{true_engine_gain:+.4f} "
                f"({_ratio(engine.true_profit_per_session_final, engine.true_profit_per_session_list):+.1%})",
                "> 0",
                passed(true_engine_gain > 0),
            ),
        ]

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["arms"] = {key: dataclasses.asdict(arm) for key, arm in self.arms.items()}
        for name in ("margin_lift", "revenue_lift", "margin_lift_plain", "revenue_lift_plain"):
            data[name] = _lift_dict(getattr(self, name))
        data["guardrail_violations"] = list(self.guardrail_violations)
        data["notes"] = list(self.notes)
        return data

    def lines(self) -> list[str]:
        """The report as text: the setup, the per-arm table, the lifts beside the truth, the notes."""
        engine, static = self.arms[ENGINE], self.arms[STATIC]
        header = f"{'':34}{'static':>14}{'engine':>14}"

        def row(label: str, getter: Callable[[ArmOutcome], float], fmt: str) -> str:
            return f"{label:34}{format(getter(static), fmt):>14}{format(getter(engine), fmt):>14}"

        lines = [
            f"AI pricing vs static pricing: {self.sessions:,} sessions over {self.days} days (seed {self.seed}), "
            f"{self.n_products} products in {self.n_categories} categories; "
            f"list prices on days 0-{self.split_day - 1}, "
            f"experiment '{EXPERIMENT_KEY}' from day {self.split_day} (products randomised 50/50).",
            f"Guardrails: {self.guardrails}.",
            f"Back office: {self.demand_fits} demand fits, {self.proposals_created} proposals, "
            f"{self.proposals_auto_approved} went live; price API: {self.price_api_requests} calls, "
            f"{self.price_api_failures} failed.",
            "",
            header,
            row("products", lambda arm: arm.products, ",d"),
            row("products repriced", lambda arm: arm.repriced_products, ",d"),
            row("final price / list price", lambda arm: arm.mean_final_price_ratio, ".3f"),
            row("revenue, pre-period", lambda arm: arm.pre_revenue, ",.2f"),
            row("revenue, experiment", lambda arm: arm.revenue, ",.2f"),
            row("margin, pre-period", lambda arm: arm.pre_margin, ",.2f"),
            row("margin, experiment", lambda arm: arm.margin, ",.2f"),
            row("revenue per active user (RPAU)", lambda arm: arm.revenue_per_active_user, ".4f"),
            row("margin per active user", lambda arm: arm.margin_per_active_user, ".4f"),
            row("true profit/session, list", lambda arm: arm.true_profit_per_session_list, ".4f"),
            row("true profit/session, final", lambda arm: arm.true_profit_per_session_final, ".4f"),
            "",
            f"Engine vs static, unit = product ({engine.products} vs {static.products}), 95% CIs:",
            f"  margin per product   CUPED {_lift_text(self.margin_lift)}  "
            f"(variance -{self.margin_variance_reduction:.0%}); "
            f"plain Welch {_lift_text(self.margin_lift_plain)}",
            f"  revenue per product  CUPED {_lift_text(self.revenue_lift)}  "
            f"(variance -{self.revenue_variance_reduction:.0%}); "
            f"plain Welch {_lift_text(self.revenue_lift_plain)}",
            f"  RPAU contribution {_ratio(engine.revenue_per_active_user, static.revenue_per_active_user):+.1%}, "
            f"margin per active user {_ratio(engine.margin_per_active_user, static.margin_per_active_user):+.1%} "
            f"({self.active_users:,} active users saw both arms)",
            f"  truth (world's demand, each arm against its list-price level): margin {self.true_margin_lift:+.1%}, "
            f"revenue {self.true_revenue_lift:+.1%}; whole shop's expected profit per session "
            f"{self.true_profit_per_session_list:.4f} at list prices, "
            f"{self.true_profit_per_session_final:.4f} at the final ones "
            f"({_ratio(self.true_profit_per_session_final, self.true_profit_per_session_list):+.1%})",
        ]
        return lines + [""] + [f"Note: {note}" for note in self.notes]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator - 1.0 if denominator else math.nan


def _growth_ratio(treated: float, treated_before: float, control: float, control_before: float) -> float:
    """Difference in differences as a ratio: the arms start from different sizes (their products differ), and
    the same active users see both arms in each period, so an arm's growth over its own pre-period is its
    per-user growth."""
    if min(treated_before, control_before, control) <= 0:
        return float("nan")
    return (treated / treated_before) / (control / control_before) - 1.0


def _interval_text(estimate: LiftEstimate) -> str:
    return f"[{estimate.relative_interval.low:+.1%}, {estimate.relative_interval.high:+.1%}]"


def _lift_text(estimate: LiftEstimate) -> str:
    return f"{estimate.relative:+.1%} {_interval_text(estimate)} p={estimate.p_value:.3f}"


def _lift_dict(estimate: LiftEstimate) -> dict:
    return {
        "control": estimate.control,
        "treatment": estimate.treatment,
        "relative": estimate.relative,
        "relative_low": estimate.relative_interval.low,
        "relative_high": estimate.relative_interval.high,
        "absolute": estimate.absolute,
        "absolute_low": estimate.absolute_interval.low,
        "absolute_high": estimate.absolute_interval.high,
        "p_value": estimate.p_value,
        "confidence": estimate.confidence,
    }


# --- the run --------------------------------------------------------------------------------------


def day_start_of(config: WorldConfig, day: int) -> datetime:
    return datetime.combine(config.start_date + timedelta(days=day), time(0), tzinfo=UTC)


@dataclass
class _BackOffice:
    """What the merchant's back office does between simulated days; counts what it did."""

    merchant: Merchant
    config: WorldConfig
    split_day: int
    plan: PricingGuardrailPlan
    seed: int
    experiment: Experiment | None = None
    fits: int = 0
    proposals_created: int = 0
    proposals_auto_approved: int = 0

    def __call__(self, day: int) -> None:
        # The night after `day`: what it decides is live from the next morning.
        if day < self.split_day - 1 or day >= self.config.days - 1:
            return
        night = day_start_of(self.config, day + 1)
        if day == self.split_day - 1:
            self.setup(now=night)
        demand_model_fit(merchant=self.merchant, now=night)
        self.fits += 1
        batch = price_proposals_generate(merchant=self.merchant, now=night, seed=self.seed * 1000 + day)
        self.proposals_created += batch.created
        self.proposals_auto_approved += batch.auto_approved

    def setup(self, *, now: datetime) -> None:
        guardrails_set(merchant=self.merchant, plan=self.plan)
        self.experiment = experiment_create(
            merchant=self.merchant,
            key=EXPERIMENT_KEY,
            name="AI pricing vs static pricing",
            hypothesis="The engine's prices, inside the guardrails, earn more margin per product than list prices.",
            surface=Surface.PRICING,
            variants=list(PRICING_VARIANTS),
            primary_metric="margin_per_user",
            secondary_metrics=["revenue_per_user"],
            pre_period_days=self.split_day,
        )
        experiment_start(experiment=self.experiment, actor=None, now=now)


def guardrails_set(*, merchant: Merchant, plan: PricingGuardrailPlan) -> None:
    """The merchant's guardrails and auto-approve band, through the services a merchant's admin uses."""
    guardrail_save(
        merchant=merchant,
        actor=None,
        scope=GuardrailScope.MERCHANT,
        limits=GuardrailLimits(
            max_change_per_step=plan.max_change_per_step,
            min_margin=plan.min_margin,
            max_changes_per_period=plan.max_changes_per_period,
            period_days=plan.period_days,
        ),
        note="pricing experiment: the shop's limits",
    )
    for product in Product.objects.for_merchant(merchant).filter(is_active=True).order_by("pk"):
        guardrail_save(
            merchant=merchant,
            actor=None,
            scope=GuardrailScope.PRODUCT,
            product=product,
            limits=GuardrailLimits(
                price_floor=plan.floor_of(product.price), price_ceiling=plan.ceiling_of(product.price)
            ),
            note=f"pricing experiment: ±{plan.band:.0%} of the list price",
        )
    settings = pricing_settings_for(merchant=merchant)
    settings.auto_approve_max_change = plan.auto_approve_max_change
    changed = ["auto_approve_max_change"]
    if plan.horizon_days is not None:
        settings.horizon_days = plan.horizon_days
        changed.append("horizon_days")
    if not plan.clear_dead_stock:
        settings.dead_stock_cover_days = None
        changed.append("dead_stock_cover_days")
    if plan.explore is not None:
        settings.explore = plan.explore
        changed.append("explore")
    pricing_settings_save(settings=settings, actor=None, changed_fields=changed)


def pricing_experiment_run(
    *,
    merchant: Merchant,
    config: WorldConfig,
    split_day: int,
    plan: PricingGuardrailPlan | None = None,
    progress: bool = True,
) -> PricingExperimentReport:
    """Simulate the shop on `merchant`, run the experiment from `split_day`, and analyse it."""
    if not 1 <= split_day < config.days - 1:
        raise ValueError("split_day must leave at least one day before and two days after it")
    started = datetime.now(UTC)
    plan = plan or PricingGuardrailPlan()
    config = simulation_config_resolve(merchant=merchant, config=config)
    policy = PricingPolicy(max_products=config.listing_size)
    back_office = _BackOffice(merchant=merchant, config=config, split_day=split_day, plan=plan, seed=config.seed)
    simulation = simulation_run(
        merchant=merchant, config=config, policy=policy, progress=progress, on_day_stored=back_office
    )
    report = pricing_experiment_analyze(
        merchant=merchant,
        simulation=simulation,
        split_day=split_day,
        plan=plan,
        final_prices=policy.live_prices,
    )
    return dataclasses.replace(
        report,
        demand_fits=back_office.fits,
        proposals_created=back_office.proposals_created,
        proposals_auto_approved=back_office.proposals_auto_approved,
        price_api_failures=policy.failures,
        price_api_requests=policy.price_requests,
        seconds=(datetime.now(UTC) - started).total_seconds(),
    )


def pricing_experiment_evaluate(
    *, sessions: int = 20_000, seed: int = 0, progress: bool = True, keep_merchant: bool = False
) -> PricingExperimentReport:
    """The end-to-end experiment on a throwaway merchant (deleted afterwards unless `keep_merchant`): 120 products
    in 6 categories over 56 days, split at day 28."""
    merchant = merchant_create(name=f"Pricing experiment {seed}", slug=f"pricing-experiment-{seed}-{_unique()}")
    config = WorldConfig(seed=seed, n_sessions=sessions, days=56, n_products=120, n_categories=6)
    try:
        return pricing_experiment_run(merchant=merchant, config=config, split_day=28, progress=progress)
    finally:
        if not keep_merchant:
            merchant.delete()


def _unique() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")


# --- the analysis ---------------------------------------------------------------------------------


def _per_product(*, merchant: Merchant, start: datetime, end: datetime) -> dict[int, tuple[float, float]]:
    """product id → (merchandise revenue, gross margin) of completed orders placed in [start, end)."""
    rows = (
        OrderLine.objects.for_merchant(merchant)
        .filter(
            product__isnull=False,
            order__status=OrderStatus.COMPLETED,
            order__placed_at__gte=start,
            order__placed_at__lt=end,
        )
        .values("product_id")
        .annotate(
            revenue=Sum(Cast(F("unit_price"), FloatField()) * F("quantity")),
            cost=Sum(Cast(F("unit_cost"), FloatField()) * F("quantity")),
        )
    )
    return {row["product_id"]: (row["revenue"] or 0.0, (row["revenue"] or 0.0) - (row["cost"] or 0.0)) for row in rows}


def _sums(values: np.ndarray, covariates: np.ndarray) -> SampleSums:
    return SampleSums(
        n=len(values),
        y_sum=float(values.sum()),
        y_sum_squares=float((values**2).sum()),
        x_sum=float(covariates.sum()),
        x_sum_squares=float((covariates**2).sum()),
        xy_sum=float((values * covariates).sum()),
    )


def _cuped_welch(control: SampleSums, treatment: SampleSums) -> tuple[LiftEstimate, float]:
    adjusted = cuped_estimates(control, treatment)
    estimate = lift(
        adjusted.control,
        adjusted.treatment,
        confidence=CONFIDENCE,
        degrees_of_freedom=welch_degrees_of_freedom(adjusted.control, adjusted.treatment),
    )
    return estimate, adjusted.variance_reduction


def _days_with_several_prices(*, merchant: Merchant, start: datetime, end: datetime) -> int:
    """(product, UTC day) pairs whose "Product Viewed" events carry more than one price."""
    return (
        Event.objects.for_merchant(merchant)
        .filter(
            name="Product Viewed", product__isnull=False, price__isnull=False, timestamp__gte=start, timestamp__lt=end
        )
        .annotate(day=TruncDate("timestamp", tzinfo=UTC))
        .values("product_id", "day")
        .annotate(prices=Count("price", distinct=True))
        .filter(prices__gt=1)
        .count()
    )


def _violations(
    changes: list[PriceChange],
    *,
    plan: PricingGuardrailPlan,
    list_price: dict[int, Decimal],
    cost: dict[int, Decimal | None],
) -> list[str]:
    found = []
    for change in changes:
        base = list_price[change.product_id]
        problems = []
        if abs(change.to_price / change.from_price - 1) > plan.max_change_per_step + Decimal("0.0001"):
            problems.append("step")
        if not plan.floor_of(base) <= change.to_price <= plan.ceiling_of(base):
            problems.append("floor/ceiling")
        unit_cost = cost[change.product_id]
        if unit_cost is not None and (change.to_price - unit_cost) / change.to_price < plan.min_margin - Decimal(
            "0.0001"
        ):
            problems.append("margin")
        if problems:
            found.append(f"{change.product_id}: {change.from_price} → {change.to_price} ({', '.join(problems)})")
    return found


def pricing_experiment_analyze(
    *,
    merchant: Merchant,
    simulation: SimulationRun,
    split_day: int,
    plan: PricingGuardrailPlan,
    final_prices: dict[str, float],
) -> PricingExperimentReport:
    """Per-product CUPED + Welch, per-arm RPAU, and the truth under the world's demand."""
    world = World.from_ground_truth(simulation.ground_truth)
    config = world.config
    start, split_at, end = day_start_of(config, 0), day_start_of(config, split_day), day_start_of(config, config.days)

    products = list(Product.objects.for_merchant(merchant).filter(sku__in=world.products["sku"]).order_by("pk"))
    arms = pricing_arms_for_products(merchant=merchant, products=products)
    arm_of = {product.pk: arms[product.pk].variant_key if product.pk in arms else STATIC for product in products}
    index_of = {product.pk: world.product_index_by_sku[product.sku] for product in products}
    list_price = {product.pk: Decimal(f"{world.list_price[index_of[product.pk]]:.2f}") for product in products}
    cost = {product.pk: product.cost for product in products}

    during = _per_product(merchant=merchant, start=split_at, end=end)
    before = _per_product(merchant=merchant, start=start, end=split_at)
    active_users = (
        Event.objects.for_merchant(merchant)
        .filter(timestamp__gte=split_at, timestamp__lt=end)
        .values("customer_id")
        .distinct()
        .count()
    )
    changes = list(PriceChange.objects.for_merchant(merchant).filter(product__in=products).order_by("created_at", "pk"))

    prices_final = world.list_price.copy()
    for sku, price in final_prices.items():
        if sku in world.product_index_by_sku:
            prices_final[world.product_index_by_sku[sku]] = price
    demand_list, demand_final = world.expected_demand(world.list_price), world.expected_demand(prices_final)
    profit_list = demand_list * (world.list_price - world.unit_cost)
    profit_final = demand_final * (prices_final - world.unit_cost)
    revenue_list, revenue_final = demand_list * world.list_price, demand_final * prices_final

    outcomes: dict[str, ArmOutcome] = {}
    samples: dict[str, dict[str, SampleSums]] = {}
    for arm in (STATIC, ENGINE):
        ids = [pk for pk in arm_of if arm_of[pk] == arm]
        rows = np.array([index_of[pk] for pk in ids], dtype=np.int64)
        revenue = np.array([during.get(pk, (0.0, 0.0))[0] for pk in ids])
        margin = np.array([during.get(pk, (0.0, 0.0))[1] for pk in ids])
        pre_revenue = np.array([before.get(pk, (0.0, 0.0))[0] for pk in ids])
        pre_margin = np.array([before.get(pk, (0.0, 0.0))[1] for pk in ids])
        samples[arm] = {"revenue": _sums(revenue, pre_revenue), "margin": _sums(margin, pre_margin)}
        arm_changes = [change for change in changes if arm_of.get(change.product_id) == arm]
        outcomes[arm] = ArmOutcome(
            arm=arm,
            products=len(ids),
            revenue=float(revenue.sum()),
            margin=float(margin.sum()),
            pre_revenue=float(pre_revenue.sum()),
            pre_margin=float(pre_margin.sum()),
            revenue_per_active_user=float(revenue.sum()) / active_users if active_users else 0.0,
            margin_per_active_user=float(margin.sum()) / active_users if active_users else 0.0,
            repriced_products=len({change.product_id for change in arm_changes}),
            price_changes=len(arm_changes),
            mean_final_price_ratio=float((prices_final[rows] / world.list_price[rows]).mean()) if len(rows) else 1.0,
            true_profit_per_session_list=float(profit_list[rows].sum()),
            true_profit_per_session_final=float(profit_final[rows].sum()),
            true_revenue_per_session_list=float(revenue_list[rows].sum()),
            true_revenue_per_session_final=float(revenue_final[rows].sum()),
        )

    margin_lift, margin_reduction = _cuped_welch(samples[STATIC]["margin"], samples[ENGINE]["margin"])
    revenue_lift, revenue_reduction = _cuped_welch(samples[STATIC]["revenue"], samples[ENGINE]["revenue"])
    engine, static = outcomes[ENGINE], outcomes[STATIC]

    def true_contrast(engine_list: float, engine_final: float, static_list: float, static_final: float) -> float:
        if min(engine_list, static_list, static_final) <= 0:
            return math.nan
        return (engine_final / engine_list) / (static_final / static_list) - 1.0

    static_changes = [change for change in changes if arm_of.get(change.product_id) == STATIC]
    substitution = _ratio(static.true_profit_per_session_final, static.true_profit_per_session_list)
    direction = (
        "the static arm gained sales the engine's dearer prices turned away, so the measured margin lift understates "
        "a shop-wide roll-out's"
        if substitution > 0
        else "the static arm lost sales to the engine's cheaper prices, so the measured lift overstates a shop-wide "
        "roll-out's"
    )
    notes = (
        "Products compete within a category, so the arms interfere: under the world's demand the static arm's "
        f"expected profit per session moved {substitution:+.1%} although its prices never changed — {direction}.",
        "RPAU per arm is the arm's revenue over the same active users (everyone saw both arms): with equal product "
        "counts its relative lift is the per-product revenue lift without CUPED (they differ by the arms' product "
        "counts: "
        f"{engine.products} vs {static.products}).",
        "Measured revenue and margin are merchandise amounts of completed orders (after cart abandonment); the true "
        "figures are expected first-cart choices per session, before abandonment, which also depends on price.",
    )
    return PricingExperimentReport(
        sessions=config.n_sessions,
        seed=config.seed,
        days=config.days,
        split_day=split_day,
        n_products=len(products),
        n_categories=len(world.categories),
        guardrails=plan.describe(),
        arms=outcomes,
        active_users=active_users,
        margin_lift=margin_lift,
        revenue_lift=revenue_lift,
        margin_lift_plain=welch_t_test(samples[STATIC]["margin"], samples[ENGINE]["margin"], confidence=CONFIDENCE),
        revenue_lift_plain=welch_t_test(samples[STATIC]["revenue"], samples[ENGINE]["revenue"], confidence=CONFIDENCE),
        margin_variance_reduction=margin_reduction,
        revenue_variance_reduction=revenue_reduction,
        true_margin_lift=true_contrast(
            engine.true_profit_per_session_list,
            engine.true_profit_per_session_final,
            static.true_profit_per_session_list,
            static.true_profit_per_session_final,
        ),
        true_revenue_lift=true_contrast(
            engine.true_revenue_per_session_list,
            engine.true_revenue_per_session_final,
            static.true_revenue_per_session_list,
            static.true_revenue_per_session_final,
        ),
        true_profit_per_session_list=float(profit_list.sum()),
        true_profit_per_session_final=float(profit_final.sum()),
        static_arm_substitution=substitution,
        demand_fits=0,
        proposals_created=0,
        proposals_auto_approved=0,
        price_api_failures=0,
        price_api_requests=0,
        guardrail_violations=tuple(
            _violations(
                [change for change in changes if arm_of.get(change.product_id) == ENGINE],
                plan=plan,
                list_price=list_price,
                cost=cost,
            )
        ),
        static_price_changes=len(static_changes),
        days_with_several_prices=_days_with_several_prices(merchant=merchant, start=start, end=end),
        simulation_id=simulation.pk,
        notes=notes,
    )


__all__ = [
    "EXPERIMENT_KEY",
    "PRICING_VARIANTS",
    "ArmOutcome",
    "PricingExperimentReport",
    "PricingGuardrailPlan",
    "pricing_experiment_analyze",
    "pricing_experiment_evaluate",
    "pricing_experiment_run",
]
