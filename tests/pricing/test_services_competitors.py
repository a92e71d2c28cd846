import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import CompetitorPriceObservation
from pricing.services.competitors import (
    CompetitorBatchRejected,
    ObservationInput,
    competitor_prices_import_csv,
    competitor_prices_record_batch,
)
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import ProductFactory

pytestmark = pytest.mark.django_db

SEEN = "2026-11-20T08:00:00Z"


def _observation(sku="TENT", **overrides):
    values = {"sku": sku, "competitor": "Rival", "price": "119.00", "observed_at": SEEN}
    values.update(overrides)
    return ObservationInput(**values)


def _import(merchant, text, filename="rivals.csv"):
    return competitor_prices_import_csv(merchant=merchant, csv_file=io.StringIO(text, newline=""), filename=filename)


def test_a_batch_is_stored_whole(merchant):
    # given
    tent = ProductFactory(merchant=merchant, sku="TENT")
    ProductFactory(merchant=merchant, sku="MAT")
    observations = [
        _observation(),
        _observation(competitor="Other", price=Decimal("121.5"), currency="usd"),
        _observation("MAT", price="20", source_url="https://rival.example/mat"),
    ]

    # when
    result = competitor_prices_record_batch(merchant=merchant, observations=observations)

    # then
    assert (result.recorded, result.products) == (3, 2)
    stored = CompetitorPriceObservation.objects.for_merchant(merchant).filter(product=tent).order_by("price")
    assert [(row.competitor, row.price, row.currency) for row in stored] == [
        ("Rival", Decimal("119.00"), "USD"),
        ("Other", Decimal("121.50"), "USD"),
    ]
    assert stored[0].observed_at == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_one_bad_observation_stores_nothing_and_every_error_is_named(merchant, other_merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT")
    ProductFactory(merchant=other_merchant, sku="THEIRS")
    observations = [
        _observation(),
        _observation(price="0", competitor="Free"),
        _observation(observed_at="2026-11-20T08:00:00", competitor="Naive"),  # no zone
        _observation("THEIRS"),
        _observation(currency="EUR", competitor="Euro shop"),
        _observation(observed_at=(datetime.now(UTC) + timedelta(days=1)).isoformat(), competitor="Future"),
        _observation(competitor="  "),
        _observation(),  # the same as the first
    ]

    # when
    with pytest.raises(CompetitorBatchRejected) as rejected:
        competitor_prices_record_batch(merchant=merchant, observations=observations)

    # then
    assert [(error.position, error.field) for error in rejected.value.errors] == [
        (1, "price"),
        (2, "observed_at"),
        (3, "sku"),
        (4, "currency"),
        (5, "observed_at"),
        (6, "competitor"),
        (7, "observed_at"),
    ]
    assert not CompetitorPriceObservation.objects.exists()


def test_a_good_csv_is_imported_with_an_audit_row(merchant):
    # given columns in another order and case, a byte-order mark stripped by the caller, blank lines
    ProductFactory(merchant=merchant, sku="TENT")
    ProductFactory(merchant=merchant, sku="MAT")
    text = (
        "Price,SKU,Competitor,Observed_At,Currency,Source_URL\n"
        "119.00,TENT,Rival,2026-11-20T08:00:00Z,USD,https://rival.example/tent\n"
        "\n"
        '"21.00",MAT,"Rival, Inc.",2026-11-20T08:00:00+01:00,,\n'
    )

    # when
    report = _import(merchant, text)

    # then
    assert (report.rows_total, report.recorded, report.failed, report.errors, report.rejected) == (2, 2, 0, (), False)
    assert CompetitorPriceObservation.objects.for_merchant(merchant).count() == 2
    entry = AuditLogEntry.objects.get(merchant=merchant, action="competitor_prices.imported")
    assert entry.detail == {"filename": "rivals.csv", "rows_total": 2, "recorded": 2, "failed": 0}


def test_bad_rows_are_reported_by_line_and_column_and_good_rows_kept(merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT")
    text = (
        "sku,competitor,price,observed_at\n"
        "TENT,Rival,119.00,2026-11-20T08:00:00Z\n"  # line 2: good
        "TENT,Rival,abc,2026-11-21T08:00:00Z\n"  # line 3
        "NOPE,Rival,10,2026-11-21T08:00:00Z\n"  # line 4
        '"TENT","Multi\nline",120,yesterday\n'  # line 5 (spans two lines)
        "TENT,,120,2026-11-21T08:00:00Z\n"  # line 7
        "TENT,Rival,119.00,2026-11-20T08:00:00Z\n"  # line 8: same as line 2
        "TENT,Shop B,118.00,2026-11-22T08:00:00Z\n"  # line 9: good
    )

    # when
    report = _import(merchant, text)

    # then
    assert [(error.position, error.field) for error in report.errors] == [
        (3, "price"),
        (4, "sku"),
        (5, "observed_at"),
        (7, "competitor"),
        (8, "observed_at"),
    ]
    assert (report.rows_total, report.recorded, report.failed) == (7, 2, 5)
    assert sorted(CompetitorPriceObservation.objects.values_list("competitor", flat=True)) == ["Rival", "Shop B"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("\n\n", "empty"),
        ("sku,competitor,price\nTENT,Rival,1\n", "observed_at"),
        ("sku,competitor,price,observed_at\n", "no rows"),
    ],
)
def test_an_unusable_file_is_rejected_whole(merchant, text, reason):
    # when
    report = _import(merchant, text)

    # then
    assert report.rejected
    assert reason in report.errors[0].reason
    assert not AuditLogEntry.objects.filter(action="competitor_prices.imported").exists()


def test_another_merchants_skus_are_unknown_to_the_import(merchant, other_merchant):
    # given
    ProductFactory(merchant=other_merchant, sku="THEIRS")

    # when
    report = _import(merchant, "sku,competitor,price,observed_at\nTHEIRS,Rival,10,2026-11-20T08:00:00Z\n")

    # then
    assert [(error.position, error.field) for error in report.errors] == [(2, "sku")]
    assert not CompetitorPriceObservation.objects.exists()


def test_the_command_imports_a_file_and_prints_the_report(merchant, tmp_path):
    # given
    ProductFactory(merchant=merchant, sku="TENT")
    path = tmp_path / "rivals.csv"
    path.write_text(
        "\ufeffsku,competitor,price,observed_at\nTENT,Rival,119,2026-11-20T08:00:00Z\nTENT,Rival,-1,2026-11-21T08:00:00Z\n"
    )
    out = io.StringIO()

    # when
    call_command("import_competitor_prices", str(path), "--merchant", merchant.slug, stdout=out)

    # then
    assert "2 rows, 1 observations recorded, 1 rows failed" in out.getvalue()
    assert "line 3 [TENT] price" in out.getvalue()
    assert CompetitorPriceObservation.objects.for_merchant(merchant).count() == 1


def test_the_command_refuses_an_unknown_merchant_and_a_rejected_file(merchant, tmp_path):
    # given
    path = tmp_path / "rivals.csv"
    path.write_text("sku,price\n")

    # when / then
    with pytest.raises(CommandError, match="No merchant"):
        call_command("import_competitor_prices", str(path), "--merchant", "nobody")
    with pytest.raises(CommandError, match="could not be imported"):
        call_command("import_competitor_prices", str(path), "--merchant", merchant.slug)


def test_an_import_stores_its_rows_in_bulk_whatever_their_number(merchant, django_assert_max_num_queries):
    # given files of 5 and of 200 good rows
    ProductFactory(merchant=merchant, sku="TENT")
    observed = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)

    def csv_of(rows: int) -> str:
        lines = [
            f"TENT,Rival {n},{20 + n / 100:.2f},{(observed - timedelta(minutes=n)).isoformat()}" for n in range(rows)
        ]
        return "sku,competitor,price,observed_at\n" + "\n".join(lines)

    with CaptureQueriesContext(connection) as small:
        _import(merchant, csv_of(5))

    # when / then the larger file costs no more statements (one bulk insert, not one per row)
    with django_assert_max_num_queries(len(small.captured_queries) + 1):
        report = _import(merchant, csv_of(200))
    assert report.recorded == 200
    assert CompetitorPriceObservation.objects.filter(merchant=merchant).count() == 205
