import logging

from celery import shared_task
from django.contrib.auth import get_user_model
from django.db import OperationalError

from revopt.tenancy.models import Merchant

from .services.training import recommender_train
from .services.versions import TrainingAlreadyRunning

logger = logging.getLogger(__name__)


# Time limits: CELERY_TASK_ANNOTATIONS in settings. A training that fails is recorded as a failed version
# and retried by the next nightly run; only a database that is unreachable before anything starts retries here.
@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def recommender_train_task(
    self, merchant_id: int, trigger: str = "schedule", created_by_id: int | None = None
) -> int | None:
    merchant = Merchant.objects.get(pk=merchant_id)
    created_by = get_user_model().objects.filter(pk=created_by_id).first() if created_by_id else None
    try:
        version = recommender_train(merchant=merchant, trigger=trigger, created_by=created_by)
    except TrainingAlreadyRunning as running:
        logger.info("skipping recommender training for %s: %s", merchant.slug, running)
        return None
    logger.info("recommender %s for %s: %s %s", version, merchant.slug, version.status, version.status_reason)
    return version.pk


@shared_task
def recommender_train_all() -> int:
    merchant_ids = list(Merchant.objects.filter(is_active=True).values_list("pk", flat=True))
    for merchant_id in merchant_ids:
        recommender_train_task.delay(merchant_id, trigger="schedule")
    return len(merchant_ids)
