from datetime import UTC, datetime
from decimal import Decimal

import pytest

from experiments.models import Surface
from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_roll_out, experiment_start
from pricing.models import GuardrailScope, PriceChangeSource
from pricing.services.approval import price_set_live
from tests.factories.catalog import ProductFactory
from tests.factories.pricing import GuardrailFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/prices"
STARTED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _experiment(merchant, variants, key="price-test"):
    experiment = experiment_create(merchant=merchant, key=key, name=key, surface=Surface.PRICING, variants=variants)
    return experiment_start(experiment=experiment, actor=None, now=STARTED)


def _by_sku(response):
    return {item["sku"]: item for item in response.json()["prices"]}


def test_prices_without_an_experiment(api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT", price=Decimal("129.00"), compare_at_price=Decimal("149.00"))
    moved = ProductFactory(merchant=merchant, sku="MAT", price=Decimal("30.00"))
    price_set_live(product=moved, to_price=Decimal("31.50"), source=PriceChangeSource.APPROVED, actor=None, reason="t")

    # when
    response = api_client.get(URL, {"products": "TENT,MAT,TENT,GONE"})

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["unknown"] == ["GONE"]
    assert body["prices"][0] == {
        "sku": "TENT",
        "price": "129.00",
        "currency": "USD",
        "compare_at_price": "149.00",
        "source": "catalog",
        "experiment": None,
        "changed_at": None,
    }
    mat = body["prices"][1]
    assert (mat["sku"], mat["price"], mat["source"], mat["experiment"]) == ("MAT", "31.50", "revopt", None)
    assert mat["changed_at"] is not None


def test_both_arms_of_a_running_experiment_and_a_clipped_price_test(api_client, merchant):
    # given a 30% cut in one arm, and at most 10% per step shop-wide
    products = ProductFactory.create_batch(40, merchant=merchant, price=Decimal("50.00"), cost=Decimal("10.00"))
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.MERCHANT, max_change_per_step=Decimal("0.10"))
    _experiment(
        merchant,
        [
            VariantSpec("control", "Control", 0.5, {"pricing": "engine"}),
            VariantSpec("minus-30", "30% off", 0.5, {"price_multiplier": 0.7}),
        ],
    )

    # when
    response = api_client.get(URL, {"products": ",".join(product.sku for product in products)})

    # then the control arm keeps 50.00, the test arm is held at 45.00 (not 35.00) by the guardrail
    assert response.status_code == 200
    seen = {(item["experiment"]["variant"], item["price"], item["source"]) for item in response.json()["prices"]}
    assert seen == {("control", "50.00", "catalog"), ("minus-30", "45.00", "experiment")}
    assert all(item["experiment"]["key"] == "price-test" for item in response.json()["prices"])


def test_a_rolled_out_price_test_prices_every_product(api_client, merchant):
    # given
    products = ProductFactory.create_batch(10, merchant=merchant, price=Decimal("10.00"), cost=Decimal("2.00"))
    experiment = _experiment(
        merchant,
        [
            VariantSpec("control", "Control", 0.5, {"pricing": "engine"}),
            VariantSpec("plus-5", "+5%", 0.5, {"price_multiplier": 1.05}),
        ],
    )
    experiment_roll_out(experiment=experiment, variant=experiment.variants.get(key="plus-5"), actor=None)

    # when
    response = api_client.get(URL, {"products": ",".join(product.sku for product in products)})

    # then
    assert {(item["price"], item["experiment"]["variant"]) for item in response.json()["prices"]} == {
        ("10.50", "plus-5")
    }


def test_the_price_is_the_same_whoever_asks(api_client, merchant):
    # given a running price test; a storefront cannot say who the shopper is, and extra parameters change nothing
    products = ProductFactory.create_batch(20, merchant=merchant, price=Decimal("40.00"), cost=Decimal("5.00"))
    _experiment(
        merchant,
        [
            VariantSpec("control", "Control", 0.5, {"pricing": "engine"}),
            VariantSpec("minus-5", "5% off", 0.5, {"price_multiplier": 0.95}),
        ],
    )
    skus = ",".join(product.sku for product in products)

    # when
    plain = api_client.get(URL, {"products": skus})
    with_shopper = api_client.get(URL, {"products": skus, "customer_id": "vip-1", "anonymous_id": "a", "country": "CH"})

    # then
    assert plain.json() == with_shopper.json()


def test_another_merchants_products_are_unknown(other_api_client, merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT")

    # when
    response = other_api_client.get(URL, {"products": "TENT"})

    # then
    assert response.status_code == 200
    assert response.json() == {"prices": [], "unknown": ["TENT"]}


def test_no_key_is_401(anonymous_api_client):
    # when
    response = anonymous_api_client.get(URL, {"products": "TENT"})

    # then
    assert response.status_code == 401
    assert response.json()["errors"][0]["field"] == "authorization"


@pytest.mark.parametrize(
    "query",
    [{}, {"products": ""}, {"products": " , ,"}, {"products": ",".join(f"S{n}" for n in range(201))}],
)
def test_bad_input_is_400_naming_products(api_client, query):
    # when
    response = api_client.get(URL, query)

    # then
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["products"]


def test_two_hundred_skus_are_answered_in_a_few_queries(api_client, merchant, django_assert_max_num_queries):
    # given
    products = ProductFactory.create_batch(200, merchant=merchant)
    skus = ",".join(product.sku for product in products)
    api_client.get(URL, {"products": skus})  # the key and live-experiments memos, warm as on a serving process

    # when
    with django_assert_max_num_queries(3):
        response = api_client.get(URL, {"products": skus})

    # then
    assert len(response.json()["prices"]) == 200
