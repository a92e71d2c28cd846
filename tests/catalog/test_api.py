from decimal import Decimal

import pytest
import yaml
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from revopt.tenancy.services import api_key_create, api_key_revoke
from tests.factories.catalog import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/v1/products"
CATEGORIES = "/api/v1/categories"


def _reasons(response) -> dict[str, str]:
    return {error["field"]: error["reason"] for error in response.json()["errors"]}


def test_product_list_shape(api_client, merchant):
    # given
    category = CategoryFactory(merchant=merchant, name="Tents", path="Tents")
    ProductFactory(
        merchant=merchant,
        sku="SW-C2",
        external_id="8812",
        title="Cirrus 2",
        brand="Scree Works",
        category=category,
        price=Decimal("449.00"),
        inventory=3,
        rating=Decimal("4.50"),
        attributes={"Color": "Sand"},
        image_url="https://cdn.example.com/cirrus.jpg",
    )

    # when
    response = api_client.get(PRODUCTS)

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (1, None, None)
    assert body["results"] == [
        {
            "id": body["results"][0]["id"],
            "sku": "SW-C2",
            "external_id": "8812",
            "title": "Cirrus 2",
            "brand": "Scree Works",
            "price": "449.00",
            "currency": "USD",
            "category": {"id": category.pk, "path": "Tents"},
            "inventory": 3,
            "in_stock": True,
            "rating": "4.50",
            "attributes": {"Color": "Sand"},
            "image_url": "https://cdn.example.com/cirrus.jpg",
        }
    ]


def test_product_list_query_count_does_not_grow_with_the_page(api_client, merchant, django_assert_max_num_queries):
    # given
    for _ in range(30):
        ProductFactory(merchant=merchant)

    # when: key lookup, last-used write, count, page
    with django_assert_max_num_queries(5):
        response = api_client.get(PRODUCTS, {"limit": 30})

    # then
    assert len(response.json()["results"]) == 30


def test_product_list_filters_category_with_descendants_and_stock(api_client, merchant):
    # given
    outdoor = CategoryFactory(merchant=merchant, name="Outdoor", path="Outdoor")
    tents = CategoryFactory(merchant=merchant, name="Tents", path="Outdoor > Tents", parent=outdoor)
    ProductFactory(merchant=merchant, sku="TENT-IN", category=tents, inventory=2)
    ProductFactory(merchant=merchant, sku="TENT-OUT", category=tents, inventory=0)
    ProductFactory(merchant=merchant, sku="MUG")

    # when
    response = api_client.get(PRODUCTS, {"category": outdoor.pk, "in_stock": "true"})

    # then
    assert response.status_code == 200
    assert [product["sku"] for product in response.json()["results"]] == ["TENT-IN"]


