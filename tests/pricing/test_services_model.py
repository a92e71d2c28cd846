from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import pytest

from events.models import Event, Order, OrderLine, Session
from pricing import elasticity
from pricing.models import DemandModelRun, ElasticityEstimate, ModelRunStatus
from pricing.selectors.model import demand_run_in_service, estimates_in_service
from pricing.services import model as model_services
from pricing.services.model import demand_model_fit
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import CategoryFactory, ProductFactory
from tests.factories.events import CustomerFactory
from tests.factories.pricing import DemandModelRunFactory, ElasticityEstimateFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
PRICE_STEPS = np.array([0.8, 0.9, 1.0, 1.1, 1.2])


def shop_with_known_demand(merchant, *, products: int, days: int, seed: int = 7) -> dict[int, float]:
    """Views, orders and sessions in the database for `products` products over the `days` days before NOW,
    at prices moving weekly at random, with Poisson demand of known constant elasticity per product.
    Returns product id → true elasticity."""
    rng = np.random.default_rng(seed)
    customer = CustomerFactory(merchant=merchant)
    categories = [CategoryFactory(merchant=merchant), CategoryFactory(merchant=merchant)]
    truth: dict[int, float] = {}
    events, orders, lines_by_order, sessions = [], [], [], []
    first_day = NOW.date() - timedelta(days=days)
    traffic = rng.integers(15, 25, size=days)
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        for number in range(int(traffic[offset])):
            sessions.append(
                Session(
                    merchant=merchant,
                    external_id=f"s-{offset}-{number}",
                    customer=customer,
                    started_at=datetime.combine(day, time(10), tzinfo=UTC),
                )
            )
    for index in range(products):
        category = categories[index % 2]
        reference = Decimal(str(round(float(rng.uniform(10, 60)), 2)))
        product = ProductFactory(merchant=merchant, category=category, price=reference)
        true_elasticity = float(rng.normal(-1.2 if index % 2 else -2.2, 0.25))
        truth[product.pk] = true_elasticity
        base_per_session = float(rng.uniform(0.25, 0.5))
        multiplier = 1.0
        for offset in range(days):
            if offset % 7 == 0:
                multiplier = float(rng.choice(PRICE_STEPS))
            day = first_day + timedelta(days=offset)
            price = (reference * Decimal(str(multiplier))).quantize(Decimal("0.01"))
            at = datetime.combine(day, time(12), tzinfo=UTC)
            events.append(
                Event(
                    merchant=merchant,
                    message_id=f"v-{product.pk}-{offset}",
                    name="Product Viewed",
                    customer=customer,
                    product=product,
                    timestamp=at,
                    received_at=at,
                    price=price,
                    properties={"sku": product.sku, "price": float(price)},
                )
            )
            mean_units = traffic[offset] * base_per_session * multiplier**true_elasticity
            units = int(rng.poisson(mean_units))
            if units == 0:
                continue
            order = Order(
                merchant=merchant,
                external_id=f"o-{product.pk}-{offset}",
                message_id=f"om-{product.pk}-{offset}",
                customer=customer,
                placed_at=at,
                subtotal=price * units,
                total=price * units,
            )
            orders.append(order)
            lines_by_order.append(
                OrderLine(merchant=merchant, product=product, sku=product.sku, quantity=units, unit_price=price)
            )
    Session.objects.bulk_create(sessions)
    Event.objects.bulk_create(events)
    Order.objects.bulk_create(orders)
    for order, line in zip(orders, lines_by_order, strict=True):
        line.order = order
    OrderLine.objects.bulk_create(lines_by_order)
    return truth


def test_fit_recovers_known_elasticities_with_covering_intervals(merchant):
    # given 20 products over 120 days with known elasticities (around -1.2 and -2.2 by category)
    truth = shop_with_known_demand(merchant, products=20, days=120)
    shares: list[float] = []

    # when
    run = demand_model_fit(merchant=merchant, now=NOW, progress=shares.append)

    # then the run is in service with one estimate per product, close to the truth, intervals covering it
    assert run.status == ModelRunStatus.SUCCEEDED
    assert run.products_fitted == 20
    assert run.product_days == 20 * 120
    assert run.history_end == date(2026, 11, 1)
    assert run.progress == 1.0
    assert shares[0] == 0.0 and shares[-1] == 1.0 and shares == sorted(shares)
    assert demand_run_in_service(merchant=merchant) == run
    estimates = estimates_in_service(merchant=merchant)
    assert set(estimates) == set(truth)
    errors = np.array([estimates[pk].elasticity - truth[pk] for pk in truth])
    covered = sum(estimates[pk].lower <= truth[pk] <= estimates[pk].upper for pk in truth)
    assert np.abs(errors).mean() < 0.3
    assert abs(errors.mean()) < 0.15
    assert covered >= 17
    assert len(run.summary["day_of_week"]) == 7
    assert len(run.summary["categories"]) == 2
    entry = AuditLogEntry.objects.get(action="pricing.demand_fit", target_id=str(run.pk))
    assert entry.detail["products_fitted"] == 20


def test_fit_with_no_history_succeeds_with_no_estimates(merchant):
    # given a shop with a product and no sales or views
    ProductFactory(merchant=merchant)

    # when
    run = demand_model_fit(merchant=merchant, now=NOW)

    # then
    assert run.status == ModelRunStatus.SUCCEEDED
    assert run.products_fitted == 0
    assert not ElasticityEstimate.objects.filter(run=run).exists()


