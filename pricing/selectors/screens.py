"""Reads behind the merchant's pricing screens: the overview and one product's page with its what-if.

Every query starts from `Model.objects.for_merchant(merchant)`. The overview costs a fixed number of
queries however many products a shop has (aggregates per category and per day, the queue capped); the
product page computes its what-if grid with `pricing.optimizer.what_if`, the same function the
proposals use, so the numbers on the page are the engine's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Avg, Count, Exists, F, OuterRef, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from catalog.models import CompetitorPriceObservation, Product
from revopt.tenancy.models import Merchant

from ..elasticity import ProductElasticity
from ..guardrails import GuardrailCheck, GuardrailContext, GuardrailLimits, feasible_range, guardrail_checks
from ..models import (
    DemandModelRun,
    ElasticityEstimate,
    Guardrail,
    GuardrailScope,
    ModelRunStatus,
    PriceChange,
    PriceProposal,
    PricingSettings,
    ProposalStatus,
)
from ..optimizer import PricingInput, WhatIf, what_if
from .guardrails import (
    ResolvedLimits,
    guardrail_context_for,
    guardrail_limits_resolved_for_products,
    pricing_settings_for,
)
from .model import (
    day_of_week_factors,
    demand_fit_running,
    demand_run_in_service,
    estimates_in_service,
    product_elasticity_from,
)

QUEUE_LIMIT = 20
RECENT_CHANGES_LIMIT = 20
PRODUCT_HISTORY_LIMIT = 50
CHANGE_CHART_DAYS = 90
LIVE_CHANGES_DAYS = 30
# The what-if grid: this many steps across the slider's range (GRID_STEPS + 1 prices).
GRID_STEPS = 40
# The slider spans at least ±SLIDER_SHARE around the current price, and the feasible range and competitors.
SLIDER_SHARE = Decimal("0.3")
# A what-if beyond this multiple of the highest known price is refused: the model would extrapolate blindly.
WHAT_IF_MAX_MULTIPLE = 10
WHAT_IF_DRAWS = 400
CENT = Decimal("0.01")
# Far beyond the fit task's hard time limit (35 minutes): a run still RUNNING after this lost its worker.
# z for a two-sided 90% interval: the category chart's spread covers ~90% of its products.
Z90 = 1.6449


def merchant_tz(merchant: Merchant) -> tzinfo:
    try:
        return ZoneInfo(merchant.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


# --- the overview -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfitOutlook:
    """The weekly profit change if every pending proposal were approved.

    Proposals are different products, so their uncertainties are treated as independent: the interval's
    half-widths add in quadrature (summing the bounds would claim every product lands at its worst at once).
    """

    expected: float
    lower: float
    upper: float
    proposals: int


@dataclass(frozen=True)
class ModelStatus:
    latest: DemandModelRun | None  # the newest fit, whatever its status
    in_service: DemandModelRun | None  # the newest succeeded fit: the estimates in use
    running: DemandModelRun | None

    @property
    def stalled(self) -> bool:
        return self.latest is not None and self.latest.status == ModelRunStatus.RUNNING and self.running is None

    @property
    def progress_percent(self) -> int:
        return round(100 * min(1.0, max(0.0, self.running.progress))) if self.running else 0


@dataclass(frozen=True)
class CategoryElasticity:
    category_id: int | None
    name: str
    mean: float
    spread: float  # standard deviation of the products' elasticities
    products: int

    @property
    def low(self) -> float:
        return self.mean - Z90 * self.spread

    @property
    def high(self) -> float:
        return self.mean + Z90 * self.spread


@dataclass(frozen=True)
class ChangeDay:
    day: date
    up: int
    down: int


@dataclass(frozen=True)
class ChangeRow:
    change: PriceChange
    can_roll_back: bool  # the product's latest change, not undone yet (the service has the last word)

    @property
    def direction(self) -> str:
        return "up" if self.change.to_price > self.change.from_price else "down"

    @property
    def change_share(self) -> float:
        return float(self.change.to_price / self.change.from_price - 1)


@dataclass(frozen=True)
class PricingOverview:
    settings: PricingSettings
    products: int
    pending: int
    outlook: ProfitOutlook
    live_changes: int  # in the last LIVE_CHANGES_DAYS
    model: ModelStatus
    categories: list[CategoryElasticity]
    change_days: list[ChangeDay]
    queue: list[PriceProposal]
    recent_changes: list[ChangeRow]


def model_status(*, merchant: Merchant, now: datetime | None = None) -> ModelStatus:
    """The fits to show. A run still RUNNING long after any task's time limit lost its worker: it is not
    "running" any more (it must not block a refit), only the latest run, shown as stalled."""
    now = now or timezone.now()
    runs = DemandModelRun.objects.for_merchant(merchant)
    latest = runs.order_by("-started_at", "-pk").first()
    running = demand_fit_running(merchant=merchant, now=now)
    return ModelStatus(latest=latest, in_service=demand_run_in_service(merchant=merchant), running=running)


def profit_outlook(*, merchant: Merchant) -> ProfitOutlook:
    rows = PriceProposal.objects.for_merchant(merchant).filter(status=ProposalStatus.PENDING)
    totals = rows.aggregate(
        proposals=Count("pk"),
        expected=Sum("profit_change"),
        below=Sum((F("profit_change") - F("profit_change_lower")) * (F("profit_change") - F("profit_change_lower"))),
        above=Sum((F("profit_change_upper") - F("profit_change")) * (F("profit_change_upper") - F("profit_change"))),
    )
    expected = float(totals["expected"] or 0.0)
    return ProfitOutlook(
        expected=expected,
        lower=expected - math.sqrt(float(totals["below"] or 0.0)),
        upper=expected + math.sqrt(float(totals["above"] or 0.0)),
        proposals=totals["proposals"],
    )


def category_elasticities(*, merchant: Merchant, run: DemandModelRun | None) -> list[CategoryElasticity]:
    """Per category of the fit in service: the mean of its products' elasticities and their spread."""
    if run is None:
        return []
    rows = (
        ElasticityEstimate.objects.for_merchant(merchant)
        .filter(run=run)
        .values("category_id", "category__name")
        .annotate(mean=Avg("elasticity"), mean_square=Avg(F("elasticity") * F("elasticity")), products=Count("pk"))
        .order_by("category__name")
    )
    categories = []
    for row in rows:
        mean = float(row["mean"])
        variance = max(0.0, float(row["mean_square"]) - mean * mean)
        categories.append(
            CategoryElasticity(
                category_id=row["category_id"],
                name=row["category__name"] or "Uncategorised",
                mean=mean,
                spread=math.sqrt(variance) if row["products"] > 1 else 0.0,
                products=row["products"],
            )
        )
    return categories


