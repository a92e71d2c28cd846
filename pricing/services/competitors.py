"""Competitor prices coming in: a batch from the API (all or nothing) and a CSV file (row by row).

Each observation is stored by `catalog.services.competitor_price_record`, which validates it; here the SKUs
are resolved for the merchant (another merchant's SKU is unknown), duplicates within one upload are refused,
and a price must be in the product's own currency (the guardrails compare it with the product's price as is).
"""

from __future__ import annotations

import _csv
import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TextIO

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.dateparse import parse_datetime

from catalog.models import CompetitorPriceObservation, Product
from catalog.services import competitor_price_checked
from revopt.db import bulk_insert
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

BATCH_MAX = 1_000
HEADER_LINE = 1
CSV_REQUIRED_COLUMNS = ("sku", "competitor", "price", "observed_at")
CSV_OPTIONAL_COLUMNS = ("currency", "source_url")
_LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class ObservationInput:
    """One observation as sent, before validation (the API's serializer has checked only its shape)."""

    sku: str
    competitor: str
    price: Decimal | str
    observed_at: datetime | str
    currency: str | None = None
    source_url: str = ""


@dataclass(frozen=True)
class ObservationError:
    position: int  # the index in the batch, or the CSV line
    field: str
    reason: str
    sku: str = ""


class CompetitorBatchRejected(Exception):
    """Nothing was stored: `errors` names every observation at fault."""

    def __init__(self, errors: Sequence[ObservationError]) -> None:
        self.errors = tuple(errors)
        super().__init__(f"{len(self.errors)} observation(s) rejected")


@dataclass(frozen=True)
class CompetitorBatchResult:
    recorded: int
    products: int


@dataclass(frozen=True)
class CompetitorImportReport:
    filename: str
    rows_total: int
    recorded: int
    errors: tuple[ObservationError, ...] = field(default_factory=tuple)  # position = the CSV line
    # The file itself is unusable (empty, not a CSV, required columns missing): nothing was read.
    rejected: bool = False

    @property
    def failed(self) -> int:
        return len({error.position for error in self.errors if error.position != HEADER_LINE})


def _products_by_sku(*, merchant: Merchant, skus: Sequence[str]) -> dict[str, Product]:
    wanted = sorted(set(skus))
    found: dict[str, Product] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        for product in Product.objects.for_merchant(merchant).filter(sku__in=wanted[start : start + _LOOKUP_CHUNK]):
            found[product.sku] = product
    return found


def _observed_at(raw: datetime | str) -> datetime:
    if isinstance(raw, datetime):
        return raw
    parsed = None
    try:
        parsed = parse_datetime(raw.strip())
    except ValueError:
        pass
    if parsed is None:
        raise ValidationError({"observed_at": "is not an ISO 8601 date and time, e.g. 2026-11-24T10:00:00Z"})
    return parsed


def _checked(
    *, merchant: Merchant, product: Product, observation: ObservationInput, position: int
) -> tuple[CompetitorPriceObservation | None, list[ObservationError]]:
    """The observation ready to store, or what is wrong with it."""
    currency = (observation.currency or "").strip().upper() or None
    try:
        if currency is not None and len(currency) == 3 and currency != product.currency.upper():
            raise ValidationError({"currency": f"must be the product's currency ({product.currency})"})
        checked = competitor_price_checked(
            merchant=merchant,
            product=product,
            competitor=observation.competitor,
            price=observation.price,
            observed_at=_observed_at(observation.observed_at),
            currency=currency,
            source_url=observation.source_url.strip(),
        )
    except ValidationError as error:
        return None, [
            ObservationError(position, name, messages[0], observation.sku)
            for name, messages in error.message_dict.items()
        ]
    return checked, []


def _duplicate_key(observation: ObservationInput) -> tuple[str, str, str]:
    return (observation.sku, observation.competitor.strip().casefold(), str(observation.observed_at).strip())


def _product_of(
    observation: ObservationInput,
    *,
    products: dict[str, Product],
    first_seen: dict[tuple[str, str, str], int],
    position: int,
    duplicate: str,
) -> tuple[Product | None, ObservationError | None]:
    """The observation's product, or why it is refused (an unknown SKU, a repeat of an earlier `position`)."""
    product = products.get(observation.sku)
    if product is None:
        return None, ObservationError(position, "sku", "No product with this SKU.", observation.sku)
    key = _duplicate_key(observation)
    if key in first_seen:
        return None, ObservationError(
            position, "observed_at", f"Duplicates {duplicate} {first_seen[key]}.", observation.sku
        )
    first_seen[key] = position
    return product, None