def test_product_list_search_and_inactive_products_hidden(api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT-1", title="Cirrus Tent")
    ProductFactory(merchant=merchant, sku="TENT-2", title="Old Tent", is_active=False)
    ProductFactory(merchant=merchant, sku="MUG-1", title="Camp Mug")

    # when
    response = api_client.get(PRODUCTS, {"q": "tent"})

    # then
    assert [product["sku"] for product in response.json()["results"]] == ["TENT-1"]


def test_product_list_paginates_with_limit_and_offset(api_client, merchant):
    # given
    for index in range(5):
        ProductFactory(merchant=merchant, sku=f"P-{index}")

    # when
    response = api_client.get(PRODUCTS, {"limit": 2, "offset": 2})

    # then
    body = response.json()
    assert body["count"] == 5
    assert [product["sku"] for product in body["results"]] == ["P-2", "P-3"]
    assert "offset=4" in body["next"] and "limit=2" in body["next"]
    assert body["previous"] is not None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"category": "tents"}, "category"),
        ({"category": "0"}, "category"),
        ({"category": "999999"}, "category"),
        ({"in_stock": "maybe"}, "in_stock"),
        ({"limit": "many"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_product_list_rejects_bad_filters_naming_the_field(api_client, params, field):
    # when
    response = api_client.get(PRODUCTS, params)

    # then
    assert response.status_code == 400
    assert list(_reasons(response)) == [field]


def test_product_list_rejects_another_merchants_category(api_client, other_merchant):
    # given
    their_category = CategoryFactory(merchant=other_merchant)
    ProductFactory(merchant=other_merchant, category=their_category)

    # when
    response = api_client.get(PRODUCTS, {"category": their_category.pk})

    # then
    assert response.status_code == 400
    assert _reasons(response) == {"category": "No category with this id."}


def test_product_detail(api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="NB/IB-750", description="<p>Steel</p>", tags=["hydration"])

    # when
    response = api_client.get(f"{PRODUCTS}/NB/IB-750")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["sku"] == "NB/IB-750"
    assert body["description"] == "<p>Steel</p>"
    assert body["tags"] == ["hydration"]


def test_product_detail_unknown_sku_is_404_naming_the_field(api_client):
    # when
    response = api_client.get(f"{PRODUCTS}/NOPE")

    # then
    assert response.status_code == 404
    assert _reasons(response) == {"sku": "No product with this SKU."}


def test_category_list_is_a_flat_tree(api_client, merchant):
    # given
    outdoor = CategoryFactory(merchant=merchant, name="Outdoor", path="Outdoor")
    tents = CategoryFactory(merchant=merchant, name="Tents", path="Outdoor > Tents", parent=outdoor)

    # when
    response = api_client.get(CATEGORIES)

    # then
    assert response.status_code == 200
    assert response.json() == [
        {"id": outdoor.pk, "name": "Outdoor", "path": "Outdoor", "parent": None},
        {"id": tents.pk, "name": "Tents", "path": "Outdoor > Tents", "parent": outdoor.pk},
    ]


# --- Isolation: another merchant's key sees none of this merchant's rows --------------------------


def test_other_merchant_cannot_list_this_merchants_products(other_api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="MINE")

    # when
    response = other_api_client.get(PRODUCTS)

    # then
    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_other_merchant_cannot_read_this_merchants_product(other_api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="MINE")

    # when
    response = other_api_client.get(f"{PRODUCTS}/MINE")

    # then
    assert response.status_code == 404


def test_same_sku_resolves_to_each_merchants_own_product(api_client, other_api_client, merchant, other_merchant):
    # given
    ProductFactory(merchant=merchant, sku="SHARED", title="Mine")
    ProductFactory(merchant=other_merchant, sku="SHARED", title="Theirs")

    # when
    mine = api_client.get(f"{PRODUCTS}/SHARED").json()
    theirs = other_api_client.get(f"{PRODUCTS}/SHARED").json()

    # then
    assert (mine["title"], theirs["title"]) == ("Mine", "Theirs")


def test_other_merchant_cannot_list_this_merchants_categories(other_api_client, merchant):
    # given
    CategoryFactory(merchant=merchant)

    # when
    response = other_api_client.get(CATEGORIES)

    # then
    assert response.status_code == 200
    assert response.json() == []


# --- Authentication -------------------------------------------------------------------------------

ENDPOINTS = [PRODUCTS, f"{PRODUCTS}/SKU-1", CATEGORIES]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_missing_api_key_is_401(anonymous_api_client, url):
    # when
    response = anonymous_api_client.get(url)

    # then
    assert response.status_code == 401
    assert list(_reasons(response)) == ["authorization"]


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("header", ["Bearer rvk_000000000000.forged", "Bearer not-a-key", "Basic dXNlcjpwYXNz"])
def test_invalid_api_key_is_401(url, header):
    # given
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    # when
    response = client.get(url)

    # then
    assert response.status_code == 401


@pytest.mark.parametrize("url", ENDPOINTS)
def test_revoked_api_key_is_401(merchant, url):
    # given
    issued = api_key_create(merchant=merchant, name="old storefront")
    api_key_revoke(api_key=issued.api_key)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=issued.raw_key)

    # when
    response = client.get(url)

    # then
    assert response.status_code == 401


def test_a_tampered_secret_with_a_real_prefix_is_401(merchant):
    # given
    issued = api_key_create(merchant=merchant, name="storefront")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key[:-2]}xx")

    # when
    response = client.get(PRODUCTS)

    # then
    assert response.status_code == 401


# --- OpenAPI --------------------------------------------------------------------------------------


def test_openapi_schema_is_served_valid_and_lists_catalog_paths(anonymous_api_client):
    # when
    response = anonymous_api_client.get("/api/schema/")

    # then
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    validate_schema(schema)
    assert {"/api/v1/products", "/api/v1/products/{sku}", "/api/v1/categories"} <= set(schema["paths"])
    list_parameters = {parameter["name"] for parameter in schema["paths"]["/api/v1/products"]["get"]["parameters"]}
    assert {"category", "in_stock", "q", "limit", "offset"} <= list_parameters
