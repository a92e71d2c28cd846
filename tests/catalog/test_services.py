import csv
import io
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from catalog.models import CatalogImport, Category, CompetitorPriceObservation, Product
from catalog.services import (
    catalog_import_rejected_file,
    competitor_price_record,
    product_import_csv,
    product_set_inventory,
)
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import ProductFactory

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data"
HEADER = [
    "Handle",
    "Title",
    "Body (HTML)",
    "Vendor",
    "Product Category",
    "Type",
    "Tags",
    "Published",
    "Option1 Name",
    "Option1 Value",
    "Variant SKU",
    "Variant Inventory Qty",
    "Variant Price",
    "Variant Compare At Price",
    "Cost per item",
    "Image Src",
    "Status",
    "Rating",
    "Rating Count",
    "Product ID",
    "Currency",
]


def _row(**cells: str) -> dict[str, str]:
    row = {
        "Handle": cells.pop("handle", "trail-shirt"),
        "Title": "Trail Shirt",
        "Vendor": "Northbound",
        "Product Category": "Apparel > Shirts",
        "Published": "TRUE",
        "Variant SKU": "TS-1",
        "Variant Inventory Qty": "5",
        "Variant Price": "30.00",
        "Cost per item": "12.00",
        "Status": "active",
    }
    row.update({key.replace("_", " "): value for key, value in cells.items()})
    return row


def _csv(*rows: dict[str, str], header: list[str] = HEADER) -> io.StringIO:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    buffer.seek(0)
    return buffer


def _import(merchant, *rows, header: list[str] = HEADER) -> CatalogImport:
    return product_import_csv(merchant=merchant, csv_file=_csv(*rows, header=header), filename="products.csv")


def _import_fixture(merchant) -> CatalogImport:
    with open(DATA / "shopify_products_export.csv", newline="", encoding="utf-8") as csv_file:
        return product_import_csv(merchant=merchant, csv_file=csv_file, filename="shopify_products_export.csv")


def test_shopify_export_imports_one_product_per_variant_and_skips_image_rows(merchant):
    # when
    catalog_import = _import_fixture(merchant)

    # then
    assert catalog_import.errors == []
    assert (catalog_import.rows_total, catalog_import.rows_skipped, catalog_import.rows_failed) == (12, 3, 0)
    assert (catalog_import.products_created, catalog_import.products_updated) == (9, 0)
    assert sorted(Product.objects.for_merchant(merchant).values_list("sku", flat=True)) == [
        "NB-ECM-350",
        "NB-IB750-BLK",
        "NB-IB750-SND",
        "NB-RMTS-L-MOS",
        "NB-RMTS-M-SLT",
        "NB-RMTS-S-SLT",
        "SW-C2",
        "SW-GM-42",
        "SW-GM-43",
    ]


def test_shopify_export_maps_columns_onto_the_first_variant(merchant):
    # when
    _import_fixture(merchant)

    # then
    shirt = Product.objects.get(merchant=merchant, sku="NB-RMTS-S-SLT")
    assert shirt.title == "Ridge Merino Trail Shirt"
    assert shirt.description.startswith("<p>Lightweight merino") and "<li>Odour resistant</li>" in shirt.description
    assert shirt.brand == "Northbound"
    assert shirt.category.path == "Apparel & Accessories > Clothing > Shirts & Tops"
    assert shirt.attributes == {"Size": "S", "Color": "Slate"}
    assert shirt.tags == ["merino", "hiking", "summer"]
    assert (shirt.price, shirt.compare_at_price, shirt.cost) == (Decimal("69.00"), Decimal("79.00"), Decimal("27.50"))
    assert shirt.inventory == 12
    assert shirt.currency == merchant.currency
    assert shirt.image_url.endswith("ridge-shirt-front.jpg")
    assert shirt.is_active is True


def test_later_variant_rows_inherit_the_handles_product_fields(merchant):
    # when
    _import_fixture(merchant)

    # then
    medium = Product.objects.get(merchant=merchant, sku="NB-RMTS-M-SLT")
    large = Product.objects.get(merchant=merchant, sku="NB-RMTS-L-MOS")
    assert medium.title == large.title == "Ridge Merino Trail Shirt"
    assert medium.brand == "Northbound"
    assert medium.category.path == large.category.path == "Apparel & Accessories > Clothing > Shirts & Tops"
    assert medium.attributes == {"Size": "M", "Color": "Slate"}
    assert large.attributes == {"Size": "L", "Color": "Moss"}
    assert medium.inventory == 0
    assert large.price == Decimal("72.00")
    # A variant shows the product's first image unless it has a Variant Image of its own.
    assert medium.image_url.endswith("ridge-shirt-front.jpg")
    assert large.image_url.endswith("ridge-shirt-moss.jpg")


