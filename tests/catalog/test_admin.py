from decimal import Decimal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from catalog.models import CatalogImport, CompetitorPriceObservation, Product
from tests.factories.catalog import (
    CatalogImportFactory,
    CategoryFactory,
    CompetitorPriceObservationFactory,
    ProductFactory,
)

pytestmark = pytest.mark.django_db

FIXTURE = Path(__file__).parent / "data" / "shopify_products_export.csv"
IMPORT_URL = "/admin/catalog/product/import-csv/"


@pytest.fixture
def manager_client(client, merchant_manager):
    client.force_login(merchant_manager)
    return client


def _upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def test_manager_sees_only_their_merchants_products(manager_client, merchant, other_merchant):
    # given
    ProductFactory(merchant=merchant, sku="MINE-1", title="Mine", price=Decimal("19.99"), cost=Decimal("7.25"))
    ProductFactory(merchant=other_merchant, sku="THEIRS-1", title="Theirs")

    # when
    response = manager_client.get("/admin/catalog/product/")

    # then
    assert response.status_code == 200
    content = response.content.decode()
    assert "MINE-1" in content and "19.99" in content and "7.25" in content
    assert "THEIRS-1" not in content
    assert response.context["cl"].result_count == 1


def test_manager_cannot_open_another_merchants_product(manager_client, other_merchant):
    # given
    theirs = ProductFactory(merchant=other_merchant)

    # when
    response = manager_client.get(f"/admin/catalog/product/{theirs.pk}/change/")

    # then: the admin redirects to its index with "doesn't exist" rather than showing the row
    assert response.status_code == 302
    assert response.url == "/admin/"


def test_category_filter_offers_only_the_merchants_categories(manager_client, merchant, other_merchant):
    # given
    ProductFactory(merchant=merchant, category=CategoryFactory(merchant=merchant, name="Tents", path="Tents"))
    ProductFactory(
        merchant=other_merchant, category=CategoryFactory(merchant=other_merchant, name="Secret", path="Secret")
    )

    # when
    response = manager_client.get("/admin/catalog/product/")

    # then
    content = response.content.decode()
    assert "Tents" in content
    assert "Secret" not in content