def price_change_days(*, merchant: Merchant, now: datetime, days: int = CHANGE_CHART_DAYS) -> list[ChangeDay]:
    """Live price changes per day (the merchant's time zone), rises and cuts apart; every day present."""
    tz = merchant_tz(merchant)
    last_day = now.astimezone(tz).date()
    first_day = last_day - timedelta(days=days - 1)
    start = datetime.combine(first_day, time.min, tzinfo=tz)
    counted = (
        PriceChange.objects.for_merchant(merchant)
        .filter(created_at__gte=start, created_at__lte=now)
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(
            up=Count("pk", filter=Q(to_price__gt=F("from_price"))),
            down=Count("pk", filter=Q(to_price__lt=F("from_price"))),
        )
    )
    by_day = {row["day"]: (row["up"], row["down"]) for row in counted}
    return [
        ChangeDay(day=day, up=by_day.get(day, (0, 0))[0], down=by_day.get(day, (0, 0))[1])
        for day in (first_day + timedelta(days=offset) for offset in range(days))
    ]


def _change_rows(changes: list[PriceChange]) -> list[ChangeRow]:
    return [
        ChangeRow(
            change=change,
            can_roll_back=not change.is_undone and change.is_latest_for_product,
        )
        for change in changes
    ]


def recent_changes(
    *, merchant: Merchant, product: Product | None = None, limit: int = RECENT_CHANGES_LIMIT
) -> list[ChangeRow]:
    """Live price changes, newest first, each saying whether it can still be rolled back."""
    later = PriceChange.objects.filter(product=OuterRef("product")).filter(
        Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), pk__gt=OuterRef("pk"))
    )
    changes = (
        PriceChange.objects.for_merchant(merchant)
        .annotate(
            is_latest_for_product=~Exists(later),
            is_undone=Exists(PriceChange.objects.filter(reverts=OuterRef("pk"))),
        )
        .select_related("product", "actor", "proposal")
    )
    if product is not None:
        changes = changes.filter(product=product)
    return _change_rows(list(changes.order_by("-created_at", "-pk")[:limit]))


def proposal_queue(*, merchant: Merchant, limit: int = QUEUE_LIMIT) -> list[PriceProposal]:
    """Pending proposals with the most expected weekly profit first."""
    return list(
        PriceProposal.objects.for_merchant(merchant)
        .filter(status=ProposalStatus.PENDING)
        .select_related("product")
        .order_by("-profit_change", "pk")[:limit]
    )


