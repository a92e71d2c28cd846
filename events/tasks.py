import logging

from celery import shared_task

from revopt.tenancy.models import Merchant

from . import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, autoretry_for=(ConnectionError,), max_retries=3, retry_backoff=True)
def data_quality_report_create_task(self, merchant_id: int) -> int:
    merchant = Merchant.objects.get(pk=merchant_id)
    report = services.data_quality_report_create(merchant=merchant)
    logger.info("data quality for %s: %s", merchant.slug, "passed" if report.passed else "FAILED")
    return report.pk


@shared_task
def data_quality_reports_run_all() -> int:
    merchant_ids = list(Merchant.objects.filter(is_active=True).values_list("pk", flat=True))
    for merchant_id in merchant_ids:
        data_quality_report_create_task.delay(merchant_id)
    return len(merchant_ids)


# --- cart abandonment (funnel) --------------------------------------------------------------------------------


@shared_task(bind=True, autoretry_for=(ConnectionError,), max_retries=2, retry_backoff=True)
def abandonment_model_train_task(self, merchant_id: int) -> int | None:
    """Nightly: retrain the merchant's cart-abandonment predictor. Too few carts, or a training still under way,
    is logged; the previous model keeps serving either way."""
    from .services.abandonment import AbandonmentRunRunning, InsufficientCarts, abandonment_model_train

    merchant = Merchant.objects.filter(pk=merchant_id, is_active=True).first()
    if merchant is None:
        return None
    try:
        run = abandonment_model_train(merchant=merchant)
    except (InsufficientCarts, AbandonmentRunRunning) as error:
        logger.info("abandonment model for %s not trained: %s", merchant.slug, error)
        return None
    logger.info("abandonment model for %s: AUC %.3f", merchant.slug, run.metrics["auc"])
    return run.pk


@shared_task
def abandonment_models_train_all() -> int:
    """Nightly (beat): one training per active merchant with a cart in the last 90 days."""
    from datetime import timedelta

    from django.utils import timezone

    from .models import Event

    since = timezone.now() - timedelta(days=90)
    merchant_ids = list(
        Merchant.objects.filter(
            is_active=True,
            pk__in=Event.objects.filter(name="Product Added", timestamp__gte=since).values("merchant_id"),
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for merchant_id in merchant_ids:
        abandonment_model_train_task.delay(merchant_id)
    return len(merchant_ids)