def test_product_search_and_stock_filter(manager_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT-1", title="Cirrus Tent", inventory=0)
    ProductFactory(merchant=merchant, sku="TENT-2", title="Stratus Tent", inventory=4)
    ProductFactory(merchant=merchant, sku="MUG-1", title="Camp Mug", inventory=0)

    # when
    response = manager_client.get("/admin/catalog/product/", {"q": "tent", "in_stock": "no"})

    # then
    assert [product.sku for product in response.context["cl"].result_list] == ["TENT-1"]


def test_manager_adds_a_product_into_their_merchant(manager_client, merchant):
    # given
    category = CategoryFactory(merchant=merchant)

    # when
    response = manager_client.post(
        "/admin/catalog/product/add/",
        {
            "sku": "NEW-1",
            "external_id": "",
            "title": "New product",
            "category": category.pk,
            "attributes": "{}",
            "tags": "[]",
            "price": "12.50",
            "currency": "USD",
            "inventory": "3",
            "rating_count": "0",
            "is_active": "on",
        },
    )

    # then
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Product.objects.get(sku="NEW-1").merchant == merchant


def test_import_button_is_on_the_product_changelist(manager_client):
    # when
    response = manager_client.get("/admin/catalog/product/")

    # then
    assert IMPORT_URL in response.content.decode()


def test_admin_csv_upload_imports_and_shows_the_report(manager_client, merchant, merchant_manager):
    # given
    content = (
        FIXTURE.read_bytes() + b"broken-handle,Broken,,,,,,TRUE,,,,,,,BRK-1,,,,,,not-a-price,,,,,,,,,,,,,,,active\n"
    )

    # when
    response = manager_client.post(IMPORT_URL, {"file": _upload("export.csv", content)}, follow=True)

    # then
    catalog_import = CatalogImport.objects.for_merchant(merchant).get()
    assert response.redirect_chain[-1][0] == reverse("admin:catalog_catalogimport_change", args=[catalog_import.pk])
    assert (catalog_import.products_created, catalog_import.rows_failed) == (9, 1)
    assert catalog_import.created_by == merchant_manager
    page = response.content.decode()
    assert "9 created, 0 updated, 3 skipped, 1 failed" in page
    assert '<table class="catalog-import-errors">' in page
    assert "<td>18</td><td>BRK-1</td><td>Variant Price</td><td>&#x27;not-a-price&#x27; is not a number</td>" in page
    assert Product.objects.for_merchant(merchant).count() == 9


def test_admin_csv_upload_rejects_non_utf8_files(manager_client, merchant):
    # when
    response = manager_client.post(IMPORT_URL, {"file": _upload("export.csv", b"Handle,Title\n\xff\xfe\x00")})

    # then
    assert response.status_code == 200
    assert "not UTF-8" in response.content.decode()
    assert not CatalogImport.objects.exists()


def test_support_agent_cannot_import(client, support_agent):
    # given
    client.force_login(support_agent)

    # when
    changelist = client.get("/admin/catalog/product/")
    upload = client.post(IMPORT_URL, {"file": _upload("export.csv", FIXTURE.read_bytes())})

    # then
    assert changelist.status_code == 200
    assert IMPORT_URL not in changelist.content.decode()
    assert upload.status_code == 403
    assert not Product.objects.exists()


def test_platform_admin_imports_into_a_chosen_merchant(client, platform_admin, other_merchant):
    # given
    client.force_login(platform_admin)

    # when
    response = client.post(IMPORT_URL, {"merchant": other_merchant.pk, "file": _upload("x.csv", FIXTURE.read_bytes())})

    # then
    assert response.status_code == 302
    assert Product.objects.for_merchant(other_merchant).count() == 9


def test_catalog_import_report_is_read_only_and_scoped(manager_client, merchant, other_merchant):
    # given
    mine = CatalogImportFactory(merchant=merchant)
    theirs = CatalogImportFactory(merchant=other_merchant)

    # when
    page = manager_client.get(f"/admin/catalog/catalogimport/{mine.pk}/change/")
    other_page = manager_client.get(f"/admin/catalog/catalogimport/{theirs.pk}/change/")
    edit = manager_client.post(f"/admin/catalog/catalogimport/{mine.pk}/change/", {"filename": "renamed.csv"})
    delete = manager_client.post(f"/admin/catalog/catalogimport/{mine.pk}/delete/", {"post": "yes"})

    # then
    assert page.status_code == 200
    assert "<td>BAD-1</td><td>Variant Price</td>" in page.content.decode()
    assert 'name="filename"' not in page.content.decode()
    assert other_page.status_code == 302
    assert edit.status_code == 403
    assert delete.status_code == 403
    mine.refresh_from_db()
    assert mine.filename != "renamed.csv"


def test_competitor_price_admin_is_scoped_and_records_for_the_products_merchant(
    manager_client, merchant, other_merchant
):
    # given
    mine = CompetitorPriceObservationFactory(merchant=merchant, competitor="Rival A")
    CompetitorPriceObservationFactory(merchant=other_merchant, competitor="Rival B")
    product = ProductFactory(merchant=merchant)

    # when
    listing = manager_client.get("/admin/catalog/competitorpriceobservation/")
    added = manager_client.post(
        "/admin/catalog/competitorpriceobservation/add/",
        {
            "product": product.pk,
            "competitor": "Rival C",
            "price": "21.00",
            "currency": "USD",
            "observed_at_0": "2026-01-05",
            "observed_at_1": "10:00:00",
            "source_url": "",
        },
    )

    # then
    assert list(listing.context["cl"].result_list) == [mine]
    assert added.status_code == 302
    assert CompetitorPriceObservation.objects.get(competitor="Rival C").merchant == merchant


def test_manager_cannot_attach_an_observation_to_another_merchants_product(manager_client, other_merchant):
    # given
    their_product = ProductFactory(merchant=other_merchant)

    # when
    response = manager_client.post(
        "/admin/catalog/competitorpriceobservation/add/",
        {
            "product": their_product.pk,
            "competitor": "Rival",
            "price": "21.00",
            "currency": "USD",
            "observed_at_0": "2026-01-05",
            "observed_at_1": "10:00:00",
        },
    )

    # then
    assert response.status_code == 200
    assert "product" in response.context["adminform"].form.errors
    assert not CompetitorPriceObservation.objects.exists()