def test_status_published_type_and_default_title_are_interpreted(merchant):
    # when
    _import_fixture(merchant)

    # then
    mug = Product.objects.get(merchant=merchant, sku="NB-ECM-350")
    tent = Product.objects.get(merchant=merchant, sku="SW-C2")
    oversold_boot = Product.objects.get(merchant=merchant, sku="SW-GM-43")
    assert mug.is_active is False  # Status draft
    assert mug.category.path == "Kitchen"  # from Type, Product Category being empty
    assert mug.attributes == {}  # "Title: Default Title" is Shopify's placeholder, not an attribute
    assert tent.is_active is False  # Published FALSE
    assert tent.cost is None
    assert oversold_boot.inventory == -2


def test_import_builds_the_category_tree_level_by_level(merchant):
    # when
    _import_fixture(merchant)

    # then
    categories = {category.path: category for category in Category.objects.for_merchant(merchant)}
    assert sorted(categories) == [
        "Apparel & Accessories",
        "Apparel & Accessories > Clothing",
        "Apparel & Accessories > Clothing > Shirts & Tops",
        "Apparel & Accessories > Shoes",
        "Kitchen",
        "Sporting Goods",
        "Sporting Goods > Outdoor Recreation",
        "Sporting Goods > Outdoor Recreation > Camping & Hiking",
        "Sporting Goods > Outdoor Recreation > Camping & Hiking > Tents",
    ]
    shirts = categories["Apparel & Accessories > Clothing > Shirts & Tops"]
    assert shirts.name == "Shirts & Tops"
    assert shirts.parent == categories["Apparel & Accessories > Clothing"]
    assert shirts.parent.parent == categories["Apparel & Accessories"]
    assert categories["Apparel & Accessories"].parent is None


def test_import_reuses_existing_categories(merchant):
    # given
    apparel = Category.objects.create(merchant=merchant, name="Apparel", path="Apparel")

    # when
    _import(merchant, _row(**{"Product Category": "Apparel>  Shirts "}))

    # then
    shirts = Category.objects.get(merchant=merchant, path="Apparel > Shirts")
    assert shirts.parent == apparel
    assert Category.objects.for_merchant(merchant).count() == 2


def test_reimport_updates_products_instead_of_duplicating_them(merchant):
    # given
    _import_fixture(merchant)
    shirt = Product.objects.get(merchant=merchant, sku="NB-RMTS-S-SLT")

    # when
    catalog_import = _import(
        merchant, _row(**{"Variant SKU": "NB-RMTS-S-SLT", "Variant Price": "59.00", "Variant Inventory Qty": "3"})
    )

    # then
    assert (catalog_import.products_created, catalog_import.products_updated) == (0, 1)
    assert Product.objects.for_merchant(merchant).count() == 9
    shirt_after = Product.objects.get(merchant=merchant, sku="NB-RMTS-S-SLT")
    assert shirt_after.pk == shirt.pk
    assert (shirt_after.price, shirt_after.inventory, shirt_after.title) == (Decimal("59.00"), 3, "Trail Shirt")
    assert shirt_after.created_at == shirt.created_at
    assert shirt_after.updated_at > shirt.updated_at


def test_reimport_of_the_same_file_counts_updates(merchant):
    # given
    _import_fixture(merchant)

    # when
    again = _import_fixture(merchant)

    # then
    assert (again.products_created, again.products_updated) == (0, 9)
    assert Product.objects.for_merchant(merchant).count() == 9
    assert Category.objects.for_merchant(merchant).count() == 9


def test_reimport_leaves_fields_whose_column_is_absent(merchant):
    # given
    _import(merchant, _row(Rating="4.5", **{"Rating Count": "12", "Product ID": "gid-1"}))
    without_revopt_columns = [column for column in HEADER if column not in ("Rating", "Rating Count", "Product ID")]

    # when
    _import(merchant, _row(**{"Variant Price": "31.00"}), header=without_revopt_columns)

    # then
    product = Product.objects.get(merchant=merchant, sku="TS-1")
    assert product.price == Decimal("31.00")
    assert (product.rating, product.rating_count, product.external_id) == (Decimal("4.50"), 12, "gid-1")


