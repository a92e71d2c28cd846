from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from events.models import DataQualityReport, Event
from events.selectors import DataQualityGateClosed, data_quality_gate_check, data_quality_gate_is_open
from events.services import data_quality_report_create, event_batch_ingest
from events.tasks import data_quality_report_create_task
from tests.events.conftest import make_event

pytestmark = pytest.mark.django_db


def _checks(report):
    return {check["name"]: check for check in report.checks}


def _ingest_days(merchant, *, per_day, days, today_offset=0):
    """`per_day[i]` events on each of the last `days` days (i=0 is yesterday)."""
    now = timezone.now()
    batch = []
    for day in range(days):
        stamp = (now - timedelta(days=day + 1 + today_offset)).replace(hour=12, minute=0)
        batch += [make_event(timestamp=stamp.isoformat(), anonymousId=f"a-{day}-{n}") for n in range(per_day[day])]
    for start in range(0, len(batch), 1000):
        event_batch_ingest(merchant=merchant, events=batch[start : start + 1000])


def test_clean_data_passes_and_opens_the_gate(merchant, products):
    # given
    _ingest_days(merchant, per_day=[60] * 9, days=9)

    # when
    report = data_quality_report_create(merchant=merchant)

    # then
    assert report.passed, report.checks
    assert {check["status"] for check in report.checks} == {"pass"}
    assert data_quality_gate_is_open(merchant=merchant)


def test_no_report_or_no_events_keeps_the_gate_closed(merchant):
    assert not data_quality_gate_is_open(merchant=merchant)

    report = data_quality_report_create(merchant=merchant)

    assert not report.passed
    assert _checks(report)["has_events"]["status"] == "fail"
    with pytest.raises(DataQualityGateClosed, match="has_events"):
        data_quality_gate_check(merchant=merchant)


def test_a_sudden_volume_drop_fails_the_report(merchant, products):
    # given: 100 events a day for a week, then 10 yesterday
    _ingest_days(merchant, per_day=[10] + [100] * 8, days=9)

    # when
    report = data_quality_report_create(merchant=merchant)

    # then
    drop = _checks(report)["volume_drop"]
    assert drop["status"] == "fail"
    assert drop["value"] == pytest.approx(0.9)
    assert not report.passed


def test_rows_that_bypassed_ingest_validation_fail_their_checks(merchant, products):
    # given: clean history, then rows written behind the API's back (an import script, a bug)
    _ingest_days(merchant, per_day=[60] * 9, days=9)
    template = Event.objects.for_merchant(merchant).first()
    now = timezone.now()
    bad_rows = [
        dict(message_id="future", timestamp=now + timedelta(days=2)),
        dict(message_id="free", price=0),
        dict(message_id="no-ids", anonymous_id="", customer=template.customer),
        dict(message_id="orphan", product=None),
    ]
    for overrides in bad_rows:
        values = dict(
            merchant=merchant,
            name="Product Viewed",
            customer=template.customer,
            anonymous_id="x",
            product=template.product,
            timestamp=now - timedelta(hours=1),
            received_at=now,
        )
        values.update(overrides)
        Event.objects.create(**values)

    # when
    report = data_quality_report_create(merchant=merchant)

    # then
    checks = _checks(report)
    assert checks["future_timestamps"]["status"] == "fail"
    assert checks["non_positive_prices"]["status"] == "fail"
    assert checks["null_ids"]["status"] == "fail"
    assert checks["orphan_products"]["status"] == "warn"  # 1 of ~540 product rows: under the 1% limit
    assert not report.passed
    assert not data_quality_gate_is_open(merchant=merchant)


def test_events_repeated_under_new_message_ids_are_caught(merchant, products):
    # given: a client that retries with fresh message ids
    stamp = (timezone.now() - timedelta(hours=2)).isoformat()
    retried = [make_event(timestamp=stamp, anonymousId="same") for _ in range(3)]
    event_batch_ingest(merchant=merchant, events=retried + [make_event(anonymousId=f"o-{n}") for n in range(20)])

    # when
    report = data_quality_report_create(merchant=merchant)

    # then
    repeated = _checks(report)["repeated_events"]
    assert repeated["status"] == "fail"
    assert repeated["detail"].startswith("3 of 23")


def test_a_stale_report_closes_the_gate_when_freshness_is_required(merchant, products):
    with freeze_time(timezone.now() - timedelta(days=3)):
        _ingest_days(merchant, per_day=[60] * 9, days=9)
        data_quality_report_create(merchant=merchant)

    assert data_quality_gate_is_open(merchant=merchant)
    assert not data_quality_gate_is_open(merchant=merchant, max_age=timedelta(days=1))


def test_the_task_writes_a_report_for_the_merchant(merchant, other_merchant, products):
    _ingest_days(merchant, per_day=[60] * 9, days=9)

    report_id = data_quality_report_create_task.delay(merchant.pk).get()

    report = DataQualityReport.objects.get(pk=report_id)
    assert report.merchant == merchant
    assert report.passed
    assert not DataQualityReport.objects.for_merchant(other_merchant).exists()


def test_the_command_prints_each_check_and_fails_when_the_gate_closes(merchant, capsys):
    from django.core.management import call_command

    with pytest.raises(SystemExit) as exit_info:
        call_command("data_quality_report", "--merchant", merchant.slug)

    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "fail  Events received in the window" in out
    assert "training is blocked" in out
