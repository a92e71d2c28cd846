"""Celery entry points for loyalty: each loads the merchant by id and calls one service."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task
from django.db import OperationalError

from events.models import Order, OrderStatus
from revopt.tenancy.models import Merchant

from .models import InsightRun, LoyaltyProgram
from .services.churn import churn_refresh
from .services.insights import InsightRunRunning, InsufficientHistory, lifetime_value_refresh, segments_refresh
from .services.points import points_apply_order_changes, points_expire_due, tiers_reevaluate

logger = logging.getLogger(__name__)


def _active_merchant(merchant_id: int) -> Merchant | None:
    merchant = Merchant.objects.filter(pk=merchant_id, is_active=True).first()
    if merchant is None:
        logger.info("merchant %s is gone or inactive: no loyalty work", merchant_id)
    return merchant


# --- points -----------------------------------------------------------------------------------------------


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def points_for_orders_task(
    self, merchant_id: int, placed_order_ids: list[int], reversed_order_refs: list[str]
) -> dict | None:
    """After an ingested batch commits: earn for its new orders, claw back its refunds (idempotent)."""
    merchant = _active_merchant(merchant_id)
    if merchant is None:
        return None
    result = points_apply_order_changes(
        merchant=merchant, placed_order_ids=placed_order_ids, reversed_order_refs=reversed_order_refs
    )
    return {"earned": result.earned, "clawed_back": result.clawed_back}


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def points_expire_task(self, merchant_id: int) -> dict | None:
    merchant = _active_merchant(merchant_id)
    if merchant is None:
        return None
    expired = points_expire_due(merchant=merchant)
    tiers_changed = tiers_reevaluate(merchant=merchant)
    logger.info("loyalty of %s: %s lots expired, %s tiers changed", merchant.slug, expired, tiers_changed)
    return {"expired": expired, "tiers_changed": tiers_changed}


@shared_task
def points_expire_all() -> int:
    """Daily (beat): expire unspent points and move tiers, for every merchant running a program."""
    merchant_ids = list(
        Merchant.objects.filter(
            is_active=True, pk__in=LoyaltyProgram.objects.filter(is_active=True).values("merchant_id")
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for merchant_id in merchant_ids:
        points_expire_task.delay(merchant_id)
    return len(merchant_ids)


# --- insights ---------------------------------------------------------------------------------------------


def _merchants_with_orders() -> list[int]:
    return list(
        Merchant.objects.filter(
            is_active=True, pk__in=Order.objects.filter(status=OrderStatus.COMPLETED).values("merchant_id")
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _insight_refresh(merchant_id: int, refresh: Callable[..., InsightRun], what: str) -> int | None:
    """Run one insight service for the merchant. A run that fails is recorded as FAILED (its previous scores stay
    in service) and re-raised so the worker logs it; a shop whose history is too thin for the model, or whose run
    of that kind is still under way, is logged, not raised, so small shops do not alarm nightly."""
    merchant = _active_merchant(merchant_id)
    if merchant is None:
        return None
    try:
        run = refresh(merchant=merchant)
    except (InsufficientHistory, InsightRunRunning) as error:
        logger.info("%s of %s not refreshed: %s", what, merchant.slug, error)
        return None
    auc = run.summary.get("auc")
    logger.info(
        "%s run %s of %s: %s customers%s", what, run.pk, merchant.slug, run.customers, f", AUC {auc}" if auc else ""
    )
    return run.pk


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def segments_refresh_task(self, merchant_id: int) -> int | None:
    return _insight_refresh(merchant_id, segments_refresh, "segments")


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def lifetime_value_refresh_task(self, merchant_id: int) -> int | None:
    return _insight_refresh(merchant_id, lifetime_value_refresh, "lifetime value")


@shared_task
def insights_refresh_all() -> int:
    """Nightly (beat): segments and lifetime value, each in its own task, for every active merchant with orders."""
    merchant_ids = _merchants_with_orders()
    for merchant_id in merchant_ids:
        segments_refresh_task.delay(merchant_id)
        lifetime_value_refresh_task.delay(merchant_id)
    return len(merchant_ids)


# --- churn ------------------------------------------------------------------------------------------------


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def churn_refresh_task(self, merchant_id: int) -> int | None:
    """Weekly: train the churn model on a temporal split, score every customer, rebuild the retention list."""
    return _insight_refresh(merchant_id, churn_refresh, "churn")


@shared_task
def churn_refresh_all() -> int:
    """Weekly (beat): one churn refresh task per active merchant with orders."""
    merchant_ids = _merchants_with_orders()
    for merchant_id in merchant_ids:
        churn_refresh_task.delay(merchant_id)
    return len(merchant_ids)


# --- incentive uplift ---------------------------------------------------------------------------------------


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def uplift_model_train_task(self, merchant_id: int) -> int | None:
    """Nightly: retrain the incentive uplift model on the randomized offer decisions whose outcome is known.
    Too little randomized data, or a training still under way, is logged: the previous model keeps serving."""
    from .services.uplift import UpliftRunRunning, uplift_model_train

    merchant = _active_merchant(merchant_id)
    if merchant is None:
        return None
    try:
        run = uplift_model_train(merchant=merchant)
    except (InsufficientHistory, UpliftRunRunning) as error:
        logger.info("uplift model of %s not trained: %s", merchant.slug, error)
        return None
    logger.info("uplift model run %s of %s: %s decisions", run.pk, merchant.slug, run.decisions)
    return run.pk


@shared_task
def uplift_model_train_all() -> int:
    """Nightly (beat): one uplift training task per active merchant with randomized offer decisions."""
    from .models import OfferDecision

    merchant_ids = list(
        Merchant.objects.filter(
            is_active=True, pk__in=OfferDecision.objects.filter(randomized=True).values("merchant_id")
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for merchant_id in merchant_ids:
        uplift_model_train_task.delay(merchant_id)
    return len(merchant_ids)


# --- abandoned-cart recovery ------------------------------------------------------------------------------


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def abandoned_carts_enqueue_task(self, merchant_id: int) -> int | None:
    from .services.recovery import abandoned_carts_enqueue

    merchant = _active_merchant(merchant_id)
    if merchant is None:
        return None
    created = abandoned_carts_enqueue(merchant=merchant)
    if created:
        logger.info("recovery of %s: %s messages scheduled", merchant.slug, created)
    return created


@shared_task
def abandoned_carts_enqueue_all() -> int:
    """Every 10 minutes (beat): schedule follow-ups for the shops with carts in the last 48 h and recovery on."""
    from django.db.models import Exists, OuterRef
    from django.utils import timezone

    from events.models import Event

    from .models import RecoverySettings
    from .services.recovery import CART_MAX_AGE, PRODUCT_ADDED

    since = timezone.now() - CART_MAX_AGE
    merchant_ids = list(
        Merchant.objects.filter(is_active=True)
        .filter(Exists(Event.objects.filter(merchant_id=OuterRef("pk"), name=PRODUCT_ADDED, timestamp__gte=since)))
        .exclude(pk__in=RecoverySettings.objects.filter(enabled=False).values("merchant_id"))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for merchant_id in merchant_ids:
        abandoned_carts_enqueue_task.delay(merchant_id)
    return len(merchant_ids)


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def recovery_dispatch_task(self, merchant_id: int) -> dict | None:
    from .services.recovery import recovery_dispatch

    merchant = _active_merchant(merchant_id)
    if merchant is None:
        return None
    result = recovery_dispatch(merchant=merchant)
    logger.info("recovery webhook of %s: %s", merchant.slug, result)
    return {"sent": result.sent, "retrying": result.retrying, "failed": result.failed, "cancelled": result.cancelled}


@shared_task
def recovery_dispatch_all() -> int:
    """Every 5 minutes (beat): POST the due messages of the shops that receive them by webhook."""
    from django.utils import timezone

    from .models import RecoveryMessage, RecoverySettings, RecoveryStatus

    due = RecoveryMessage.objects.filter(status=RecoveryStatus.PENDING, scheduled_at__lte=timezone.now())
    merchant_ids = list(
        RecoverySettings.objects.filter(
            enabled=True, merchant__is_active=True, merchant_id__in=due.values("merchant_id")
        )
        .exclude(webhook_url="")
        .order_by("merchant_id")
        .values_list("merchant_id", flat=True)
    )
    for merchant_id in merchant_ids:
        recovery_dispatch_task.delay(merchant_id)
    return len(merchant_ids)
