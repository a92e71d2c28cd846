from datetime import timedelta

import pytest
from django.utils import timezone

from pricing.models import ModelRunStatus
from pricing.selectors.model import (
    NEUTRAL_WEEK,
    day_of_week_factors,
    demand_run_in_service,
    estimates_in_service,
    product_elasticity_from,
)
from tests.factories.pricing import DemandModelRunFactory, ElasticityEstimateFactory

pytestmark = pytest.mark.django_db


def test_run_in_service_is_the_latest_succeeded_one(merchant, other_merchant):
    # given an older succeeded run, a newer failed and a newer running one, and another merchant's newest
    now = timezone.now()
    succeeded = DemandModelRunFactory(merchant=merchant, started_at=now - timedelta(days=2))
    DemandModelRunFactory(merchant=merchant, started_at=now - timedelta(days=1), status=ModelRunStatus.FAILED)
    DemandModelRunFactory(merchant=merchant, started_at=now, status=ModelRunStatus.RUNNING)
    DemandModelRunFactory(merchant=other_merchant, started_at=now)

    # when / then
    assert demand_run_in_service(merchant=merchant) == succeeded


def test_estimates_in_service_come_from_the_run_in_service_only(merchant):
    # given
    old = DemandModelRunFactory(merchant=merchant, started_at=timezone.now() - timedelta(days=2))
    current = DemandModelRunFactory(merchant=merchant, started_at=timezone.now() - timedelta(days=1))
    stale = ElasticityEstimateFactory(merchant=merchant, run=old)
    first = ElasticityEstimateFactory(merchant=merchant, run=current)
    second = ElasticityEstimateFactory(merchant=merchant, run=current)

    # when
    everything = estimates_in_service(merchant=merchant)
    one = estimates_in_service(merchant=merchant, product_ids=[second.product_id, stale.product_id])

    # then
    assert everything == {first.product_id: first, second.product_id: second}
    assert one == {second.product_id: second}


def test_no_run_means_no_estimates(merchant):
    # given / when / then
    assert estimates_in_service(merchant=merchant) == {}
    assert day_of_week_factors(None) == NEUTRAL_WEEK


def test_estimate_row_becomes_the_models_dataclass(merchant):
    # given
    estimate = ElasticityEstimateFactory(merchant=merchant, log_base_se=0.12, category=None)

    # when
    product_elasticity = product_elasticity_from(estimate)

    # then
    assert product_elasticity.product_id == estimate.product_id
    assert product_elasticity.category_id == -1
    assert (product_elasticity.elasticity, product_elasticity.sd) == (-1.8, 0.2)
    assert (product_elasticity.lower, product_elasticity.upper) == (-2.2, -1.4)
    assert product_elasticity.reference_price == 25.0
    assert product_elasticity.log_base_se == 0.12


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({"day_of_week": [0.9, 1.0, 1.0, 1.0, 1.1, 1.2, 0.8]}, (0.9, 1.0, 1.0, 1.0, 1.1, 1.2, 0.8)),
        ({"day_of_week": [1.0, 2.0]}, NEUTRAL_WEEK),
        ({}, NEUTRAL_WEEK),
    ],
)
def test_day_of_week_factors_from_the_run_summary(merchant, summary, expected):
    # given
    run = DemandModelRunFactory(merchant=merchant, summary=summary)

    # when / then
    assert day_of_week_factors(run) == expected
