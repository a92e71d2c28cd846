"""Reads of the demand model in service: the latest succeeded fit and its per-product estimates."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pricing.elasticity import ProductElasticity
from pricing.models import DemandModelRun, ElasticityEstimate, ModelRunStatus
from revopt.tenancy.models import Merchant

NEUTRAL_WEEK = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


def demand_run_in_service(*, merchant: Merchant) -> DemandModelRun | None:
    """The latest succeeded fit: a running or failed one never replaces it."""
    return (
        DemandModelRun.objects.for_merchant(merchant)
        .filter(status=ModelRunStatus.SUCCEEDED)
        .order_by("-started_at", "-pk")
        .first()
    )


def estimates_in_service(
    *, merchant: Merchant, product_ids: Iterable[int] | None = None, run: DemandModelRun | None = None
) -> dict[int, ElasticityEstimate]:
    """Product id → its estimate in the run in service (or in `run`), one query after finding the run."""
    run = run or demand_run_in_service(merchant=merchant)
    if run is None:
        return {}
    estimates = ElasticityEstimate.objects.for_merchant(merchant).filter(run=run)
    if product_ids is not None:
        estimates = estimates.filter(product_id__in=list(product_ids))
    return {estimate.product_id: estimate for estimate in estimates}


def product_elasticity_from(estimate: ElasticityEstimate) -> ProductElasticity:
    """The stored row as the pure models' dataclass (for the optimizer and the what-if)."""
    return ProductElasticity(
        product_id=estimate.product_id,
        category_id=_category_of(estimate),
        elasticity=estimate.elasticity,
        sd=estimate.elasticity_sd,
        lower=estimate.lower,
        upper=estimate.upper,
        own_estimate=estimate.own_elasticity,
        own_se=estimate.own_se,
        pooling_weight=estimate.pooling_weight,
        base_units_per_day=estimate.base_units_per_day,
        reference_price=float(estimate.reference_price),
        days_observed=estimate.days_observed,
        units_observed=estimate.units_observed,
        price_points=estimate.price_points,
        log_base_se=estimate.log_base_se,
    )


def _category_of(estimate: ElasticityEstimate) -> int:
    return -1 if estimate.category_id is None else estimate.category_id


def day_of_week_factors(run: DemandModelRun | None) -> tuple[float, ...]:
    """The fit's demand factor per weekday (Monday first); ones when unknown."""
    if run is None:
        return NEUTRAL_WEEK
    factors = run.summary.get("day_of_week") if isinstance(run.summary, dict) else None
    if not isinstance(factors, list | tuple) or len(factors) != 7:
        return NEUTRAL_WEEK
    return tuple(float(factor) for factor in factors)


# A fit still RUNNING this long after it started lost its worker (far beyond any task's time limit): it no
# longer counts as running, so it blocks no new fit.
RUNNING_STALE_AFTER = timedelta(hours=2)


def demand_fit_running(*, merchant: Merchant, now: datetime) -> DemandModelRun | None:
    """The merchant's fit under way now, if any (stalled ones excepted)."""
    return (
        DemandModelRun.objects.for_merchant(merchant)
        .filter(status=ModelRunStatus.RUNNING, started_at__gte=now - RUNNING_STALE_AFTER)
        .order_by("-started_at", "-pk")
        .first()
    )