def pricing_overview(*, merchant: Merchant, now: datetime | None = None) -> PricingOverview:
    now = now or timezone.now()
    status = model_status(merchant=merchant, now=now)
    outlook = profit_outlook(merchant=merchant)
    return PricingOverview(
        settings=pricing_settings_for(merchant=merchant),
        products=Product.objects.for_merchant(merchant).filter(is_active=True).count(),
        pending=outlook.proposals,
        outlook=outlook,
        live_changes=PriceChange.objects.for_merchant(merchant)
        .filter(created_at__gt=now - timedelta(days=LIVE_CHANGES_DAYS), created_at__lte=now)
        .count(),
        model=status,
        categories=category_elasticities(merchant=merchant, run=status.in_service),
        change_days=price_change_days(merchant=merchant, now=now),
        queue=proposal_queue(merchant=merchant),
        recent_changes=recent_changes(merchant=merchant),
    )


# --- one product ------------------------------------------------------------------------------


def product_for_screen(*, merchant: Merchant, sku: str) -> Product:
    """The merchant's product with this SKU; raises Product.DoesNotExist (another shop's SKU included)."""
    return Product.objects.for_merchant(merchant).select_related("category").get(sku=sku)


def proposal_for_decision(*, merchant: Merchant, proposal_id: int) -> PriceProposal:
    return PriceProposal.objects.for_merchant(merchant).select_related("product").get(pk=proposal_id)


def change_for_rollback(*, merchant: Merchant, change_id: int) -> PriceChange:
    return PriceChange.objects.for_merchant(merchant).select_related("product").get(pk=change_id)


@dataclass(frozen=True)
class LimitRow:
    name: str  # the GuardrailLimits field
    label: str
    value: str
    source: str  # "this product", "category Tents", "whole shop"


_LIMIT_LABELS = {
    "price_floor": "Price floor",
    "price_ceiling": "Price ceiling",
    "min_margin": "Minimum margin",
    "max_change_per_step": "Largest change per step",
    "max_change_per_week": "Largest change per week",
    "max_changes_per_period": "Most changes per period",
    "period_days": "Period (days)",
    "competitor_band_low": "Lowest ratio to the cheapest competitor",
    "competitor_band_high": "Highest ratio to the cheapest competitor",
    "map_price": "Minimum advertised price (MAP)",
}
_SHARE_FIELDS = {"min_margin", "max_change_per_step", "max_change_per_week"}
_RATIO_FIELDS = {"competitor_band_low", "competitor_band_high"}


def _limit_value(name: str, value: object) -> str:
    if name in _SHARE_FIELDS:
        return f"{Decimal(value) * 100:.1f}%".replace(".0%", "%")
    if name in _RATIO_FIELDS:
        return f"{Decimal(value) * 100:.0f}%"
    if isinstance(value, Decimal):
        return f"{value.quantize(CENT):,}"
    return str(value)


def _source_words(row: Guardrail | None) -> str:
    if row is None:
        return "default"
    if row.scope == GuardrailScope.PRODUCT:
        return "this product"
    if row.scope == GuardrailScope.CATEGORY:
        return f"category {row.category.name}" if row.category else "a category"
    return "whole shop"


def limit_rows(resolved: ResolvedLimits) -> list[LimitRow]:
    """Each limit in force with the scope it comes from: the product's own row, the nearest category
    that sets it, or the shop."""
    return [
        LimitRow(
            name=name,
            label=label,
            value=_limit_value(name, getattr(resolved.limits, name)),
            source=_source_words(resolved.sources.get(name)),
        )
        for name, label in _LIMIT_LABELS.items()
        if getattr(resolved.limits, name) is not None
    ]


@dataclass(frozen=True)
class GridPoint:
    """One what-if price of the slider: weekly units, revenue and profit with 90% intervals, and the
    guardrails that price would break."""

    price: float
    units: float
    units_lower: float
    units_upper: float
    revenue: float
    revenue_lower: float
    revenue_upper: float
    profit: float
    profit_lower: float
    profit_upper: float
    broken: tuple[str, ...]  # messages of the failed checks

    def as_dict(self) -> dict:
        return {
            "price": self.price,
            "units": [self.units, self.units_lower, self.units_upper],
            "revenue": [self.revenue, self.revenue_lower, self.revenue_upper],
            "profit": [self.profit, self.profit_lower, self.profit_upper],
            "broken": list(self.broken),
        }


