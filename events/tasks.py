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
