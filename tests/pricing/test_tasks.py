from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from pricing import elasticity
from pricing.models import DemandModelRun, ModelRunStatus, PriceProposal
from pricing.tasks import (
    demand_model_fit_task,
    price_proposals_generate_task,
    pricing_refresh_all,
    pricing_refresh_task,
)
from tests.factories.catalog import ProductFactory
from tests.factories.pricing import DemandModelRunFactory, ElasticityEstimateFactory
from tests.factories.tenancy import MerchantFactory

pytestmark = pytest.mark.django_db


def test_fit_task_fits_the_merchants_model(merchant):
    # given
    ProductFactory(merchant=merchant)

    # when
    run_id = demand_model_fit_task(merchant.pk)

    # then
    run = DemandModelRun.objects.get(pk=run_id)
    assert (run.merchant, run.status) == (merchant, ModelRunStatus.SUCCEEDED)


def test_tasks_of_an_inactive_or_deleted_merchant_do_nothing(db):
    # given
    inactive = MerchantFactory(is_active=False)

    # when / then
    assert demand_model_fit_task(inactive.pk) is None
    assert price_proposals_generate_task(inactive.pk) is None
    assert demand_model_fit_task(10**9) is None
    assert not DemandModelRun.objects.exists()


def test_proposals_task_proposes_from_the_run_in_service(merchant):
    # given
    run = DemandModelRunFactory(merchant=merchant)
    ElasticityEstimateFactory(merchant=merchant, run=run)

    # when
    counts = price_proposals_generate_task(merchant.pk)

    # then
    assert counts == {"created": 1, "superseded": 0, "auto_approved": 0}
    assert PriceProposal.objects.for_merchant(merchant).count() == 1


def test_refresh_proposes_from_the_previous_run_when_the_fit_fails(merchant, monkeypatch):
    # given a run in service and a fit that fails
    previous = DemandModelRunFactory(merchant=merchant, started_at=timezone.now() - timedelta(days=1))
    ElasticityEstimateFactory(merchant=merchant, run=previous)

    def broken_fit(*args, **kwargs):
        raise ValueError("singular matrix")

    monkeypatch.setattr(elasticity, "demand_fit", broken_fit)

    # when
    counts = pricing_refresh_task(merchant.pk)

    # then
    assert DemandModelRun.objects.for_merchant(merchant).filter(status=ModelRunStatus.FAILED).count() == 1
    assert counts["created"] == 1
    assert PriceProposal.objects.get().run == previous


def test_refresh_all_runs_for_active_merchants_with_products_only(merchant, other_merchant):
    # given products in the merchant's shop only, and an inactive shop with products
    ProductFactory(merchant=merchant)
    inactive = MerchantFactory(is_active=False)
    ProductFactory(merchant=inactive)

    # when (tasks run eagerly in tests)
    scheduled = pricing_refresh_all()

    # then
    assert scheduled == 1
    assert DemandModelRun.objects.for_merchant(merchant).count() == 1
    assert not DemandModelRun.objects.for_merchant(other_merchant).exists()
    assert not DemandModelRun.objects.for_merchant(inactive).exists()


def test_refresh_is_scheduled_nightly_with_time_limits():
    # given / when
    entry = settings.CELERY_BEAT_SCHEDULE["pricing-nightly"]

    # then
    assert entry["task"] == "pricing.tasks.pricing_refresh_all"
    assert settings.CELERY_TASK_ANNOTATIONS["pricing.tasks.pricing_refresh_task"]["time_limit"] > 0
