"""Reads of the events app; every function takes the merchant and stays inside it."""

from datetime import timedelta

from django.utils import timezone

from revopt.tenancy.models import Merchant

from ..models import DataQualityReport


class DataQualityGateClosed(Exception):
    """Training must not run: the latest data-quality report failed, is missing, or is too old."""

    def __init__(self, report: DataQualityReport | None, reason: str):
        super().__init__(reason)
        self.report = report


def data_quality_report_latest(*, merchant: Merchant) -> DataQualityReport | None:
    return DataQualityReport.objects.for_merchant(merchant).order_by("-created_at", "-pk").first()


def data_quality_gate_check(*, merchant: Merchant, max_age: timedelta | None = None) -> DataQualityReport:
    """The passing report that allows training, or DataQualityGateClosed saying why not."""
    report = data_quality_report_latest(merchant=merchant)
    if report is None:
        raise DataQualityGateClosed(None, "no data-quality report has been run")
    if not report.passed:
        failing = ", ".join(check["name"] for check in report.checks if check["status"] == "fail")
        raise DataQualityGateClosed(report, f"the latest data-quality report failed: {failing}")
    if max_age is not None and timezone.now() - report.created_at > max_age:
        raise DataQualityGateClosed(report, "the latest data-quality report is too old")
    return report


def data_quality_gate_is_open(*, merchant: Merchant, max_age: timedelta | None = None) -> bool:
    try:
        data_quality_gate_check(merchant=merchant, max_age=max_age)
    except DataQualityGateClosed:
        return False
    return True
