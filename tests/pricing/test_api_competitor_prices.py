from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import CompetitorPriceObservation
from pricing.api import storefront
from tests.factories.catalog import ProductFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/competitor-prices"
IMPORT_URL = "/api/v1/competitor-prices/import"
SEEN = "2026-11-20T08:00:00Z"


def _observation(sku="TENT", **overrides):
    return {"sku": sku, "competitor": "Rival", "price": "119.00", "observed_at": SEEN, **overrides}


def _fields(response):
    return [error["field"] for error in response.json()["errors"]]


def _csv(text, name="rivals.csv"):
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


def test_one_observation_is_recorded(api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT")

    # when
    response = api_client.post(URL, _observation(source_url="https://rival.example/t"), format="json")

    # then
    assert response.status_code == 201
    assert response.json() == {"recorded": 1, "products": 1}
    row = CompetitorPriceObservation.objects.for_merchant(merchant).get()
    assert (row.competitor, row.price, row.source_url) == ("Rival", Decimal("119.00"), "https://rival.example/t")


def test_a_batch_of_a_thousand_is_recorded(api_client, merchant):
    # given
    products = ProductFactory.create_batch(100, merchant=merchant)
    batch = [
        _observation(product.sku, competitor=f"Rival {n}", price=f"{20 + n % 7}.50")
        for product in products
        for n in range(10)
    ]

    # when
    response = api_client.post(URL, {"observations": batch}, format="json")

    # then
    assert response.status_code == 201
    assert response.json() == {"recorded": 1000, "products": 100}
    assert CompetitorPriceObservation.objects.for_merchant(merchant).count() == 1000


def test_a_bad_batch_stores_nothing_and_names_index_and_field(api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT")
    batch = [
        _observation(),
        _observation(competitor="B", price="-3"),
        _observation("NOPE", competitor="C"),
        _observation(competitor="D", observed_at="2026-11-20 08:00"),
        _observation(competitor="E", source_url="not a url"),
    ]

    # when
    response = api_client.post(URL, {"observations": batch}, format="json")

    # then
    assert response.status_code == 400
    assert _fields(response) == [
        "observations[1].price",
        "observations[2].sku",
        "observations[3].observed_at",
        "observations[4].source_url",
    ]
    assert not CompetitorPriceObservation.objects.exists()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"observations": []}, ["observations"]),
        ({"observations": "x"}, ["observations"]),
        ({"observations": [_observation()] * 1001}, ["observations"]),
        ([_observation()], ["observations"]),
        ({"sku": "TENT"}, ["competitor", "price", "observed_at"]),
        (_observation(price="NaN"), ["price"]),
        (_observation(price="abc"), ["price"]),
        ({"observations": [_observation(), {"sku": "TENT", "price": 3}]}, [
            "observations[1].competitor",
            "observations[1].observed_at",
        ]),
        (_observation(sku="NOPE"), ["sku"]),
        (_observation(currency="EURO"), ["currency"]),
    ],
)  # fmt: skip
def test_bad_input_is_400_naming_the_field(api_client, merchant, body, fields):
    # given
    ProductFactory(merchant=merchant, sku="TENT")

    # when
    response = api_client.post(URL, body, format="json")

    # then
    assert response.status_code == 400
    assert _fields(response) == fields
    assert not CompetitorPriceObservation.objects.exists()


def test_another_merchants_sku_is_unknown(other_api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT")

    # when
    response = other_api_client.post(URL, _observation(), format="json")

    # then
    assert response.status_code == 400
    assert _fields(response) == ["sku"]
    assert not CompetitorPriceObservation.objects.exists()


def test_no_key_is_401(anonymous_api_client):
    # when
    response = anonymous_api_client.post(URL, _observation(), format="json")

    # then
    assert response.status_code == 401


# --- CSV import --------------------------------------------------------------------------------------


def test_a_good_file_is_imported(api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT")
    text = (
        "\ufeffsku,competitor,price,observed_at\nTENT,Rival,119,2026-11-20T08:00:00Z\nTENT,B,118,2026-11-20T08:00:00Z\n"
    )

    # when
    response = api_client.post(IMPORT_URL, {"file": _csv(text)}, format="multipart")

    # then
    assert response.status_code == 201
    assert response.json() == {"filename": "rivals.csv", "rows_total": 2, "recorded": 2, "failed": 0, "errors": []}


def test_a_file_with_bad_rows_keeps_the_good_ones(api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT")
    text = (
        "sku,competitor,price,observed_at\n"
        "TENT,Rival,119,2026-11-20T08:00:00Z\n"
        "TENT,Rival,0,2026-11-21T08:00:00Z\n"
        "NOPE,Rival,3,2026-11-21T08:00:00Z\n"
    )

    # when
    response = api_client.post(IMPORT_URL, {"file": _csv(text)}, format="multipart")

    # then
    assert response.status_code == 201
    body = response.json()
    assert (body["recorded"], body["failed"]) == (1, 2)
    assert [(e["line"], e["sku"], e["field"]) for e in body["errors"]] == [(3, "TENT", "price"), (4, "NOPE", "sku")]
    assert CompetitorPriceObservation.objects.for_merchant(merchant).count() == 1


def test_a_file_where_every_row_fails_is_400_naming_lines(api_client, merchant):
    # when
    response = api_client.post(
        IMPORT_URL, {"file": _csv("sku,competitor,price,observed_at\nNOPE,Rival,3,2026-11-21T08:00:00Z\n")},
        format="multipart",
    )  # fmt: skip

    # then
    assert response.status_code == 400
    assert _fields(response) == ["line[2].sku"]


@pytest.mark.parametrize(
    "upload",
    [
        None,
        _csv(""),
        _csv("sku,competitor,price\nTENT,Rival,3\n"),
        SimpleUploadedFile("rivals.csv", "sku,competitor,price,observed_at\nTENT,Café,3,x\n".encode("latin-1")),
    ],
)
def test_an_unusable_file_is_400_naming_file(api_client, upload):
    # when
    response = api_client.post(IMPORT_URL, {"file": upload} if upload is not None else {}, format="multipart")

    # then
    assert response.status_code == 400
    assert set(_fields(response)) == {"file"}


def test_a_file_over_the_cap_is_refused(api_client, monkeypatch):
    # given a cap of 100 bytes for the test
    monkeypatch.setattr(storefront, "IMPORT_MAX_BYTES", 100)
    text = "sku,competitor,price,observed_at\n" + "TENT,Rival,119,2026-11-20T08:00:00Z\n" * 5

    # when
    response = api_client.post(IMPORT_URL, {"file": _csv(text)}, format="multipart")

    # then
    assert response.status_code == 400
    assert "10 MB" in response.json()["errors"][0]["reason"]


def test_the_import_of_another_merchant_sees_only_its_products(other_api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT")

    # when
    response = other_api_client.post(
        IMPORT_URL, {"file": _csv("sku,competitor,price,observed_at\nTENT,Rival,3,2026-11-21T08:00:00Z\n")},
        format="multipart",
    )  # fmt: skip

    # then
    assert response.status_code == 400
    assert _fields(response) == ["line[2].sku"]
    assert not CompetitorPriceObservation.objects.exists()


def test_the_import_without_a_key_is_401(anonymous_api_client):
    # when
    response = anonymous_api_client.post(IMPORT_URL, {"file": _csv("sku\n")}, format="multipart")

    # then
    assert response.status_code == 401
