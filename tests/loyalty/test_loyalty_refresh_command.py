from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from loyalty.models import InsightKind, InsightRun, RunStatus
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.loyalty import InsightRunFactory

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


def shop_with_orders(merchant, customers: int = 12) -> None:
    for index in range(customers):
        customer = CustomerFactory(merchant=merchant)
        for order in range(index % 3 + 1):
            OrderFactory(
                merchant=merchant,
                customer=customer,
                placed_at=AS_OF - timedelta(days=10 + 30 * order + index),
                total=Decimal(20 + index),
            )


def test_the_command_refreshes_the_segments_it_is_asked_for(merchant):
    # given
    shop_with_orders(merchant)
    out = StringIO()

    # when
    call_command(
        "loyalty_refresh",
        "--merchant",
        merchant.slug,
        "--only",
        "segments",
        "--as-of",
        "2026-06-01T00:00:00Z",
        "--no-progress",
        stdout=out,
    )

    # then
    run = InsightRun.objects.for_merchant(merchant).get()
    assert (run.kind, run.status, run.as_of, run.customers) == (InsightKind.SEGMENTS, RunStatus.SUCCEEDED, AS_OF, 12)
    assert f"segments run #{run.pk}: 12 customers as of 2026-06-01 00:00" in out.getvalue()


def test_a_run_that_fails_is_reported_after_the_others_ran(merchant):
    # given: enough for segments, far too few repeat buyers for lifetime value
    shop_with_orders(merchant)
    out = StringIO()

    # when
    with pytest.raises(CommandError, match="lifetime_value: .*at least 50 repeat buyers"):
        call_command(
            "loyalty_refresh",
            "--merchant",
            merchant.slug,
            "--only",
            "lifetime_value,segments",
            "--no-progress",
            stdout=out,
        )

    # then
    runs = dict(InsightRun.objects.for_merchant(merchant).values_list("kind", "status"))
    assert runs == {InsightKind.SEGMENTS: RunStatus.SUCCEEDED, InsightKind.LIFETIME_VALUE: RunStatus.FAILED}


def test_the_command_calls_the_churn_service_with_the_date_as_midnight_in_the_shops_zone(merchant, monkeypatch):
    # given
    merchant.timezone = "Europe/Paris"
    merchant.save()
    calls = []

    def churn_refresh(*, merchant, as_of=None, progress=None):
        calls.append(as_of)
        progress(0.5)
        return InsightRunFactory(merchant=merchant, kind=InsightKind.CHURN, as_of=as_of)

    monkeypatch.setattr("loyalty.services.churn.churn_refresh", churn_refresh)

    # when
    call_command(
        "loyalty_refresh",
        "--merchant",
        merchant.slug,
        "--only",
        "churn",
        "--as-of",
        "2026-06-01",
        "--no-progress",
        stdout=StringIO(),
    )

    # then
    assert calls == [datetime(2026, 5, 31, 22, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--merchant", "nobody"], "no merchant with slug 'nobody'"),
        (["--merchant", "acme-outdoor", "--only", "segments,weather"], "--only takes segments, lifetime_value, churn"),
        (["--merchant", "acme-outdoor", "--as-of", "last tuesday"], "is not an ISO date"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(merchant, arguments, message):
    # when
    with pytest.raises(CommandError, match=message):
        call_command("loyalty_refresh", *arguments, "--no-progress", stdout=StringIO())

    # then
    assert not InsightRun.objects.exists()
