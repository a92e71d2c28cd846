"""Catalog writes: the Shopify CSV import, inventory updates and competitor price observations."""

import _csv
import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TextIO

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

from .models import CatalogImport, Category, CompetitorPriceObservation, Product

# The header is CSV line 1; an error reported on it concerns the whole file, not a row.
HEADER_LINE = 1
REQUIRED_COLUMNS = ("Handle", "Title", "Variant SKU", "Variant Price")
CATEGORY_SEPARATOR = " > "
IMPORT_BATCH_SIZE = 500
# Shopify writes TRUE/FALSE; spreadsheets re-saving the file tend to write the other spellings.
_FALSE_VALUES = frozenset({"false", "no", "0", "n", "f"})
# Product prices are DecimalField(max_digits=12, decimal_places=2); larger values overflow PostgreSQL.
_MAX_AMOUNT = Decimal("9999999999.99")
_CENT = Decimal("0.01")
_url_validator = URLValidator()

# Which product fields a column feeds. On re-import only fields whose column is in the file are
# overwritten, so a plain Shopify export does not wipe ratings loaded from a revopt-flavoured file.
_COLUMN_FIELDS: dict[str, tuple[str, ...]] = {
    "Title": ("title",),
    "Body (HTML)": ("description",),
    "Vendor": ("brand",),
    "Product Category": ("category",),
    "Type": ("category",),
    "Tags": ("tags",),
    "Published": ("is_active",),
    "Status": ("is_active",),
    "Option1 Name": ("attributes",),
    "Variant Price": ("price",),
    "Variant Compare At Price": ("compare_at_price",),
    "Cost per item": ("cost",),
    "Variant Inventory Qty": ("inventory",),
    "Image Src": ("image_url",),
    "Variant Image": ("image_url",),
    "Rating": ("rating",),
    "Rating Count": ("rating_count",),
    "Product ID": ("external_id",),
    "Currency": ("currency",),
}
# Columns a later variant row leaves empty and takes from the first row of its handle.
_INHERITED_COLUMNS = (
    "Title",
    "Body (HTML)",
    "Vendor",
    "Product Category",
    "Type",
    "Tags",
    "Published",
    "Status",
    "Option1 Name",
    "Option2 Name",
    "Option3 Name",
    "Image Src",
)
_VARIANT_COLUMNS = ("Variant SKU", "Variant Price", "Option1 Value", "Option2 Value", "Option3 Value")


