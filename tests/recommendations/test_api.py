from datetime import timedelta
from unittest import mock

import pytest
from django.core.cache import cache as django_cache
from django.utils import timezone

from catalog.models import Product
from recommendations.models import ServedRecommendation
from revopt.tenancy.models import ApiKey
from revopt.tenancy.services import api_key_revoke
from tests.factories.catalog import ProductFactory

from .serving_shop import build_shop

pytestmark = pytest.mark.django_db

URL = "/api/v1/recommendations"
RERANK_URL = "/api/v1/recommendations/rerank"


@pytest.fixture
def shop(merchant):
    return build_shop(merchant)


def _skus(response):
    return [item["sku"] for item in response.json()["items"]]


def test_home_answers_the_documented_shape(api_client, shop):
    # when
    response = api_client.get(URL, {"placement": "home", "customer_id": "alice", "k": 2, "device": "mobile"})

    # then
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"recommendation_id", "placement", "source", "degraded", "model_version", "experiment", "items"}
    assert body["experiment"] is None
    assert body["placement"] == "home"
    assert body["source"] == "model"
    assert body["degraded"] is False
    assert body["model_version"] == 1
    assert ServedRecommendation.objects.filter(pk=body["recommendation_id"]).exists()
    assert body["items"][0] == {
        "product_id": "LAMP-1",
        "sku": "LAMP-1",
        "title": "Camp Lamp",
        "price": "25.00",
        "score": body["items"][0]["score"],
        "reason": "purchased",
        "explanation": "Because you bought Trail Tent",
        "because_of": {"type": "product", "id": "TENT-1", "title": "Trail Tent"},
    }
    assert _skus(response) == ["LAMP-1", "STOVE-1"]


def test_trending_items_name_their_category(api_client, shop):
    # when
    response = api_client.get(URL, {"placement": "home", "anonymous_id": "new", "k": 10})

    # then
    pot = next(item for item in response.json()["items"] if item["sku"] == "POT-1")
    assert pot["explanation"] == "Trending in Kitchen"
    assert pot["because_of"] == {
        "type": "category",
        "id": str(shop.categories["kitchen"].pk),
        "title": "Kitchen",
        "path": "Kitchen",
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"placement": "pdp", "product_id": "TENT-1", "k": 1}, ["TENT-2"]),
        ({"placement": "cart", "cart": "STOVE-1, MUG-1", "k": 2}, ["FUEL-1", "POT-1"]),
        ({"placement": "email", "customer_id": "alice", "k": 1}, ["LAMP-1"]),
    ],
)
def test_each_placement(api_client, shop, params, expected):
    # when
    response = api_client.get(URL, params)

    # then
    assert response.status_code == 200
    assert _skus(response) == expected


def test_post_purchase(api_client, shop):
    # when: a guest checkout of the tent, which is bought with the pad
    response = api_client.get(URL, {"placement": "post_purchase", "anonymous_id": "x", "cart": "TENT-1", "k": 1})

    # then
    assert _skus(response) == ["PAD-1"]


def test_category_filter(api_client, shop):
    # when
    response = api_client.get(URL, {"placement": "home", "category": f"{shop.categories['tents'].pk}", "k": 5})

    # then
    assert sorted(_skus(response)) == ["TENT-1", "TENT-2"]


def test_stock_at_zero_leaves_the_list_at_once(api_client, shop):
    # given
    Product.objects.filter(pk=shop.id("TENT-2")).update(inventory=0)

    # when
    response = api_client.get(URL, {"placement": "pdp", "product_id": "TENT-1", "k": 3})

    # then
    assert "TENT-2" not in _skus(response)


def test_opted_out_customer_gets_the_non_personal_mix(api_client, shop):
    # given
    shop.alice.personalization_opt_out = True
    shop.alice.save()

    # when
    response = api_client.get(URL, {"placement": "home", "customer_id": "alice", "k": 3})

    # then
    assert response.json()["source"] == "non_personal"
    assert "LAMP-1" not in _skus(response)[:1]


def test_the_cache_down_still_answers_and_says_so(api_client, shop):
    # when Redis refuses every call
    with (
        mock.patch.object(django_cache, "get_many", side_effect=ConnectionError("down")),
        mock.patch.object(django_cache, "set_many", side_effect=ConnectionError("down")),
    ):
        response = api_client.get(URL, {"placement": "home", "customer_id": "alice", "k": 3})

    # then
    assert response.status_code == 200
    assert response.json()["source"] == "fallback"
    assert response.json()["degraded"] is True
    assert response.json()["model_version"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "placement"),
        ({"placement": "sidebar"}, "placement"),
        ({"placement": "home", "k": 0}, "k"),
        ({"placement": "home", "k": 101}, "k"),
        ({"placement": "home", "k": "ten"}, "k"),
        ({"placement": "pdp"}, "product_id"),
        ({"placement": "pdp", "product_id": "NOPE"}, "product_id"),
        ({"placement": "cart"}, "cart"),
        ({"placement": "cart", "cart": " , "}, "cart"),
        ({"placement": "cart", "cart": "STOVE-1,NOPE"}, "cart"),
        ({"placement": "home", "category": "tents"}, "category"),
        ({"placement": "home", "category": "0"}, "category"),
        ({"placement": "home", "category": "999999"}, "category"),
        ({"placement": "home", "device": "toaster"}, "device"),
        ({"placement": "home", "at": "yesterday"}, "at"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(api_client, shop, params, field):
    # when
    response = api_client.get(URL, params)

    # then
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]


