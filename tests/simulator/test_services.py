from dataclasses import replace
from datetime import date

import numpy as np
import pytest
from django.db.models import Count, Q, Sum

from catalog.models import Product
from events.models import AnonymousIdentity, Customer, Event, Order, Session
from revopt.simulator.driver import HttpTransport
from revopt.simulator.models import SimulationRun
from revopt.simulator.services import simulation_run
from revopt.simulator.world import ELASTICITY_BOUNDS, World, WorldConfig
from revopt.tenancy.models import ApiKey
from revopt.tenancy.services import api_key_create
from tests.factories.tenancy import MerchantFactory
from tests.simulator.fakes import FakeStorefront

pytestmark = pytest.mark.django_db

# Small enough for seconds, large enough that the realism ranges are several standard errors wide.
REALISM_CONFIG = WorldConfig(seed=2024, n_sessions=4000, n_products=200, days=28)


SMALL_CONFIG = replace(REALISM_CONFIG, n_sessions=1200, n_products=100, days=14)


@pytest.fixture
def realistic_run(merchant) -> SimulationRun:
    return simulation_run(merchant=merchant, config=REALISM_CONFIG, progress=False)


@pytest.fixture
def small_run(merchant) -> SimulationRun:
    return simulation_run(merchant=merchant, config=SMALL_CONFIG, progress=False)


def test_conversion_abandonment_and_aov_measured_from_stored_rows_are_realistic(merchant, realistic_run):
    # given: what revopt stored from the API, not what the simulator counted
    sessions = Session.objects.for_merchant(merchant)
    orders = Order.objects.for_merchant(merchant)
    sessions_with_cart = sessions.annotate(
        added=Count("events", filter=Q(events__name="Product Added")), ordered=Count("orders")
    ).filter(added__gt=0)

    # when
    conversion = orders.count() / sessions.count()
    abandonment = sessions_with_cart.filter(ordered=0).count() / sessions_with_cart.count()
    aov = float(orders.aggregate(total=Sum("total"))["total"]) / orders.count()

    # then
    assert sessions.count() == REALISM_CONFIG.n_sessions
    assert 0.02 <= conversion <= 0.04
    assert 0.60 <= abandonment <= 0.80
    assert 60 <= aov <= 100


def test_a_run_stores_stats_matching_the_rows_and_its_ground_truth(merchant, small_run):
    # given
    run = SimulationRun.objects.for_merchant(merchant).get()

    # when
    world = World.from_ground_truth(run.ground_truth)
    elasticity = world.elasticities(world.list_price)
    shown = ~np.isnan(elasticity)

    # then
    assert run.status == SimulationRun.Status.COMPLETED and run.finished_at is not None
    assert run.stats["sessions"] == Session.objects.for_merchant(merchant).count()
    assert run.stats["orders"] == Order.objects.for_merchant(merchant).count()
    assert run.stats["events"] == Event.objects.for_merchant(merchant).count() == run.stats["events_accepted"]
    assert run.catalog_import.rows_failed == 0
    assert Product.objects.for_merchant(merchant).count() == SMALL_CONFIG.n_products
    skus = set(Product.objects.for_merchant(merchant).values_list("sku", flat=True))
    assert skus == {product["sku"] for product in run.ground_truth["products"]}
    low, high = ELASTICITY_BOUNDS
    assert low <= elasticity[shown].min() and elasticity[shown].max() <= high
    # The run's key only lived for the run.
    assert ApiKey.objects.get(pk=run.api_key_id).revoked_at is not None


def test_identities_are_stitched_when_shoppers_log_in(merchant, small_run):
    # given
    user_ids = {s["user_id"] for s in small_run.ground_truth["shoppers"] if s["user_id"]}

    # when
    identified = Customer.objects.for_merchant(merchant).filter(external_id__in=user_ids)
    with_devices = AnonymousIdentity.objects.for_merchant(merchant).filter(customer__in=identified)

    # then
    assert identified.exists()
    assert with_devices.values("customer").distinct().count() >= 0.8 * identified.count()
    assert (
        not Customer.objects.for_merchant(merchant).exclude(external_id=None).exclude(external_id__in=user_ids).exists()
    )


def test_the_same_seed_stores_the_same_orders_for_two_merchants():
    # given
    config = replace(REALISM_CONFIG, n_sessions=800, n_products=80, days=10)
    first, second = MerchantFactory(), MerchantFactory()

    # when
    simulation_run(merchant=first, config=config, progress=False)
    simulation_run(merchant=second, config=config, progress=False)

    # then
    def orders(merchant):
        return list(
            Order.objects.for_merchant(merchant)
            .order_by("external_id")
            .values_list("external_id", "total", "placed_at")
        )

    assert orders(first) and orders(first) == orders(second)


def test_a_rejected_event_marks_the_run_failed(merchant):
    # given
    config = replace(REALISM_CONFIG, n_sessions=200, n_products=40, days=5)
    # The fake serves the same catalog the run imports: products do not depend on the start date.
    world = World.generate(replace(config, start_date=date(2026, 1, 5)))
    transport = FakeStorefront(world, reject_event="Order Completed")

    # when
    with pytest.raises(Exception, match="rejected"):
        simulation_run(merchant=merchant, config=config, transport=transport, progress=False)

    # then
    run = SimulationRun.objects.for_merchant(merchant).get()
    assert run.status == SimulationRun.Status.FAILED
    assert "Order Completed" in run.error


@pytest.mark.django_db(transaction=True)
def test_a_run_can_drive_a_running_server_over_http(live_server):
    # given
    merchant = MerchantFactory()
    issued = api_key_create(merchant=merchant, name="storefront")
    config = replace(REALISM_CONFIG, n_sessions=150, n_products=30, days=3)

    # when
    run = simulation_run(
        merchant=merchant, config=config, transport=HttpTransport(live_server.url, issued.raw_key), progress=False
    )

    # then
    assert run.status == SimulationRun.Status.COMPLETED
    assert Session.objects.for_merchant(merchant).count() == 150
    assert run.api_key is None