def test_import_never_touches_another_merchants_products(merchant, other_merchant):
    # given
    theirs = ProductFactory(merchant=other_merchant, sku="TS-1", price=Decimal("99.00"))

    # when
    catalog_import = _import(merchant, _row())

    # then
    assert catalog_import.products_created == 1
    theirs.refresh_from_db()
    assert theirs.price == Decimal("99.00")
    assert Product.objects.filter(sku="TS-1").count() == 2


def test_revopt_columns_are_read(merchant):
    # when
    _import(merchant, _row(Rating="4.25", Currency="eur", **{"Rating Count": "31", "Product ID": "8812001"}))

    # then
    product = Product.objects.get(merchant=merchant, sku="TS-1")
    assert product.rating == Decimal("4.25")
    assert product.rating_count == 31
    assert product.external_id == "8812001"
    assert product.currency == "EUR"


@pytest.mark.parametrize(
    ("cells", "field", "reason"),
    [
        ({"Variant SKU": ""}, "Variant SKU", "is required"),
        ({"Variant Price": ""}, "Variant Price", "is required"),
        ({"Variant Price": "twelve"}, "Variant Price", "'twelve' is not a number"),
        ({"Variant Price": "NaN"}, "Variant Price", "'NaN' is not a number"),
        ({"Variant Price": "0"}, "Variant Price", "must be greater than 0"),
        ({"Variant Price": "-4.00"}, "Variant Price", "must be greater than 0"),
        ({"Variant Price": "100000000000"}, "Variant Price", "must be at most 9999999999.99"),
        ({"Cost per item": "-1"}, "Cost per item", "must not be negative"),
        ({"Cost per item": "n/a"}, "Cost per item", "'n/a' is not a number"),
        ({"Variant Compare At Price": "free"}, "Variant Compare At Price", "'free' is not a number"),
        ({"Variant Inventory Qty": "lots"}, "Variant Inventory Qty", "'lots' is not a whole number"),
        ({"Variant Inventory Qty": "2.5"}, "Variant Inventory Qty", "'2.5' is not a whole number"),
        ({"Rating": "5.5"}, "Rating", "must be between 0 and 5"),
        ({"Rating": "-0.5"}, "Rating", "must not be negative"),
        ({"Rating Count": "-3"}, "Rating Count", "must not be negative"),
        ({"Currency": "EURO"}, "Currency", "'EURO' is not a three-letter currency code"),
        ({"Image Src": "not a url"}, "Image Src", "'not a url' is not a valid URL"),
        ({"Title": ""}, "Title", "is required on the first row of each handle"),
        ({"Variant SKU": "X" * 101}, "Variant SKU", "is longer than 100 characters"),
    ],
)
def test_each_bad_row_is_reported_with_line_sku_field_and_reason(merchant, cells, field, reason):
    # given
    good = _row(handle="good", **{"Variant SKU": "GOOD-1"})
    bad = _row(handle="bad", **{"Variant SKU": "BAD-1", **cells})

    # when
    catalog_import = _import(merchant, good, bad)

    # then
    assert catalog_import.errors == [{"row": 3, "sku": bad["Variant SKU"], "field": field, "reason": reason}]
    assert (catalog_import.rows_total, catalog_import.rows_failed, catalog_import.products_created) == (2, 1, 1)
    assert list(Product.objects.for_merchant(merchant).values_list("sku", flat=True)) == ["GOOD-1"]


def test_a_sku_repeated_in_the_file_fails_the_later_row(merchant):
    # when
    catalog_import = _import(
        merchant,
        _row(**{"Variant SKU": "TS-1", "Variant Price": "30.00"}),
        _row(handle="other", **{"Variant SKU": "TS-2"}),
        _row(handle="again", **{"Variant SKU": "TS-1", "Variant Price": "99.00"}),
    )

    # then
    assert catalog_import.errors == [
        {"row": 4, "sku": "TS-1", "field": "Variant SKU", "reason": "duplicated in this file (first on line 2)"}
    ]
    assert Product.objects.get(merchant=merchant, sku="TS-1").price == Decimal("30.00")
    assert catalog_import.products_created == 2