@dataclass(frozen=True)
class CompetitorPrice:
    competitor: str
    price: Decimal
    currency: str
    observed_at: datetime
    source_url: str
    vs_ours: float  # their price against ours: -0.05 is 5% cheaper


def pooling_words(estimate: ElasticityEstimate) -> str:
    """How much of the estimate is the category's, in words for the merchant."""
    borrowed = min(1.0, max(0.0, estimate.pooling_weight))
    share = f"{borrowed:.0%}"
    if estimate.own_elasticity is None:
        return (
            "Entirely borrowed from its category: its price never moved in the history, so its own sales cannot "
            "say how demand answers to price."
        )
    if borrowed < 0.2:
        return f"Mostly its own sales history: only {share} comes from its category."
    if borrowed < 0.6:
        return (
            f"A blend: {share} comes from its category, the rest from its own sales "
            f"(own estimate {estimate.own_elasticity:.2f})."
        )
    return (
        f"Mostly borrowed from its category ({share}): its own history is thin ({estimate.price_points} price "
        f"point{'s' if estimate.price_points != 1 else ''} over {estimate.days_observed} days), so it leans on "
        "similar products."
    )


@dataclass(frozen=True)
class ProductPricing:
    product: Product
    settings: PricingSettings
    competitors: list[CompetitorPrice]  # the latest observation per competitor, cheapest first
    estimate: ElasticityEstimate | None
    elasticity: ProductElasticity | None
    no_estimate_reason: str  # why there is no estimate ("" when there is one)
    limits: GuardrailLimits
    context: GuardrailContext
    limit_rows: list[LimitRow]
    feasible: tuple[Decimal, Decimal] | None
    pending: PriceProposal | None
    changes: list[ChangeRow]
    pricing_input: PricingInput | None  # None without an estimate: nothing to simulate
    grid: list[GridPoint]
    baseline: GridPoint | None  # the what-if at the current price

    @property
    def margin(self) -> float | None:
        if self.product.cost is None or not self.product.price:
            return None
        return float((self.product.price - self.product.cost) / self.product.price)

    @property
    def stock_cap_per_week(self) -> float | None:
        """The most a week can sell when the stock has to last the horizon (None: stock not limiting)."""
        if self.pricing_input is None or self.pricing_input.inventory is None or self.baseline is None:
            return None
        cap = self.pricing_input.inventory * 7 / self.pricing_input.horizon_days
        # The what-if caps units at the stock; when today's upper bound sits at the cap, the cap binds.
        return cap if self.grid and self.grid[0].units_upper >= 0.99 * cap else None

    @property
    def pooling_words(self) -> str:
        return pooling_words(self.estimate) if self.estimate is not None else ""

    @property
    def max_what_if_price(self) -> Decimal:
        known = [self.product.price, *(row.price for row in self.competitors)]
        if self.feasible is not None:
            known.append(self.feasible[1])
        return (max(known) * WHAT_IF_MAX_MULTIPLE).quantize(CENT)

    @property
    def slider_range(self) -> tuple[float, float]:
        if not self.grid:
            return (float(self.product.price), float(self.product.price))
        return (self.grid[0].price, self.grid[-1].price)


def latest_competitor_prices(*, merchant: Merchant, product: Product) -> list[CompetitorPrice]:
    observations = (
        CompetitorPriceObservation.objects.for_merchant(merchant)
        .filter(product=product)
        .order_by("competitor", "-observed_at", "-pk")
    )
    latest: dict[str, CompetitorPriceObservation] = {}
    for observation in observations[:1000]:
        latest.setdefault(observation.competitor, observation)
    rows = [
        CompetitorPrice(
            competitor=row.competitor,
            price=row.price,
            currency=row.currency,
            observed_at=row.observed_at,
            source_url=row.source_url,
            vs_ours=float(row.price / product.price - 1),
        )
        for row in latest.values()
    ]
    return sorted(rows, key=lambda row: (row.price, row.competitor))


def _no_estimate_reason(*, run: DemandModelRun | None, product: Product) -> str:
    if run is None:
        return "The demand model has not been fitted yet: refit it from the pricing overview."
    if not product.is_active:
        return "The product is inactive, so the demand model leaves it out."
    return (
        f"The last fit ({run.finished_at or run.started_at:%d %b %Y}) had no sales history for this product in its "
        f"window of {run.history_start or '?'} to {run.history_end or '?'}: it needs orders (or at least views) "
        "before its elasticity can be estimated."
    )