class RowError(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class _ParsedRow:
    line: int
    sku: str
    category_path: str
    values: dict = field(default_factory=dict)


def _cell(row: dict[str, str], column: str) -> str:
    return (row.get(column) or "").strip()


def _decimal(raw: str, column: str, *, minimum: Decimal, strictly_greater: bool = False) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise RowError(column, f"'{raw}' is not a number") from None
    if not value.is_finite():
        raise RowError(column, f"'{raw}' is not a number")
    if strictly_greater and value <= minimum:
        raise RowError(column, f"must be greater than {minimum}")
    if value < minimum:
        raise RowError(column, "must not be negative" if minimum == 0 else f"must be at least {minimum}")
    if value > _MAX_AMOUNT:
        raise RowError(column, f"must be at most {_MAX_AMOUNT}")
    return value.quantize(_CENT)


def _integer(raw: str, column: str) -> int:
    # Spreadsheets re-save "5" as "5.0"; anything fractional is a real error.
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise RowError(column, f"'{raw}' is not a whole number") from None
    if not value.is_finite() or value != value.to_integral_value():
        raise RowError(column, f"'{raw}' is not a whole number")
    return int(value)


def _bounded(value: str, column: str, max_length: int) -> str:
    if len(value) > max_length:
        raise RowError(column, f"is longer than {max_length} characters")
    return value


def _category_path(raw: str) -> str:
    return CATEGORY_SEPARATOR.join(part.strip() for part in raw.split(">") if part.strip())


def _is_active(row: dict[str, str]) -> bool:
    status = _cell(row, "Status").lower()
    published = _cell(row, "Published").lower()
    # Drafts and archived products are not for sale; neither is an unpublished one on the storefront.
    return status in ("", "active") and published not in _FALSE_VALUES


def _parse_row(row: dict[str, str], line: int, *, default_currency: str) -> _ParsedRow:
    sku = _cell(row, "Variant SKU")
    if not sku:
        raise RowError("Variant SKU", "is required")
    _bounded(sku, "Variant SKU", 100)

    title = _bounded(_cell(row, "Title"), "Title", 300)
    if not title:
        raise RowError("Title", "is required on the first row of each handle")

    raw_price = _cell(row, "Variant Price")
    if not raw_price:
        raise RowError("Variant Price", "is required")
    price = _decimal(raw_price, "Variant Price", minimum=Decimal(0), strictly_greater=True)

    raw_compare_at = _cell(row, "Variant Compare At Price")
    compare_at_price = (
        _decimal(raw_compare_at, "Variant Compare At Price", minimum=Decimal(0)) if raw_compare_at else None
    )
    raw_cost = _cell(row, "Cost per item")
    cost = _decimal(raw_cost, "Cost per item", minimum=Decimal(0)) if raw_cost else None

    # Shopify exports oversold stock as a negative quantity, so only non-integers are errors.
    raw_inventory = _cell(row, "Variant Inventory Qty")
    inventory = _integer(raw_inventory, "Variant Inventory Qty") if raw_inventory else 0

    raw_rating = _cell(row, "Rating")
    rating = None
    if raw_rating:
        rating = _decimal(raw_rating, "Rating", minimum=Decimal(0))
        if rating > 5:
            raise RowError("Rating", "must be between 0 and 5")
    raw_rating_count = _cell(row, "Rating Count")
    rating_count = _integer(raw_rating_count, "Rating Count") if raw_rating_count else 0
    if rating_count < 0:
        raise RowError("Rating Count", "must not be negative")

    currency = (_cell(row, "Currency") or default_currency).upper()
    if len(currency) != 3 or not currency.isalpha():
        raise RowError("Currency", f"'{currency}' is not a three-letter currency code")

    image_column = "Variant Image" if _cell(row, "Variant Image") else "Image Src"
    image_url = _bounded(_cell(row, image_column), image_column, 1000)
    if image_url:
        try:
            _url_validator(image_url)
        except ValidationError:
            raise RowError(image_column, f"'{image_url}' is not a valid URL") from None

    category_path = _category_path(_cell(row, "Product Category") or _cell(row, "Type"))
    if any(len(part) > 200 for part in category_path.split(CATEGORY_SEPARATOR)) or len(category_path) > 1000:
        raise RowError("Product Category", "a category name is longer than 200 characters")

    attributes = {}
    for index in (1, 2, 3):
        name, value = _cell(row, f"Option{index} Name"), _cell(row, f"Option{index} Value")
        # Shopify writes "Title" / "Default Title" for products without variants: not an attribute.
        if name and value and not (name == "Title" and value == "Default Title"):
            attributes[name] = value

    return _ParsedRow(
        line=line,
        sku=sku,
        category_path=category_path,
        values={
            "external_id": _bounded(_cell(row, "Product ID"), "Product ID", 100),
            "title": title,
            "description": _cell(row, "Body (HTML)"),
            "brand": _bounded(_cell(row, "Vendor"), "Vendor", 200),
            "attributes": attributes,
            "tags": [tag.strip() for tag in _cell(row, "Tags").split(",") if tag.strip()],
            "price": price,
            "compare_at_price": compare_at_price,
            "cost": cost,
            "currency": currency,
            "inventory": inventory,
            "rating": rating,
            "rating_count": rating_count,
            "image_url": image_url,
            "is_active": _is_active(row),
        },
    )


def _records(reader: _csv.Reader) -> Iterator[tuple[int, list[str]]]:
    """Yield (line where the record starts, cells); quoted cells may span lines."""
    previous_line = 0
    for cells in reader:
        start_line = previous_line + 1
        previous_line = reader.line_num
        if cells:
            yield start_line, cells


def _chunks(items: list[str]) -> Iterator[list[str]]:
    # Keeps IN lists under SQLite's bound-parameter limit.
    for start in range(0, len(items), IMPORT_BATCH_SIZE):
        yield items[start : start + IMPORT_BATCH_SIZE]


def _categories_by_path(*, merchant: Merchant, paths: list[str]) -> dict[str, Category]:
    return {
        category.path: category
        for chunk in _chunks(paths)
        for category in Category.objects.for_merchant(merchant).filter(path__in=chunk)
    }


def _categories_for_paths(*, merchant: Merchant, paths: Iterable[str]) -> dict[str, Category]:
    """Get or create every level of every path; returns path -> Category for all levels.

    Creates one tree level at a time so each new node can point at its parent, with a constant
    number of queries per level however many categories the file introduces.
    """
    wanted: set[str] = set()
    for path in paths:
        parts = path.split(CATEGORY_SEPARATOR)
        wanted.update(CATEGORY_SEPARATOR.join(parts[: depth + 1]) for depth in range(len(parts)))
    wanted.discard("")
    by_path = _categories_by_path(merchant=merchant, paths=sorted(wanted))
    missing_by_depth: dict[int, list[str]] = {}
    for path in sorted(wanted - by_path.keys()):
        missing_by_depth.setdefault(path.count(CATEGORY_SEPARATOR), []).append(path)
    for depth in sorted(missing_by_depth):
        level = missing_by_depth[depth]
        new_categories = []
        for path in level:
            parent_path, _, name = path.rpartition(CATEGORY_SEPARATOR)
            new_categories.append(Category(merchant=merchant, name=name, path=path, parent=by_path.get(parent_path)))
        # ignore_conflicts: a concurrent import may have created the same node; re-read to get its pk.
        Category.objects.bulk_create(new_categories, batch_size=IMPORT_BATCH_SIZE, ignore_conflicts=True)
        by_path.update(_categories_by_path(merchant=merchant, paths=level))
    return by_path


def _existing_skus(*, merchant: Merchant, skus: list[str]) -> set[str]:
    return {
        sku
        for chunk in _chunks(skus)
        for sku in Product.objects.for_merchant(merchant).filter(sku__in=chunk).values_list("sku", flat=True)
    }


@transaction.atomic
def product_import_csv(
    *, merchant: Merchant, csv_file: TextIO, filename: str, created_by: AbstractBaseUser | None = None
) -> CatalogImport:
    """Import a Shopify product export (one product per variant row), upserting by SKU.

    Every row is validated first; bad rows land in the import's error report and the good ones are
    then written with one batched upsert, so a 5,000-row file takes a few queries, not 5,000.
    """
    errors: list[dict] = []
    parsed: list[_ParsedRow] = []
    rows_total = rows_skipped = 0
    reader = csv.reader(csv_file)
    records = _records(reader)
    header: list[str] = []
    try:
        _, header = next(records, (HEADER_LINE, []))
        header = [column.strip().lstrip("\ufeff") for column in header]
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if not header:
            errors.append({"row": HEADER_LINE, "sku": "", "field": "", "reason": "the file is empty"})
        elif missing:
            errors.append(
                {
                    "row": HEADER_LINE,
                    "sku": "",
                    "field": ", ".join(missing),
                    "reason": "required column missing from the header: " + ", ".join(missing),
                }
            )
            rows_total = sum(1 for _ in records)
        else:
            first_row_of_handle: dict[str, dict[str, str]] = {}
            line_of_sku: dict[str, int] = {}
            for line, cells in records:
                rows_total += 1
                row = dict(zip(header, cells, strict=False))
                handle = _cell(row, "Handle")
                first_row = first_row_of_handle.get(handle) if handle else None
                if first_row is None:
                    if handle:
                        first_row_of_handle[handle] = row
                elif not any(_cell(row, column) for column in _VARIANT_COLUMNS):
                    # A continuation row carrying only more images of the product.
                    rows_skipped += 1
                    continue
                else:
                    row = {**row, **{c: first_row.get(c, "") for c in _INHERITED_COLUMNS if not _cell(row, c)}}
                    # Image Src lists the product's images one per row, not the variant's: a variant
                    # without its own Variant Image shows the product's first image.
                    row["Image Src"] = _cell(first_row, "Image Src") or _cell(row, "Image Src")
                sku = _cell(row, "Variant SKU")
                try:
                    if sku in line_of_sku:
                        raise RowError("Variant SKU", f"duplicated in this file (first on line {line_of_sku[sku]})")
                    parsed_row = _parse_row(row, line, default_currency=merchant.currency)
                except RowError as error:
                    errors.append({"row": line, "sku": sku, "field": error.field, "reason": error.reason})
                    continue
                line_of_sku[sku] = line
                parsed.append(parsed_row)
    except csv.Error as error:
        # The reader cannot resynchronise after a malformed record: report it and keep what was read.
        errors.append({"row": reader.line_num, "sku": "", "field": "", "reason": f"unreadable CSV: {error}"})
        rows_total += 1

    categories = _categories_for_paths(merchant=merchant, paths={row.category_path for row in parsed})
    existing = _existing_skus(merchant=merchant, skus=[row.sku for row in parsed])
    products = [
        Product(merchant=merchant, sku=row.sku, category=categories.get(row.category_path), **row.values)
        for row in parsed
    ]
    update_fields = sorted(
        {"updated_at"} | {name for column in header if column in _COLUMN_FIELDS for name in _COLUMN_FIELDS[column]}
    )
    if products:
        Product.objects.bulk_create(
            products,
            batch_size=IMPORT_BATCH_SIZE,
            update_conflicts=True,
            unique_fields=["merchant", "sku"],
            update_fields=update_fields,
        )

    catalog_import = CatalogImport.objects.create(
        merchant=merchant,
        filename=filename[:300],
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        rows_total=rows_total,
        products_created=sum(1 for row in parsed if row.sku not in existing),
        products_updated=sum(1 for row in parsed if row.sku in existing),
        rows_skipped=rows_skipped,
        rows_failed=rows_total - rows_skipped - len(parsed),
        errors=errors,
    )
    audit_log_write(
        merchant=merchant,
        actor=created_by,
        action="catalog.imported",
        target=catalog_import,
        detail={
            "filename": catalog_import.filename,
            "products_created": catalog_import.products_created,
            "products_updated": catalog_import.products_updated,
            "rows_failed": catalog_import.rows_failed,
        },
    )
    return catalog_import


def catalog_import_rejected_file(catalog_import: CatalogImport) -> bool:
    """True when the file itself was unusable (empty, or required columns missing)."""
    return any(error.get("row") == HEADER_LINE for error in catalog_import.errors)


@transaction.atomic
def product_set_inventory(*, product: Product, inventory: int, actor: AbstractBaseUser | None = None) -> Product:
    if isinstance(inventory, bool) or not isinstance(inventory, int):
        raise ValidationError({"inventory": "must be a whole number"})
    previous = Product.objects.filter(pk=product.pk).values_list("inventory", flat=True).first()
    if previous is None:
        raise ValidationError({"product": "does not exist"})
    Product.objects.filter(pk=product.pk).update(inventory=inventory, updated_at=timezone.now())
    product.refresh_from_db(fields=["inventory", "updated_at"])
    audit_log_write(
        merchant=product.merchant,
        actor=actor,
        action="product.inventory_set",
        target=product,
        detail={"from": previous, "to": inventory},
    )
    return product


# Scrapers' clocks drift like storefronts' do; beyond this an observation from "the future" is a bug.
OBSERVATION_FUTURE_SKEW = timedelta(minutes=5)


@transaction.atomic
def competitor_price_record(
    *,
    merchant: Merchant,
    product: Product,
    competitor: str,
    price: Decimal,
    observed_at: datetime,
    currency: str | None = None,
    source_url: str = "",
) -> CompetitorPriceObservation:
    """Store one observed competitor price.

    Observations are market data arriving in volume, like events, so they get no audit row.
    """
    observation = competitor_price_checked(
        merchant=merchant,
        product=product,
        competitor=competitor,
        price=price,
        observed_at=observed_at,
        currency=currency,
        source_url=source_url,
    )
    observation.save()
    return observation


def competitor_price_checked(
    *,
    merchant: Merchant,
    product: Product,
    competitor: str,
    price: Decimal,
    observed_at: datetime,
    currency: str | None = None,
    source_url: str = "",
) -> CompetitorPriceObservation:
    """The observation, validated and not yet stored (raises ValidationError naming each bad field): imports
    check every row this way, then store the good ones in bulk."""
    errors: dict[str, str] = {}
    if product.merchant_id != merchant.pk:
        errors["product"] = "belongs to another merchant"
    competitor = competitor.strip()
    if not competitor:
        errors["competitor"] = "is required"
    elif len(competitor) > 200:
        errors["competitor"] = "is longer than 200 characters"
    try:
        price = Decimal(str(price))
    except InvalidOperation:
        errors["price"] = "is not a number"
    else:
        if not price.is_finite() or price <= 0:
            errors["price"] = "must be greater than 0"
        elif price > _MAX_AMOUNT:
            errors["price"] = f"must be at most {_MAX_AMOUNT}"
    if timezone.is_naive(observed_at):
        errors["observed_at"] = "must carry a time zone"
    elif observed_at > timezone.now() + OBSERVATION_FUTURE_SKEW:
        errors["observed_at"] = "is in the future"
    currency = (currency or product.currency).upper()
    if len(currency) != 3 or not currency.isalpha():
        errors["currency"] = "must be a three-letter currency code"
    if source_url:
        try:
            _url_validator(source_url)
        except ValidationError:
            errors["source_url"] = "is not a valid URL"
    if errors:
        raise ValidationError(errors)
    return CompetitorPriceObservation(
        merchant=merchant,
        product=product,
        competitor=competitor,
        price=price.quantize(_CENT),
        currency=currency,
        observed_at=observed_at,
        source_url=source_url,
    )
