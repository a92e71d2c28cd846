from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from pricing.guardrails import GuardrailLimits
from pricing.models import GuardrailScope, PriceChange, PriceChangeSource, PricingSettings
from pricing.selectors.guardrails import (
    guardrail_context_for,
    guardrail_contexts_for_products,
    guardrail_limits_for,
    guardrail_limits_for_products,
    guardrail_limits_resolved_for_products,
    pricing_settings_for,
)
from tests.factories.catalog import CategoryFactory, CompetitorPriceObservationFactory, ProductFactory
from tests.factories.pricing import GuardrailFactory

pytestmark = pytest.mark.django_db

D = Decimal


def _change(product, *, from_price, to_price, at, source=PriceChangeSource.APPROVED) -> PriceChange:
    return PriceChange.objects.create(
        merchant=product.merchant,
        product=product,
        from_price=D(from_price),
        to_price=D(to_price),
        source=source,
        reason="test",
        created_at=at,
    )


def test_limits_inherit_field_by_field_product_then_nearest_category_then_ancestor_then_shop(merchant):
    # given: Outdoor > Tents; shop, Outdoor, Tents and the product each set some fields
    outdoor = CategoryFactory(merchant=merchant, name="Outdoor", path="Outdoor")
    tents = CategoryFactory(merchant=merchant, name="Tents", path="Outdoor > Tents", parent=outdoor)
    product = ProductFactory(merchant=merchant, category=tents)
    GuardrailFactory(merchant=merchant, price_floor=D("5"), min_margin=D("0.10"), max_change_per_step=D("0.20"))
    GuardrailFactory(
        merchant=merchant, scope=GuardrailScope.CATEGORY, category=outdoor, min_margin=D("0.25"), price_ceiling=D("90")
    )
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.CATEGORY, category=tents, price_ceiling=D("60"))
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.PRODUCT, product=product, map_price=D("19.99"))

    # when
    limits = guardrail_limits_for(merchant=merchant, product=product)
    sources = guardrail_limits_resolved_for_products(merchant=merchant, products=[product])[product.pk].sources

    # then
    assert limits == GuardrailLimits(
        price_floor=D("5.00"),
        price_ceiling=D("60.00"),
        min_margin=D("0.2500"),
        max_change_per_step=D("0.2000"),
        map_price=D("19.99"),
    )
    assert sources["price_ceiling"].category == tents
    assert sources["min_margin"].category == outdoor
    assert sources["price_floor"].scope == GuardrailScope.MERCHANT
    assert sources["map_price"].product == product


def test_another_merchants_guardrails_never_apply(merchant, other_merchant):
    # given
    product = ProductFactory(merchant=merchant)
    GuardrailFactory(merchant=other_merchant, price_floor=D("99"))

    # when
    limits = guardrail_limits_for(merchant=merchant, product=product)

    # then
    assert limits == GuardrailLimits()


def test_limits_and_contexts_for_many_products_take_a_constant_number_of_queries(
    merchant, django_assert_max_num_queries
):
    # given: products in nested categories, some with their own rows, changes and competitor prices
    parent = CategoryFactory(merchant=merchant, path="A")
    child = CategoryFactory(merchant=merchant, path="A > B", parent=parent)
    GuardrailFactory(merchant=merchant, max_changes_per_period=3)
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.CATEGORY, category=parent, price_floor=D("1"))
    products = ProductFactory.create_batch(40, merchant=merchant, category=child)
    now = timezone.now()
    for product in products[:20]:
        GuardrailFactory(merchant=merchant, scope=GuardrailScope.PRODUCT, product=product, price_ceiling=D("80"))
        _change(product, from_price="24.00", to_price="25.00", at=now - timedelta(days=2))
        CompetitorPriceObservationFactory(merchant=merchant, product=product, observed_at=now - timedelta(days=1))

    # when / then: two queries for limits, two more for the contexts, whatever the count
    with django_assert_max_num_queries(2):
        limits = guardrail_limits_for_products(merchant=merchant, products=products)
    with django_assert_max_num_queries(2):
        contexts = guardrail_contexts_for_products(merchant=merchant, products=products, now=now, limits=limits)
    assert len(limits) == len(contexts) == 40
    assert limits[products[0].pk].price_ceiling == D("80.00")
    assert limits[products[-1].pk].price_ceiling is None
    assert limits[products[-1].pk].price_floor == D("1.00")
    assert contexts[products[0].pk].changes_in_period == 1
    assert contexts[products[-1].pk].changes_in_period == 0