def test_error_lines_count_physical_lines_of_multiline_cells(merchant):
    # given: the first record spans three lines
    first = _row(**{"Body (HTML)": "<p>one</p>\n<p>two</p>\n<p>three</p>"})
    bad = _row(handle="bad", **{"Variant SKU": "BAD", "Variant Price": "x"})

    # when
    catalog_import = _import(merchant, first, bad)

    # then
    assert catalog_import.errors[0]["row"] == 5


def test_a_variant_row_without_sku_is_an_error_not_a_skipped_image_row(merchant):
    # given
    first = _row()
    variant_without_sku = {"Handle": "trail-shirt", "Option1 Value": "XL", "Variant Price": "30.00"}
    image_only = {"Handle": "trail-shirt", "Image Src": "https://cdn.example.com/back.jpg"}

    # when
    catalog_import = _import(merchant, first, variant_without_sku, image_only)

    # then
    assert catalog_import.rows_skipped == 1
    assert catalog_import.rows_failed == 1
    assert catalog_import.errors == [{"row": 3, "sku": "", "field": "Variant SKU", "reason": "is required"}]


def test_missing_required_columns_fail_the_file_with_one_error(merchant):
    # given
    header = [column for column in HEADER if column not in ("Variant SKU", "Variant Price")]

    # when
    catalog_import = _import(merchant, _row(), _row(handle="b"), header=header)

    # then
    assert catalog_import.errors == [
        {
            "row": 1,
            "sku": "",
            "field": "Variant SKU, Variant Price",
            "reason": "required column missing from the header: Variant SKU, Variant Price",
        }
    ]
    assert (catalog_import.rows_total, catalog_import.rows_failed) == (2, 2)
    assert catalog_import_rejected_file(catalog_import)
    assert not Product.objects.for_merchant(merchant).exists()


def test_an_empty_file_is_rejected(merchant):
    # when
    catalog_import = product_import_csv(merchant=merchant, csv_file=io.StringIO(""), filename="empty.csv")

    # then
    assert catalog_import.errors == [{"row": 1, "sku": "", "field": "", "reason": "the file is empty"}]
    assert catalog_import_rejected_file(catalog_import)


def test_a_byte_order_mark_in_the_header_is_ignored(merchant):
    # given
    text = "\ufeff" + _csv(_row()).getvalue()

    # when
    catalog_import = product_import_csv(merchant=merchant, csv_file=io.StringIO(text), filename="bom.csv")

    # then
    assert catalog_import.errors == []
    assert catalog_import.products_created == 1


def test_a_malformed_record_is_reported_and_earlier_rows_are_kept(merchant):
    # given: a cell beyond the csv module's field size limit (131,072 characters)
    text = _csv(_row()).getvalue() + 'huge,"' + "x" * 200_000 + '",x\n'

    # when
    catalog_import = product_import_csv(merchant=merchant, csv_file=io.StringIO(text), filename="huge.csv")

    # then
    assert catalog_import.products_created == 1
    assert catalog_import.rows_failed == 1
    assert catalog_import.errors[0]["row"] == 3
    assert catalog_import.errors[0]["reason"].startswith("unreadable CSV")


def test_import_writes_its_report_and_an_audit_row(merchant, django_user_model):
    # given
    user = django_user_model.objects.create_user(username="manager", password="x")

    # when
    catalog_import = product_import_csv(
        merchant=merchant, csv_file=_csv(_row()), filename="products.csv", created_by=user
    )

    # then
    assert CatalogImport.objects.get(pk=catalog_import.pk).created_by == user
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="catalog.imported")
    assert entry.actor == user
    assert entry.target_id == str(catalog_import.pk)
    assert entry.detail["products_created"] == 1


def _big_catalog_csv(price_offset: int = 0) -> io.StringIO:
    """1,000 handles of 5 variants (5,000 rows), 161 categories, and 4 rows with a bad price."""
    rows = []
    for handle in range(1000):
        for size_index, size in enumerate(["XS", "S", "M", "L", "XL"]):
            price = "abc" if handle % 250 == 0 and size == "M" else f"{20 + price_offset + handle % 50}.99"
            rows.append(
                _row(
                    handle=f"product-{handle}",
                    **{
                        "Title": f"Product {handle}" if size_index == 0 else "",
                        "Product Category": f"Dept {handle % 7} > Aisle {handle % 23}" if size_index == 0 else "",
                        "Option1 Name": "Size" if size_index == 0 else "",
                        "Option1 Value": size,
                        "Variant SKU": f"P{handle:04d}-{size}",
                        "Variant Price": price,
                    },
                )
            )
    return _csv(*rows)


