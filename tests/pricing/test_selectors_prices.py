from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from catalog.models import Product
from experiments.models import Surface
from experiments.selectors.assignment import live_experiments
from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_start
from pricing.models import GuardrailScope, PriceChangeSource
from pricing.selectors.prices import PriceSource, live_prices
from pricing.services.approval import price_set_live
from tests.factories.catalog import ProductFactory
from tests.factories.pricing import GuardrailFactory

pytestmark = pytest.mark.django_db

STARTED = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _price_test(merchant, *, multiplier=0.9, key="minus-10"):
    """Every product in the price-test arm (the control arm has weight 0)."""
    experiment = experiment_create(
        merchant=merchant,
        key=key,
        name=key,
        surface=Surface.PRICING,
        variants=[
            VariantSpec("control", "Control", 0.0, {"pricing": "engine"}),
            VariantSpec("test", "Test", 1.0, {"price_multiplier": multiplier}),
        ],
    )
    return experiment_start(experiment=experiment, actor=None, now=STARTED)


def test_a_catalog_price_is_served_as_it_is(merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT", price=Decimal("129.00"), compare_at_price=Decimal("149.00"))
    ProductFactory(merchant=merchant, sku="MAT", price=Decimal("30.00"), compare_at_price=Decimal("25.00"))

    # when
    prices = live_prices(merchant=merchant, skus=["TENT", "MAT"]).by_sku()

    # then
    tent, mat = prices["TENT"], prices["MAT"]
    assert (tent.price, tent.source, tent.experiment_key, tent.changed_at) == (
        Decimal("129.00"),
        PriceSource.CATALOG,
        None,
        None,
    )
    assert tent.compare_at_price == Decimal("149.00")
    assert mat.compare_at_price is None  # a strike-through price below the price would mislead


def test_a_price_revopt_set_live_is_served_with_its_time(merchant):
    # given
    product = ProductFactory(merchant=merchant, sku="TENT", price=Decimal("100.00"))
    change = price_set_live(
        product=product, to_price=Decimal("104.00"), source=PriceChangeSource.APPROVED, actor=None, reason="test"
    )

    # when
    (price,) = live_prices(merchant=merchant, skus=["TENT"]).prices

    # then
    assert (price.price, price.source, price.changed_at) == (Decimal("104.00"), PriceSource.REVOPT, change.created_at)


def test_a_catalog_change_after_revopts_wins_and_is_called_catalog(merchant):
    # given revopt set 104, then the shop re-imported its catalog at 99
    product = ProductFactory(merchant=merchant, sku="TENT", price=Decimal("100.00"))
    price_set_live(
        product=product, to_price=Decimal("104.00"), source=PriceChangeSource.APPROVED, actor=None, reason="test"
    )
    Product.objects.filter(pk=product.pk).update(price=Decimal("99.00"))

    # when
    (price,) = live_prices(merchant=merchant, skus=["TENT"]).prices

    # then
    assert (price.price, price.source, price.changed_at) == (Decimal("99.00"), PriceSource.CATALOG, None)


def test_unknown_and_inactive_skus_are_listed_and_duplicates_collapse(merchant, other_merchant):
    # given
    ProductFactory(merchant=merchant, sku="A")
    ProductFactory(merchant=merchant, sku="B")
    ProductFactory(merchant=merchant, sku="RETIRED", is_active=False)
    ProductFactory(merchant=other_merchant, sku="THEIRS")

    # when
    prices = live_prices(merchant=merchant, skus=["B", "NOPE", "A", "B", "RETIRED", "THEIRS"])

    # then
    assert [price.sku for price in prices.prices] == ["B", "A"]
    assert prices.unknown == ("NOPE", "RETIRED", "THEIRS")


def test_engine_and_static_arms_serve_the_products_price_and_name_the_arm(merchant):
    # given
    products = ProductFactory.create_batch(40, merchant=merchant, price=Decimal("20.00"))
    experiment_start(
        experiment=experiment_create(
            merchant=merchant,
            key="ai-vs-static",
            name="AI vs static",
            surface=Surface.PRICING,
            variants=[
                VariantSpec("static", "Static", 0.5, {"pricing": "static"}),
                VariantSpec("engine", "Engine", 0.5, {"pricing": "engine"}),
            ],
        ),
        actor=None,
        now=STARTED,
    )

    # when
    prices = live_prices(merchant=merchant, skus=[product.sku for product in products]).prices

    # then
    assert {price.variant_key for price in prices} == {"static", "engine"}
    assert {(price.price, price.source, price.experiment_key) for price in prices} == {
        (Decimal("20.00"), PriceSource.CATALOG, "ai-vs-static")
    }


def test_a_price_test_multiplies_the_price_to_the_cent(merchant):
    # given
    ProductFactory(merchant=merchant, sku="TENT", price=Decimal("19.99"), cost=Decimal("5.00"))
    _price_test(merchant, multiplier=0.95)

    # when
    (price,) = live_prices(merchant=merchant, skus=["TENT"]).prices

    # then 19.99 × 0.95 = 18.9905
    assert (price.price, price.source, price.experiment_key, price.variant_key, price.changed_at) == (
        Decimal("18.99"),
        PriceSource.EXPERIMENT,
        "minus-10",
        "test",
        STARTED,
    )


@pytest.mark.parametrize(
    ("guardrail", "expected"),
    [
        ({"max_change_per_step": Decimal("0.05")}, Decimal("23.75")),  # 25 - 5%
        ({"price_floor": Decimal("24.00")}, Decimal("24.00")),
        ({"min_margin": Decimal("0.50")}, Decimal("24.00")),  # cost 12 / (1 - 0.5)
        ({}, Decimal("20.00")),
    ],
)
def test_a_price_test_stays_inside_the_guardrails(merchant, guardrail, expected):
    # given a 20% cut of a 25.00 product costing 12.00
    ProductFactory(merchant=merchant, sku="TENT", price=Decimal("25.00"), cost=Decimal("12.00"))
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.MERCHANT, **guardrail)
    _price_test(merchant, multiplier=0.8)

    # when
    (price,) = live_prices(merchant=merchant, skus=["TENT"]).prices

    # then
    assert price.price == expected


