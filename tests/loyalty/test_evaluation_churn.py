from datetime import timedelta

import pytest
from django.utils import timezone

from loyalty.evaluation.churn_simulated import (
    MIN_AUC,
    MIN_RECENCY_MARGIN,
    ChurnStudyReport,
    auc_standard_error,
    recency_baseline_auc,
)
from loyalty.models import RunStatus
from tests.factories.events import CustomerFactory, OrderFactory


def _report(*, status: str = RunStatus.SUCCEEDED, auc: float = 0.8, recency_auc: float | None = 0.7, error: str = ""):
    return ChurnStudyReport(
        seed=0,
        sessions=30_000,
        days=270,
        horizon_days=90,
        simulate_seconds=100.0,
        refresh_seconds=5.0,
        orders=5_000,
        buyers=3_000,
        status=status,
        error=error,
        summary={
            "auc": auc,
            "precision": 0.8,
            "recall": 0.7,
            "threshold": 0.55,
            "base_rate": 0.6,
            "flagged_share": 0.5,
            "brier": 0.18,
            "calibration": [[0.2, 0.25, 100], [0.8, 0.75, 120]],
            "feature_importance": {"orders": 0.1, "days_since_last_order": 0.6, "revenue": 0.3},
        }
        if status == RunStatus.SUCCEEDED
        else {},
        recency_auc=recency_auc,
    )


def _verdicts(report: ChurnStudyReport) -> dict[str, bool | None]:
    return {check: passed for check, _, _, passed in report.checks()}


def test_a_model_above_the_floor_and_the_recency_rule_passes():
    # when
    verdicts = _verdicts(_report(auc=0.8, recency_auc=0.7))

    # then
    assert verdicts["AUC (test)"] is True
    assert verdicts["AUC of recency alone (days since the last order)"] is True
    assert not any(passed is False for passed in verdicts.values())


@pytest.mark.parametrize(
    ("auc", "recency_auc", "failing"),
    [
        (MIN_AUC - 0.01, 0.5, "AUC (test)"),
        (0.75, 0.80, "AUC of recency alone (days since the last order)"),
    ],
)
def test_a_weak_model_fails_its_check(auc, recency_auc, failing):
    # when
    verdicts = _verdicts(_report(auc=auc, recency_auc=recency_auc))

    # then
    assert verdicts[failing] is False


def test_the_auc_standard_error_follows_hanley_and_mcneil():
    # given: a chance-level AUC on 50 × 50 pairs: var = (1/4 + 98/12) / 2500
    expected = ((0.25 + 98 / 12) / 2500) ** 0.5

    # then
    assert auc_standard_error(0.5, positives=50, negatives=50) == pytest.approx(expected)
    assert auc_standard_error(0.8, positives=500, negatives=500) < auc_standard_error(0.8, positives=50, negatives=50)


def test_the_margin_over_recency_is_two_standard_errors_of_the_test_table():
    # given: the same figures on a small and on a large test table
    small = _report(recency_auc=0.8)
    small.summary.update(test_customers=200, base_rate=0.75)
    large = _report(recency_auc=0.8)
    large.summary.update(test_customers=100_000, base_rate=0.75)

    # then
    assert small.recency_margin() == pytest.approx(2 * auc_standard_error(0.8, positives=150, negatives=50))
    assert small.recency_margin() > 0.05
    assert large.recency_margin() == MIN_RECENCY_MARGIN


def test_a_failed_refresh_is_a_failed_check_with_its_reason():
    # when
    rows = _report(status=RunStatus.FAILED, error="too little history").checks()

    # then
    assert rows[-1][0] == "churn refresh"
    assert "too little history" in rows[-1][1]
    assert rows[-1][3] is False


def test_the_report_orders_features_by_importance_and_reads_the_calibration_table():
    # given
    report = _report()

    # then
    assert [name for name, _ in report.top_features(2)] == ["days_since_last_order", "revenue"]
    assert report.calibration_rows() == [(0.2, 0.25, 100), (0.8, 0.75, 120)]


@pytest.mark.django_db
def test_the_recency_baseline_ranks_churners_by_days_since_their_last_order(merchant):
    # given: as of 40 days ago with a 30-day horizon (labelled by orders until 10 days ago)
    now = timezone.now()
    as_of = now - timedelta(days=40)

    def customer_with_orders(*days_ago: int) -> None:
        customer = CustomerFactory(merchant=merchant)
        for days in days_ago:
            OrderFactory(merchant=merchant, customer=customer, placed_at=now - timedelta(days=days))

    customer_with_orders(100)  # churned, 60 days since the last order
    customer_with_orders(50)  # churned, 10 days
    customer_with_orders(45, 20)  # retained, 5 days
    customer_with_orders(90, 15)  # retained, 50 days

    # when
    auc = recency_baseline_auc(merchant=merchant, as_of=as_of, horizon=30)

    # then: of the four churned × retained pairs, only (10 days, 50 days) is ranked the wrong way
    assert auc == pytest.approx(0.75)


@pytest.mark.django_db
def test_the_recency_baseline_needs_both_classes(merchant):
    # given: everyone ordered again within the horizon
    now = timezone.now()
    customer = CustomerFactory(merchant=merchant)
    OrderFactory(merchant=merchant, customer=customer, placed_at=now - timedelta(days=60))
    OrderFactory(merchant=merchant, customer=customer, placed_at=now - timedelta(days=30))

    # when
    auc = recency_baseline_auc(merchant=merchant, as_of=now - timedelta(days=40), horizon=30)

    # then
    assert auc is None