def test_a_five_thousand_row_import_is_batched(merchant, django_assert_max_num_queries):
    # given
    csv_file = _big_catalog_csv()

    # when: batched: SQLite caps a statement at 999 parameters, so ~50 products per INSERT there; never one per row.
    with django_assert_max_num_queries(200):
        catalog_import = product_import_csv(merchant=merchant, csv_file=csv_file, filename="big.csv")

    # then
    assert catalog_import.rows_total == 5000
    assert catalog_import.rows_failed == 4
    assert catalog_import.products_created == 4996
    assert Product.objects.for_merchant(merchant).count() == 4996


def test_a_five_thousand_row_reimport_updates_in_batches(merchant, django_assert_max_num_queries):
    # given
    product_import_csv(merchant=merchant, csv_file=_big_catalog_csv(), filename="big.csv")

    # when
    with django_assert_max_num_queries(200):
        catalog_import = product_import_csv(
            merchant=merchant, csv_file=_big_catalog_csv(price_offset=5), filename="big.csv"
        )

    # then
    assert (catalog_import.products_created, catalog_import.products_updated) == (0, 4996)
    assert Product.objects.for_merchant(merchant).count() == 4996
    assert Product.objects.get(merchant=merchant, sku="P0001-XS").price == Decimal("26.99")


def test_product_set_inventory_updates_and_audits(merchant):
    # given
    product = ProductFactory(merchant=merchant, inventory=5)

    # when
    product_set_inventory(product=product, inventory=0)

    # then
    assert Product.objects.get(pk=product.pk).inventory == 0
    assert product.inventory == 0
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="product.inventory_set")
    assert entry.detail == {"from": 5, "to": 0}


@pytest.mark.parametrize("inventory", ["5", 2.5, True, None])
def test_product_set_inventory_rejects_non_integers(merchant, inventory):
    # given
    product = ProductFactory(merchant=merchant, inventory=5)

    # when / then
    with pytest.raises(ValidationError) as raised:
        product_set_inventory(product=product, inventory=inventory)
    assert "inventory" in raised.value.message_dict
    assert Product.objects.get(pk=product.pk).inventory == 5


def test_competitor_price_record_stores_an_observation(merchant):
    # given
    product = ProductFactory(merchant=merchant)
    observed_at = timezone.now() - timedelta(hours=2)

    # when
    observation = competitor_price_record(
        merchant=merchant,
        product=product,
        competitor=" Rival Outfitters ",
        price=Decimal("23.499"),
        observed_at=observed_at,
        source_url="https://rival.example.com/p/1",
    )

    # then
    stored = CompetitorPriceObservation.objects.get(pk=observation.pk)
    assert (stored.merchant, stored.product, stored.competitor) == (merchant, product, "Rival Outfitters")
    assert stored.price == Decimal("23.50")
    assert stored.currency == product.currency
    assert stored.observed_at == observed_at


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"price": Decimal("0")}, "price"),
        ({"price": Decimal("-3")}, "price"),
        ({"price": "cheap"}, "price"),
        ({"competitor": "  "}, "competitor"),
        ({"observed_at": timezone.now().replace(tzinfo=None)}, "observed_at"),
        ({"observed_at": timezone.now() + timedelta(days=1)}, "observed_at"),
        ({"currency": "dollars"}, "currency"),
        ({"source_url": "rival dot com"}, "source_url"),
    ],
)
def test_competitor_price_record_validates(merchant, overrides, field):
    # given
    product = ProductFactory(merchant=merchant)
    arguments = {"competitor": "Rival", "price": Decimal("20"), "observed_at": timezone.now(), **overrides}

    # when / then
    with pytest.raises(ValidationError) as raised:
        competitor_price_record(merchant=merchant, product=product, **arguments)
    assert list(raised.value.message_dict) == [field]
    assert not CompetitorPriceObservation.objects.exists()


def test_competitor_price_record_refuses_another_merchants_product(merchant, other_merchant):
    # given
    their_product = ProductFactory(merchant=other_merchant)

    # when / then
    with pytest.raises(ValidationError) as raised:
        competitor_price_record(
            merchant=merchant,
            product=their_product,
            competitor="Rival",
            price=Decimal("20"),
            observed_at=timezone.now(),
        )
    assert "product" in raised.value.message_dict
