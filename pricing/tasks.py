"""Celery entry points for pricing: each loads the merchant by id and calls one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from catalog.models import Product
from revopt.tenancy.models import Merchant

from .services.model import DemandFitRunning, demand_model_fit
from .services.proposals import price_proposals_generate

logger = logging.getLogger(__name__)


def _active_merchant(merchant_id: int) -> Merchant | None:
    merchant = Merchant.objects.filter(pk=merchant_id, is_active=True).first()
    if merchant is None:
        logger.info("merchant %s is gone or inactive: nothing to price", merchant_id)
    return merchant


# Time limits: CELERY_TASK_ANNOTATIONS in settings. A failed fit is recorded as a FAILED run (the previous
# one stays in service) and re-raised so the worker logs it; only an unreachable database retries here.
@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def demand_model_fit_task(self, merchant_id: int) -> int | None:
    merchant = _active_merchant(merchant_id)
    if merchant is None:
        return None
    try:
        run = demand_model_fit(merchant=merchant)
    except DemandFitRunning as busy:
        logger.info("demand fit of %s skipped: %s", merchant.slug, busy)
        return None
    logger.info("demand fit %s of %s: %s products", run.pk, merchant.slug, run.products_fitted)
    return run.pk


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def price_proposals_generate_task(self, merchant_id: int) -> dict | None:
    merchant = _active_merchant(merchant_id)
    if merchant is None:
        return None
    batch = price_proposals_generate(merchant=merchant)
    logger.info(
        "proposals for %s: %s created, %s superseded, %s auto-approved, skipped %s",
        merchant.slug,
        batch.created,
        batch.superseded,
        batch.auto_approved,
        batch.skipped,
    )
    return {"created": batch.created, "superseded": batch.superseded, "auto_approved": batch.auto_approved}


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def pricing_refresh_task(self, merchant_id: int) -> dict | None:
    """Fit, then propose from the new fit. A failed fit still proposes from the run in service."""
    merchant = _active_merchant(merchant_id)
    if merchant is None:
        return None
    try:
        demand_model_fit(merchant=merchant)
    except Exception:
        logger.exception("demand fit of %s failed: proposing from the fit in service", merchant.slug)
    batch = price_proposals_generate(merchant=merchant)
    return {"created": batch.created, "superseded": batch.superseded, "auto_approved": batch.auto_approved}


@shared_task
def pricing_refresh_all() -> int:
    """Nightly (beat): for every active merchant with active products, fit then propose, each in its own task."""
    merchant_ids = list(
        Merchant.objects.filter(is_active=True, pk__in=Product.objects.filter(is_active=True).values("merchant_id"))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for merchant_id in merchant_ids:
        pricing_refresh_task.delay(merchant_id)
    return len(merchant_ids)
