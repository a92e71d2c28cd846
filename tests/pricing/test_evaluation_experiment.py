import math
from collections import Counter
from datetime import UTC
from decimal import Decimal

import pytest
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from catalog.models import Product
from events.models import Event
from experiments.models import Experiment, ExperimentStatus
from pricing.evaluation.experiment import (
    ENGINE,
    EXPERIMENT_KEY,
    STATIC,
    PricingGuardrailPlan,
    day_start_of,
    pricing_experiment_run,
)
from pricing.models import PriceChange, PriceChangeSource
from pricing.selectors.experiments import pricing_arms_for_products
from revopt.simulator.models import SimulationRun
from revopt.simulator.services import simulation_config_resolve
from revopt.simulator.world import World, WorldConfig
from revopt.tenancy.models import Merchant
from tests.factories.catalog import ProductFactory

CONFIG = WorldConfig(seed=5, n_sessions=1_500, days=14, n_products=30, n_categories=3)
SPLIT_DAY = 7


# Transactional: experiments and prices are published to the live memos when their writes commit, as in production.
@pytest.mark.django_db(transaction=True)
def test_the_pricing_experiment_reprices_only_engine_products_inside_the_guardrails_with_one_price_for_everyone(
    merchant,
):
    # given: a small shop whose back office starts "ai-vs-static" on day 7
    plan = PricingGuardrailPlan()

    # when
    report = pricing_experiment_run(merchant=merchant, config=CONFIG, split_day=SPLIT_DAY, plan=plan, progress=False)

    # then: the report has its shape
    assert set(report.arms) == {STATIC, ENGINE}
    assert report.arms[STATIC].products + report.arms[ENGINE].products == CONFIG.n_products
    assert min(report.arms[STATIC].products, report.arms[ENGINE].products) > 5
    rows = report.rows()
    assert rows and all(len(row) == 4 and all(isinstance(cell, str) for cell in row) for row in rows)
    assert {row[3] for row in rows} <= {"pass", "fail", "info", "yes", "no"}
    data = report.as_dict()
    assert {"arms", "margin_lift", "revenue_lift", "true_margin_lift", "notes"} <= set(data)
    assert (
        data["margin_lift"]["relative_low"] <= data["margin_lift"]["relative"] <= data["margin_lift"]["relative_high"]
    )
    assert any("substitut" in note or "compete" in note for note in report.notes)
    assert report.demand_fits == CONFIG.days - SPLIT_DAY
    assert report.price_api_failures == 0
    # the experiment is a running product-randomised pricing experiment
    experiment = Experiment.objects.for_merchant(merchant).get(key=EXPERIMENT_KEY)
    config = simulation_config_resolve(merchant=merchant, config=CONFIG)
    assert experiment.status == ExperimentStatus.RUNNING
    assert experiment.started_at == day_start_of(config, SPLIT_DAY)

    # and engine products' prices moved, each change auto-approved inside the guardrails
    world = World.from_ground_truth(SimulationRun.objects.for_merchant(merchant).get().ground_truth)
    products = list(Product.objects.for_merchant(merchant))
    arms = pricing_arms_for_products(merchant=merchant, products=products)
    arm_of = {product.pk: arms[product.pk].variant_key for product in products}
    list_price = {
        product.pk: Decimal(f"{world.list_price[world.product_index_by_sku[product.sku]]:.2f}") for product in products
    }
    changes = list(PriceChange.objects.for_merchant(merchant))
    assert changes, "the engine never moved a price"
    for change in changes:
        assert arm_of[change.product_id] == ENGINE
        assert change.source == PriceChangeSource.AUTO_APPROVED
        assert abs(change.to_price / change.from_price - 1) <= Decimal("0.1001")
        assert (
            plan.floor_of(list_price[change.product_id])
            <= change.to_price
            <= plan.ceiling_of(list_price[change.product_id])
        )
    assert not report.guardrail_violations
    assert report.arms[ENGINE].repriced_products == len({change.product_id for change in changes})

    # static products never moved: every price shoppers saw is the list price
    static_views = Event.objects.for_merchant(merchant).filter(
        name="Product Viewed", product__in=[pk for pk, arm in arm_of.items() if arm == STATIC]
    )
    assert static_views.exists()
    assert all(price == list_price[pk] for pk, price in static_views.values_list("product_id", "price").distinct())
    assert report.static_price_changes == 0

    # and on every day each product had one price, whoever looked at it
    prices_per_day = (
        Event.objects.for_merchant(merchant)
        .filter(name="Product Viewed", product__isnull=False)
        .annotate(day=TruncDate("timestamp", tzinfo=UTC))
        .values("product_id", "day")
        .annotate(prices=Count("price", distinct=True), shoppers=Count("customer", distinct=True))
    )
    assert max(row["prices"] for row in prices_per_day) == 1
    assert any(row["shoppers"] > 1 for row in prices_per_day)
    assert report.days_with_several_prices == 0
    # engine products were shown at their new prices (the engine's moves reached shoppers), at most one move a week
    split_at = day_start_of(config, SPLIT_DAY)
    shown_after_split = (
        Event.objects.for_merchant(merchant)
        .filter(name="Product Viewed", timestamp__gte=split_at, product__in=[change.product_id for change in changes])
        .values_list("product_id", "price")
        .distinct()
    )
    assert any(price != list_price[product_id] for product_id, price in shown_after_split)
    changes_per_product = Counter(change.product_id for change in changes)
    assert max(changes_per_product.values()) <= -(-(CONFIG.days - SPLIT_DAY) // plan.period_days)


@pytest.mark.django_db
def test_a_throwaway_evaluation_merchant_is_deleted_with_its_price_history(merchant, other_merchant):
    # given: a live price change (which protects its product) and another shop's product
    product = ProductFactory(merchant=merchant, price=Decimal("20.00"))
    kept = ProductFactory(merchant=other_merchant)
    PriceChange.objects.create(
        merchant=merchant,
        product=product,
        from_price=Decimal("20.00"),
        to_price=Decimal("21.00"),
        source=PriceChangeSource.AUTO_APPROVED,
        reason="engine",
        created_at=timezone.now(),
    )

    # when
    merchant.delete()

    # then
    assert not Merchant.objects.filter(pk=merchant.pk).exists()
    assert not Product.objects.filter(pk=product.pk).exists()
    assert Product.objects.filter(pk=kept.pk).exists()


def test_an_arms_growth_is_read_against_its_own_pre_period():
    # given an engine arm a fifth smaller than the static one before the split, growing 10% to the static's 5%
    from pricing.evaluation.experiment import _growth_ratio

    # when
    growth = _growth_ratio(88.0, 80.0, 105.0, 100.0)

    # then the difference in differences, not the raw gap between arms of different sizes
    assert growth == pytest.approx(1.10 / 1.05 - 1)
    assert math.isnan(_growth_ratio(1.0, 0.0, 1.0, 1.0))