def test_a_price_test_waits_while_the_change_count_is_used_up(merchant):
    # given one change allowed a week, and one made today
    product = ProductFactory(merchant=merchant, sku="TENT", price=Decimal("25.00"))
    GuardrailFactory(merchant=merchant, max_changes_per_period=1, period_days=7)
    change = price_set_live(
        product=product, to_price=Decimal("26.00"), source=PriceChangeSource.APPROVED, actor=None, reason="test"
    )
    _price_test(merchant, multiplier=0.9)

    # when
    (price,) = live_prices(merchant=merchant, skus=["TENT"], now=change.created_at + timedelta(hours=1)).prices

    # then the product keeps its live price, still named in its arm
    assert (price.price, price.source, price.variant_key) == (Decimal("26.00"), PriceSource.REVOPT, "test")


def test_a_few_queries_whatever_the_number_of_products(merchant, django_assert_max_num_queries):
    # given 200 products in a price test, with changes and competitor prices
    products = ProductFactory.create_batch(200, merchant=merchant)
    for product in products[:20]:
        price_set_live(
            product=product, to_price=Decimal("26.00"), source=PriceChangeSource.APPROVED, actor=None, reason="t"
        )
    GuardrailFactory(merchant=merchant, max_change_per_step=Decimal("0.05"))
    _price_test(merchant)
    live_experiments(merchant_id=merchant.pk)  # the memo, warm as on a serving process

    # when
    with django_assert_max_num_queries(7):
        prices = live_prices(merchant=merchant, skus=[product.sku for product in products])

    # then
    assert len(prices.prices) == 200


def test_without_an_experiment_one_query(merchant, django_assert_num_queries):
    # given
    products = ProductFactory.create_batch(50, merchant=merchant)
    live_experiments(merchant_id=merchant.pk)

    # when
    with django_assert_num_queries(1):
        prices = live_prices(merchant=merchant, skus=[product.sku for product in products])

    # then
    assert len(prices.prices) == 50