def pricing_input_for(
    *,
    product: Product,
    settings: PricingSettings,
    elasticity: ProductElasticity,
    context: GuardrailContext,
    feasible: tuple[Decimal, Decimal] | None,
    day_of_week: tuple[float, ...],
    start_weekday: int,
) -> PricingInput:
    current = float(product.price)
    low, high = (float(feasible[0]), float(feasible[1])) if feasible is not None else (current, current)
    return PricingInput(
        product_id=product.pk,
        current_price=current,
        unit_cost=float(product.cost) if product.cost is not None else None,
        estimate=elasticity,
        low=low,
        high=high,
        objective=settings.objective,
        inventory=product.inventory,
        horizon_days=settings.horizon_days,
        dead_stock_cover_days=settings.dead_stock_cover_days,
        competitor_price=float(context.lowest_competitor_price) if context.lowest_competitor_price else None,
        day_of_week=tuple(day_of_week),
        start_weekday=start_weekday,
    )


def grid_point(item: PricingInput, price: Decimal, *, limits: GuardrailLimits, context: GuardrailContext) -> GridPoint:
    """The engine's what-if at one price, with the guardrails it would break."""
    result: WhatIf = what_if(item, float(price), draws=WHAT_IF_DRAWS, seed=0)
    broken = tuple(check.message for check in guardrail_checks(limits, context, price) if not check.passed)
    return GridPoint(
        price=float(price),
        units=result.units.expected,
        units_lower=result.units.lower,
        units_upper=result.units.upper,
        revenue=result.revenue.expected,
        revenue_lower=result.revenue.lower,
        revenue_upper=result.revenue.upper,
        profit=result.profit.expected,
        profit_lower=result.profit.lower,
        profit_upper=result.profit.upper,
        broken=broken,
    )


def grid_prices(
    *, current: Decimal, feasible: tuple[Decimal, Decimal] | None, competitors: list[Decimal], steps: int = GRID_STEPS
) -> list[Decimal]:
    """GRID_STEPS + 1 prices to the cent, evenly spaced over ±30% of the current price widened to take in
    the feasible range and competitors' prices (so every marker on the chart is on the slider)."""
    low, high = current * (1 - SLIDER_SHARE), current * (1 + SLIDER_SHARE)
    for price in [*(feasible or ()), *competitors]:
        low, high = min(low, price), max(high, price)
    low = max(low, CENT)
    step = (high - low) / steps
    return sorted({(low + step * index).quantize(CENT) for index in range(steps + 1)})


def checks_at(*, screen: ProductPricing, price: Decimal) -> tuple[GuardrailCheck, ...]:
    return guardrail_checks(screen.limits, screen.context, price)


def product_pricing(*, merchant: Merchant, product: Product, now: datetime | None = None) -> ProductPricing:
    now = now or timezone.now()
    settings = pricing_settings_for(merchant=merchant)
    resolved = guardrail_limits_resolved_for_products(merchant=merchant, products=[product])[product.pk]
    limits = resolved.limits
    context = guardrail_context_for(merchant=merchant, product=product, now=now)
    feasible = feasible_range(limits, context)
    competitors = latest_competitor_prices(merchant=merchant, product=product)
    run = demand_run_in_service(merchant=merchant)
    estimate = estimates_in_service(merchant=merchant, product_ids=[product.pk]).get(product.pk) if run else None
    elasticity = product_elasticity_from(estimate) if estimate is not None else None
    pending = (
        PriceProposal.objects.for_merchant(merchant)
        .filter(product=product, status=ProposalStatus.PENDING)
        .order_by("-created_at")
        .first()
    )
    item, grid, baseline = None, [], None
    if elasticity is not None:
        item = pricing_input_for(
            product=product,
            settings=settings,
            elasticity=elasticity,
            context=context,
            feasible=feasible,
            day_of_week=tuple(day_of_week_factors(run)),
            start_weekday=now.astimezone(merchant_tz(merchant)).weekday(),
        )
        prices = grid_prices(current=product.price, feasible=feasible, competitors=[row.price for row in competitors])
        grid = [grid_point(item, price, limits=limits, context=context) for price in prices]
        baseline = grid_point(item, product.price, limits=limits, context=context)
    return ProductPricing(
        product=product,
        settings=settings,
        competitors=competitors,
        estimate=estimate,
        elasticity=elasticity,
        no_estimate_reason="" if estimate is not None else _no_estimate_reason(run=run, product=product),
        limits=limits,
        context=context,
        limit_rows=limit_rows(resolved),
        feasible=feasible,
        pending=pending,
        changes=recent_changes(merchant=merchant, product=product, limit=PRODUCT_HISTORY_LIMIT),
        pricing_input=item,
        grid=grid,
        baseline=baseline,
    )
