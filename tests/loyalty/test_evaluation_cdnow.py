from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from events.models import Order
from events.validation import ParsedEvent, parse_event
from loyalty.evaluation.cdnow import (
    PUBLISHED_BGNBD,
    PUBLISHED_GAMMA_GAMMA,
    CdnowTransaction,
    cdnow_order_event,
    cdnow_raw_study,
    cdnow_summary_study,
    cdnow_transactions,
    holdout_groups,
)
from revopt.tenancy.models import Merchant


def test_the_published_summary_gives_the_published_parameters_within_one_percent():
    # when
    report = cdnow_summary_study()

    # then
    assert report.customers == 2357
    assert report.repeat_purchases == 2457
    for name, published in PUBLISHED_BGNBD.items():
        assert getattr(report.bgnbd, name) == pytest.approx(published, rel=0.01)
    assert report.bgnbd.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert report.gamma_gamma.customers == 946
    for name, published in PUBLISHED_GAMMA_GAMMA.items():
        assert getattr(report.gamma_gamma, name) == pytest.approx(published, rel=0.01)
    assert all(passed for *_, passed in report.checks())


def test_the_raw_log_is_read_customer_by_customer_as_written():
    # when
    transactions = cdnow_transactions(customers=2)

    # then: the file's first customer (00004, sample id 1) bought on four days, the second (00021) on two
    assert [(t.customer, t.sample_id, t.day.isoformat(), t.cds, t.dollars) for t in transactions] == [
        ("00004", 1, "1997-01-01", 2, Decimal("29.33")),
        ("00004", 1, "1997-01-18", 2, Decimal("29.73")),
        ("00004", 1, "1997-08-02", 1, Decimal("14.96")),
        ("00004", 1, "1997-12-12", 2, Decimal("26.48")),
        ("00021", 2, "1997-01-01", 3, Decimal("63.34")),
        ("00021", 2, "1997-01-13", 1, Decimal("11.77")),
    ]
    assert len(cdnow_transactions()) == 6919


def test_a_free_transaction_becomes_a_valid_zero_total_order_at_noon_utc():
    # given: one of the eight $0.00 transactions of the log
    transaction = CdnowTransaction(
        line=275, customer="01101", sample_id=87, day=datetime(1997, 1, 5).date(), cds=1, dollars=Decimal("0.00")
    )

    # when
    event = cdnow_order_event(transaction)
    parsed = parse_event(event, index=0, now=datetime.now(UTC), future_skew=timedelta(minutes=5))

    # then: the storefront validation accepts it; the line carries a cent, the order keeps the logged total
    assert isinstance(parsed, ParsedEvent)
    assert parsed.timestamp == datetime(1997, 1, 5, 12, tzinfo=UTC)
    assert parsed.user_id == "01101"
    assert parsed.order.order_id == "cdnow-275"
    assert parsed.order.total == Decimal("0.00")
    assert [(line.price, line.quantity) for line in parsed.order.lines] == [(Decimal("0.01"), 1)]


def test_holdout_groups_average_by_calibration_frequency_with_seven_and_more_together():
    # given
    frequency = np.array([0.0, 0.0, 1.0, 7.0, 12.0])
    actual = np.array([0.0, 1.0, 2.0, 4.0, 8.0])
    predicted = np.array([0.2, 0.4, 1.0, 5.0, 9.0])

    # when
    groups = holdout_groups(frequency, actual, predicted)

    # then: empty groups (2 .. 6) are left out
    assert [(g.label, g.customers) for g in groups] == [("0", 2), ("1", 1), ("7+", 2)]
    assert [g.actual_mean for g in groups] == pytest.approx([0.5, 2.0, 6.0])
    assert [g.predicted_mean for g in groups] == pytest.approx([0.3, 1.0, 7.0])


@pytest.mark.django_db
def test_the_first_300_customers_through_events_and_orders_reproduce_the_published_summary():
    # given
    merchants_before = Merchant.objects.count()

    # when
    report = cdnow_raw_study(customers=300)

    # then: every transaction became an order, and the summary is the paper's for these customers
    assert report.ingest.events == report.ingest.accepted == len(cdnow_transactions(customers=300))
    assert report.ingest.rejected == 0
    assert report.customers == 300
    assert report.frequency_match == 1.0
    assert report.recency_match == 1.0
    assert report.age_difference == pytest.approx(0.0, abs=0.005)  # the paper rounds T to 0.01 week
    assert report.summary_parameter_gap() <= 0.005
    params = report.bgnbd
    assert 0.05 < params.r < 1.0 and 1.0 < params.alpha < 20.0 and 0.1 < params.a < 5.0 and 0.5 < params.b < 10.0
    # the holdout: 39 weeks, groups 0 .. 7+ covering everyone, a forecast of the right order of magnitude
    assert report.holdout_weeks == pytest.approx(39.0)
    assert [g.label for g in report.holdout_by_frequency] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(g.customers for g in report.holdout_by_frequency) == 300
    assert report.holdout_actual > 0
    assert 0.5 < report.holdout_predicted / report.holdout_actual < 1.5
    # the cumulative curve: 78 weeks, non-decreasing, ending with every repeat purchase of the log
    assert [w.week for w in report.cumulative] == list(range(1, 79))
    actual = [w.actual for w in report.cumulative]
    assert actual == sorted(actual) and actual[0] >= 0
    # the throwaway merchant and its orders are gone
    assert Merchant.objects.count() == merchants_before
    assert not Order.objects.filter(external_id__startswith="cdnow-").exists()