def test_context_reads_the_price_a_week_ago_from_the_first_change_of_the_week(merchant):
    # given: 20 → 22 ten days ago, 22 → 24 five days ago, 24 → 25 yesterday
    now = timezone.now()
    product = ProductFactory(merchant=merchant, price=D("25.00"), cost=D("11.00"))
    _change(product, from_price="20.00", to_price="22.00", at=now - timedelta(days=10))
    _change(product, from_price="22.00", to_price="24.00", at=now - timedelta(days=5))
    _change(product, from_price="24.00", to_price="25.00", at=now - timedelta(days=1))
    untouched = ProductFactory(merchant=merchant, price=D("9.00"))

    # when
    context = guardrail_context_for(merchant=merchant, product=product, now=now)
    quiet = guardrail_context_for(merchant=merchant, product=untouched, now=now)

    # then
    assert context.current_price == D("25.00")
    assert context.unit_cost == D("11.00")
    assert context.price_week_ago == D("22.00")
    assert quiet.price_week_ago == D("9.00")


def test_changes_are_counted_over_each_products_own_period(merchant):
    # given: 3 changes in the last 12 days; one product counts over 14 days, the other over the default 7
    now = timezone.now()
    long_period, default_period = ProductFactory.create_batch(2, merchant=merchant)
    GuardrailFactory(
        merchant=merchant, scope=GuardrailScope.PRODUCT, product=long_period, max_changes_per_period=5, period_days=14
    )
    for product in (long_period, default_period):
        for days in (12, 6, 1):
            _change(product, from_price="24.00", to_price="25.00", at=now - timedelta(days=days))

    # when
    contexts = guardrail_contexts_for_products(merchant=merchant, products=[long_period, default_period], now=now)

    # then
    assert contexts[long_period.pk].changes_in_period == 3
    assert contexts[default_period.pk].changes_in_period == 2


def test_lowest_competitor_price_counts_the_last_seven_days_of_this_merchant_only(merchant, other_merchant):
    # given
    now = timezone.now()
    product = ProductFactory(merchant=merchant)
    CompetitorPriceObservationFactory(merchant=merchant, product=product, price=D("23.00"), observed_at=now)
    CompetitorPriceObservationFactory(
        merchant=merchant, product=product, price=D("21.00"), observed_at=now - timedelta(days=3)
    )
    CompetitorPriceObservationFactory(
        merchant=merchant, product=product, price=D("15.00"), observed_at=now - timedelta(days=8)
    )
    lonely = ProductFactory(merchant=merchant)
    CompetitorPriceObservationFactory(merchant=other_merchant, price=D("1.00"), observed_at=now)

    # when
    contexts = guardrail_contexts_for_products(merchant=merchant, products=[product, lonely], now=now)

    # then
    assert contexts[product.pk].lowest_competitor_price == D("21.00")
    assert contexts[lonely.pk].lowest_competitor_price is None


def test_pricing_settings_are_created_once_with_the_defaults(merchant, other_merchant):
    # when
    first = pricing_settings_for(merchant=merchant)
    again = pricing_settings_for(merchant=merchant)
    theirs = pricing_settings_for(merchant=other_merchant)

    # then
    assert first.pk == again.pk != theirs.pk
    assert first.auto_approve_max_change == 0
    assert PricingSettings.objects.for_merchant(merchant).count() == 1
