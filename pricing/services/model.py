"""Fitting the demand model: read the merchant's history, fit, store one estimate per product.

`demand_model_fit` is not one transaction: the run row is committed first (RUNNING) and its progress is
written as the fit goes, so the screens show it. The estimates and the flip to SUCCEEDED are written in
one transaction, so a half-written run is never in service; a failure marks the run FAILED and leaves the
previous run in service.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from catalog.models import Category, Product
from pricing import elasticity
from pricing.elasticity import DemandFit, ProductElasticity
from pricing.models import DemandModelRun, ElasticityEstimate, ModelRunStatus
from pricing.selectors.demand import demand_panel, merchant_zone
from pricing.selectors.guardrails import pricing_settings_for
from pricing.selectors.model import demand_fit_running
from revopt.jsonable import jsonable
from revopt.runs import RunProgress, run_failed
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write, merchant_lock

logger = logging.getLogger(__name__)

Progress = Callable[[float], None]

# Stages of a fit on the 0..1 progress scale.
PANEL_DONE = 0.15
FIT_DONE = 0.9
# The run row is written when progress moves this much (or this long after the last write).
CENT = Decimal("0.01")


class DemandFitRunning(RuntimeError):
    """Another fit of the merchant is under way: two at once would race to be the one in service."""


def demand_model_fit(
    *, merchant: Merchant, now: datetime | None = None, progress: Progress | None = None
) -> DemandModelRun:
    """Fits the merchant's demand model on the last `history_days` complete days before `now`.

    Returns the SUCCEEDED run; on any failure the run is marked FAILED (with the error) and the exception
    re-raised, the previous run staying in service.
    """
    now = now or timezone.now()
    settings = pricing_settings_for(merchant=merchant)
    today = timezone.localdate(now, timezone=merchant_zone(merchant))
    history_end = today - timedelta(days=1)
    history_start = today - timedelta(days=settings.history_days)
    with transaction.atomic():
        merchant_lock(merchant=merchant)
        running = demand_fit_running(merchant=merchant, now=now)
        if running is not None:
            raise DemandFitRunning(f"demand fit #{running.pk} is still running (started {running.started_at:%H:%M})")
        run = DemandModelRun.objects.create(
            merchant=merchant,
            status=ModelRunStatus.RUNNING,
            started_at=now,
            history_start=history_start,
            history_end=history_end,
        )
    report = RunProgress(run, progress)
    try:
        report(0.0)
        panel = demand_panel(merchant=merchant, start=history_start, end=history_end)
        report(PANEL_DONE)
        fit = elasticity.demand_fit(panel, progress=report.stage(PANEL_DONE, FIT_DONE))
        report(FIT_DONE)
        _store_fit(run=run, fit=fit, product_days=len(panel))
    except Exception as error:
        _fail(run=run, error=error)
        raise
    report(1.0)
    return run


def _store_fit(*, run: DemandModelRun, fit: DemandFit, product_days: int) -> None:
    merchant = run.merchant
    fitted = {
        product_id: estimate
        for product_id, estimate in fit.products.items()
        if math.isfinite(estimate.elasticity) and math.isfinite(estimate.sd)
    }
    # Products deleted since the panel was read are left out rather than failing the whole fit.
    existing = set(Product.objects.for_merchant(merchant).filter(pk__in=list(fitted)).values_list("pk", flat=True))
    categories = set(Category.objects.for_merchant(merchant).values_list("pk", flat=True))
    rows = [
        _estimate_row(run=run, estimate=estimate, categories=categories)
        for product_id, estimate in fitted.items()
        if product_id in existing
    ]
    with transaction.atomic():
        ElasticityEstimate.objects.bulk_create(rows, batch_size=2000)
        run.status = ModelRunStatus.SUCCEEDED
        run.finished_at = timezone.now()
        run.products_fitted = len(rows)
        run.product_days = product_days
        run.progress = 1.0
        run.summary = _summary(fit, skipped=len(fit.products) - len(rows))
        run.save(update_fields=["status", "finished_at", "products_fitted", "product_days", "progress", "summary"])
        audit_log_write(
            merchant=merchant,
            actor=None,
            action="pricing.demand_fit",
            target=run,
            detail={
                "status": run.status,
                "products_fitted": run.products_fitted,
                "product_days": product_days,
                "history_start": run.history_start.isoformat() if run.history_start else None,
                "history_end": run.history_end.isoformat() if run.history_end else None,
            },
        )


def _estimate_row(*, run: DemandModelRun, estimate: ProductElasticity, categories: set[int]) -> ElasticityEstimate:
    return ElasticityEstimate(
        merchant_id=run.merchant_id,
        run=run,
        product_id=estimate.product_id,
        category_id=estimate.category_id if estimate.category_id in categories else None,
        elasticity=float(estimate.elasticity),
        elasticity_sd=float(estimate.sd),
        lower=float(estimate.lower),
        upper=float(estimate.upper),
        own_elasticity=_finite_or_none(estimate.own_estimate),
        own_se=_finite_or_none(estimate.own_se),
        pooling_weight=float(estimate.pooling_weight),
        base_units_per_day=float(estimate.base_units_per_day),
        reference_price=Decimal(str(estimate.reference_price)).quantize(CENT),
        days_observed=int(estimate.days_observed),
        units_observed=float(estimate.units_observed),
        price_points=int(estimate.price_points),
        log_base_se=_finite_or_none(estimate.log_base_se) or 0.0,
    )


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def _summary(fit: DemandFit, *, skipped: int) -> dict:
    return jsonable(
        {
            "level": fit.level,
            "day_of_week": list(fit.day_of_week),
            "competitor_coefficient": fit.competitor_coefficient,
            "competitor_se": fit.competitor_se,
            "promotion_coefficient": fit.promotion_coefficient,
            "promotion_se": fit.promotion_se,
            "categories": {
                str(category_id): {"mean": prior.mean, "spread": prior.spread, "products": prior.products}
                for category_id, prior in fit.categories.items()
            },
            "skipped_products": skipped,
            "diagnostics": fit.diagnostics,
        }
    )


def _fail(*, run: DemandModelRun, error: Exception) -> None:
    logger.exception("demand fit %s of %s failed", run.pk, run.merchant.slug)
    run_failed(run=run, error=error, action="pricing.demand_fit")
