from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from pricing import elasticity
from pricing.models import DemandModelRun, ModelRunStatus, PriceProposal
from tests.factories.catalog import ProductFactory
from tests.factories.pricing import DemandModelRunFactory, ElasticityEstimateFactory

pytestmark = pytest.mark.django_db


def test_command_fits_then_proposes(merchant):
    # given a shop without history
    ProductFactory(merchant=merchant)
    out = StringIO()

    # when
    call_command("pricing_refresh", "--merchant", merchant.slug, "--no-progress", stdout=out)

    # then
    run = DemandModelRun.objects.for_merchant(merchant).get()
    assert run.status == ModelRunStatus.SUCCEEDED
    assert f"demand fit #{run.pk}: 0 products" in out.getvalue()
    assert "proposals: 0 created" in out.getvalue()
    assert "skipped (no elasticity estimate): 1" in out.getvalue()


def test_command_with_skip_fit_proposes_from_the_run_in_service(merchant):
    # given
    run = DemandModelRunFactory(merchant=merchant)
    ElasticityEstimateFactory(merchant=merchant, run=run)
    out = StringIO()

    # when
    call_command(
        "pricing_refresh", "--merchant", merchant.slug, "--skip-fit", "--seed", "3", "--no-progress", stdout=out
    )

    # then
    assert DemandModelRun.objects.for_merchant(merchant).count() == 1
    assert PriceProposal.objects.for_merchant(merchant).count() == 1
    assert "proposals: 1 created" in out.getvalue()


def test_command_refuses_an_unknown_merchant(db):
    # given / when / then
    with pytest.raises(CommandError, match="no merchant"):
        call_command("pricing_refresh", "--merchant", "nobody", "--no-progress")


def test_command_reports_a_failed_fit(merchant, monkeypatch):
    # given
    def broken_fit(*args, **kwargs):
        raise ValueError("singular matrix")

    monkeypatch.setattr(elasticity, "demand_fit", broken_fit)

    # when / then
    with pytest.raises(CommandError, match="singular matrix"):
        call_command("pricing_refresh", "--merchant", merchant.slug, "--no-progress")
    assert DemandModelRun.objects.for_merchant(merchant).get().status == ModelRunStatus.FAILED