def competitor_prices_record_batch(
    *, merchant: Merchant, observations: Sequence[ObservationInput]
) -> CompetitorBatchResult:
    """Store every observation or none: raises CompetitorBatchRejected naming each one at fault (by index)."""
    if len(observations) > BATCH_MAX:
        raise CompetitorBatchRejected([ObservationError(0, "observations", f"At most {BATCH_MAX} observations.")])
    products = _products_by_sku(merchant=merchant, skus=[observation.sku for observation in observations])
    errors: list[ObservationError] = []
    first_seen: dict[tuple[str, str, str], int] = {}
    valid: list[CompetitorPriceObservation] = []
    with transaction.atomic():
        for index, observation in enumerate(observations):
            product, refusal = _product_of(
                observation, products=products, first_seen=first_seen, position=index, duplicate="observation"
            )
            if refusal is not None:
                errors.append(refusal)
                continue
            # Each observation is checked even after one failed, so the caller learns every error at once.
            checked, observation_errors = _checked(
                merchant=merchant, product=product, observation=observation, position=index
            )
            errors += observation_errors
            if checked is not None:
                valid.append(checked)
        if errors:
            raise CompetitorBatchRejected(errors)
        bulk_insert(valid)
    return CompetitorBatchResult(
        recorded=len(observations), products=len({observation.sku for observation in observations})
    )


def _records(reader: _csv.Reader) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, cells), skipping blank lines; quoted cells may span lines."""
    previous_line = 0
    for cells in reader:
        start_line = previous_line + 1
        previous_line = reader.line_num
        if any(cell.strip() for cell in cells):
            yield start_line, cells


def _file_rejected(filename: str, reason: str, field_name: str = "file", rows_total: int = 0) -> CompetitorImportReport:
    return CompetitorImportReport(
        filename=filename,
        rows_total=rows_total,
        recorded=0,
        errors=(ObservationError(HEADER_LINE, field_name, reason),),
        rejected=True,
    )


def _parsed_rows(
    records: Iterator[tuple[int, list[str]]], header: Sequence[str]
) -> Iterator[tuple[int, ObservationInput]]:
    for line, cells in records:
        row: Mapping[str, str] = dict(zip(header, cells, strict=False))
        yield (
            line,
            ObservationInput(
                sku=(row.get("sku") or "").strip(),
                competitor=row.get("competitor") or "",
                price=(row.get("price") or "").strip(),
                observed_at=row.get("observed_at") or "",
                currency=row.get("currency") or None,
                source_url=row.get("source_url") or "",
            ),
        )


def _empty_cell_errors(line: int, observation: ObservationInput) -> list[ObservationError]:
    errors = []
    for name in CSV_REQUIRED_COLUMNS:
        if not str(getattr(observation, name)).strip():
            errors.append(ObservationError(line, name, "is required", observation.sku))
    return errors


@transaction.atomic
def competitor_prices_import_csv(
    *, merchant: Merchant, csv_file: TextIO, filename: str, actor: AbstractBaseUser | None = None
) -> CompetitorImportReport:
    """Import a CSV of competitor prices (columns sku, competitor, price, observed_at, and optionally currency
    and source_url, in any order and case): valid rows are stored, each bad row is reported with its line,
    column and reason. A file without a header or without a required column is rejected whole."""
    reader = csv.reader(csv_file)
    records = _records(reader)
    try:
        first = next(records, None)
        if first is None:
            return _file_rejected(filename, "The file is empty.")
        header = [column.strip().lstrip("\ufeff").strip().lower() for column in first[1]]
        missing = [column for column in CSV_REQUIRED_COLUMNS if column not in header]
        if missing:
            return _file_rejected(filename, "Required column(s) missing from the header: " + ", ".join(missing) + ".")
        rows = list(_parsed_rows(records, header))
    except csv.Error as error:
        return _file_rejected(filename, f"Unreadable CSV (line {reader.line_num}): {error}.")
    if not rows:
        return _file_rejected(filename, "The file has a header but no rows.")

    products = _products_by_sku(merchant=merchant, skus=[observation.sku for _, observation in rows])
    errors: list[ObservationError] = []
    first_seen: dict[tuple[str, str, str], int] = {}
    valid: list[CompetitorPriceObservation] = []
    for line, observation in rows:
        empty = _empty_cell_errors(line, observation)
        if empty:
            errors += empty
            continue
        product, refusal = _product_of(
            observation, products=products, first_seen=first_seen, position=line, duplicate="the row on line"
        )
        if refusal is not None:
            errors.append(refusal)
            continue
        checked, row_errors = _checked(merchant=merchant, product=product, observation=observation, position=line)
        errors += row_errors
        if checked is not None:
            valid.append(checked)
    bulk_insert(valid)
    recorded = len(valid)

    report = CompetitorImportReport(filename=filename, rows_total=len(rows), recorded=recorded, errors=tuple(errors))
    audit_log_write(
        merchant=merchant,
        actor=actor,
        action="competitor_prices.imported",
        target=merchant,
        detail={
            "filename": filename[:300],
            "rows_total": report.rows_total,
            "recorded": report.recorded,
            "failed": report.failed,
        },
    )
    return report