def test_another_merchants_products_and_categories_are_unknown(other_api_client, shop, other_merchant):
    # when the other shop asks about this shop's product and category
    by_product = other_api_client.get(URL, {"placement": "pdp", "product_id": "TENT-1"})
    by_category = other_api_client.get(URL, {"placement": "home", "category": str(shop.categories["tents"].pk)})

    # then
    assert by_product.status_code == 400
    assert by_product.json()["errors"][0]["field"] == "product_id"
    assert by_category.status_code == 400
    assert by_category.json()["errors"][0]["field"] == "category"


def test_another_merchants_storefront_never_sees_this_shops_lists(other_api_client, shop, other_merchant):
    # given the other shop has one product and no model
    ProductFactory(merchant=other_merchant, sku="THEIRS-1")

    # when
    response = other_api_client.get(URL, {"placement": "home", "customer_id": "alice", "k": 10})

    # then
    assert response.status_code == 200
    assert not set(_skus(response)) & set(shop.products)


def test_no_key_is_401(anonymous_api_client, shop):
    # when
    response = anonymous_api_client.get(URL, {"placement": "home"})

    # then
    assert response.status_code == 401
    assert response.json()["errors"][0]["field"] == "authorization"


def test_a_revoked_key_is_401(api_client, shop):
    # given
    api_key_revoke(api_key=ApiKey.objects.get(merchant=shop.merchant))

    # when
    response = api_client.get(URL, {"placement": "home"})

    # then
    assert response.status_code == 401


def test_a_request_runs_a_small_fixed_number_of_queries(api_client, shop, django_assert_max_num_queries):
    # given a warm cache and a key used a moment ago
    params = {"placement": "pdp", "product_id": "TENT-1", "customer_id": "alice", "session_id": "s-1", "k": 10}
    api_client.get(URL, params)

    # when / then: the key is remembered by this process; references, customer with purchases, session
    # events, products, insert
    with django_assert_max_num_queries(5):
        response = api_client.get(URL, params)
    assert response.status_code == 200


def test_rerank_orders_for_the_customer_and_reports_unknown_ids(api_client, shop):
    # when
    response = api_client.post(
        RERANK_URL, {"product_ids": ["PAD-1", "NOPE", "STOVE-1", "LAMP-1"], "customer_id": "alice"}, format="json"
    )

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["product_ids"] == ["LAMP-1", "STOVE-1", "PAD-1"]
    assert body["unknown_product_ids"] == ["NOPE"]
    assert [item["product_id"] for item in body["items"]] == body["product_ids"]
    assert body["source"] == "model"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "product_ids"),
        ({"product_ids": []}, "product_ids"),
        ({"product_ids": "TENT-1"}, "product_ids"),
        ({"product_ids": ["x"] * 101}, "product_ids"),
    ],
)
def test_rerank_bad_input_is_400(api_client, shop, body, field):
    # when
    response = api_client.post(RERANK_URL, body, format="json")

    # then
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].startswith(field)


def test_rerank_of_another_merchants_products_reports_them_unknown(other_api_client, shop):
    # when
    response = other_api_client.post(RERANK_URL, {"product_ids": ["TENT-1"]}, format="json")

    # then
    assert response.status_code == 200
    assert response.json()["product_ids"] == []
    assert response.json()["unknown_product_ids"] == ["TENT-1"]


def test_rerank_requires_a_key(anonymous_api_client):
    # when
    response = anonymous_api_client.post(RERANK_URL, {"product_ids": ["TENT-1"]}, format="json")

    # then
    assert response.status_code == 401


def test_at_moves_the_clock_for_time_windowed_rules(api_client, shop):
    # given a pin that starts tomorrow
    from recommendations.services.placements import placement_item_rule_create

    placement_item_rule_create(
        merchant=shop.merchant,
        product=shop.products["FUEL-1"],
        action="pin",
        position=1,
        starts_at=timezone.now() + timedelta(days=1),
    )
    tomorrow = (timezone.now() + timedelta(days=1, hours=1)).isoformat()

    # when
    today = api_client.get(URL, {"placement": "home", "customer_id": "alice", "k": 1})
    later = api_client.get(URL, {"placement": "home", "customer_id": "alice", "k": 1, "at": tomorrow})

    # then
    assert _skus(today) == ["LAMP-1"]
    assert _skus(later) == ["FUEL-1"]


def test_blank_visitor_ids_count_as_absent(api_client, shop):
    # when a guest's storefront sends empty ids
    response = api_client.get(
        URL, {"placement": "home", "customer_id": "", "anonymous_id": "", "session_id": "", "k": 2}
    )

    # then
    assert response.status_code == 200
    assert _skus(response) == ["SOCK-1", "MUG-1"]