def test_failing_fit_is_marked_failed_and_leaves_the_previous_run_in_service(merchant, monkeypatch):
    # given a run in service
    previous = DemandModelRunFactory(merchant=merchant, started_at=NOW - timedelta(days=1))
    ElasticityEstimateFactory(merchant=merchant, run=previous)

    def broken_fit(*args, **kwargs):
        raise FloatingPointError("the fit diverged")

    monkeypatch.setattr(elasticity, "demand_fit", broken_fit)

    # when
    with pytest.raises(FloatingPointError):
        demand_model_fit(merchant=merchant, now=NOW)

    # then
    failed = DemandModelRun.objects.get(merchant=merchant, status=ModelRunStatus.FAILED)
    assert "the fit diverged" in failed.error
    assert failed.finished_at is not None
    assert not ElasticityEstimate.objects.filter(run=failed).exists()
    assert demand_run_in_service(merchant=merchant) == previous
    assert list(estimates_in_service(merchant=merchant)) == [previous.estimates.get().product_id]
    assert AuditLogEntry.objects.filter(action="pricing.demand_fit", target_id=str(failed.pk)).exists()


def fake_fit(products) -> elasticity.DemandFit:
    estimates = {
        product.pk: elasticity.ProductElasticity(
            product_id=product.pk,
            category_id=product.category_id,
            elasticity=-1.5,
            sd=0.2,
            lower=-1.9,
            upper=-1.1,
            own_estimate=None,
            own_se=None,
            pooling_weight=1.0,
            base_units_per_day=2.0,
            reference_price=25.0,
            days_observed=10,
            units_observed=20.0,
            price_points=1,
        )
        for product in products
    }
    return elasticity.DemandFit(
        products=estimates,
        categories={},
        day_of_week=(1.0,) * 7,
        competitor_coefficient=0.0,
        competitor_se=0.0,
        promotion_coefficient=0.0,
        promotion_se=0.0,
    )


def test_failure_after_writing_estimates_leaves_no_half_written_run(merchant, monkeypatch):
    # given a fit whose estimates are written, then the audit row of its success fails in the same transaction
    previous = DemandModelRunFactory(merchant=merchant, started_at=NOW - timedelta(days=1))
    products = ProductFactory.create_batch(2, merchant=merchant)
    monkeypatch.setattr(elasticity, "demand_fit", lambda panel, **kwargs: fake_fit(products))
    real_audit_log_write = model_services.audit_log_write

    def audit_failing_on_success(**kwargs):
        if kwargs["detail"]["status"] == ModelRunStatus.SUCCEEDED:
            raise RuntimeError("audit log unavailable")
        return real_audit_log_write(**kwargs)

    monkeypatch.setattr(model_services, "audit_log_write", audit_failing_on_success)

    # when
    with pytest.raises(RuntimeError):
        demand_model_fit(merchant=merchant, now=NOW)

    # then the estimates went with the transaction and the run is failed, not succeeded
    failed = DemandModelRun.objects.get(merchant=merchant, status=ModelRunStatus.FAILED)
    assert "audit log unavailable" in failed.error
    assert not ElasticityEstimate.objects.filter(run=failed).exists()
    assert demand_run_in_service(merchant=merchant) == previous


def test_fit_stores_every_field_of_the_estimates(merchant, monkeypatch):
    # given
    product = ProductFactory(merchant=merchant)
    monkeypatch.setattr(elasticity, "demand_fit", lambda panel, **kwargs: fake_fit([product]))

    # when
    run = demand_model_fit(merchant=merchant, now=NOW)

    # then
    stored = ElasticityEstimate.objects.get(run=run)
    assert (stored.product_id, stored.category_id, stored.elasticity, stored.lower, stored.upper) == (
        product.pk,
        product.category_id,
        -1.5,
        -1.9,
        -1.1,
    )
    assert stored.reference_price == Decimal("25.00")
    assert stored.own_elasticity is None
    assert run.summary["day_of_week"] == [1.0] * 7


def test_fit_only_reads_the_merchants_own_history(merchant, other_merchant):
    # given history only in the other merchant's shop
    shop_with_known_demand(other_merchant, products=2, days=30)

    # when
    run = demand_model_fit(merchant=merchant, now=NOW)

    # then
    assert run.products_fitted == 0
    assert demand_run_in_service(merchant=other_merchant) is None


def test_a_second_fit_is_refused_while_one_is_under_way_but_not_behind_a_stalled_one(merchant):
    # given a fit under way
    from pricing.services.model import DemandFitRunning

    now = datetime.now(UTC)
    running = DemandModelRun.objects.create(
        merchant=merchant, status=ModelRunStatus.RUNNING, started_at=now - timedelta(minutes=5)
    )

    # when / then a second one would race it to be in service
    with pytest.raises(DemandFitRunning):
        demand_model_fit(merchant=merchant, now=now)
    assert DemandModelRun.objects.for_merchant(merchant).count() == 1

    # when the first lost its worker long ago
    DemandModelRun.objects.filter(pk=running.pk).update(started_at=now - timedelta(hours=3))

    # then it no longer blocks a fit
    run = demand_model_fit(merchant=merchant, now=now)
    assert run.pk != running.pk
