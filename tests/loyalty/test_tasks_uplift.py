import pytest

from loyalty.models import RunStatus, UpliftModel
from loyalty.tasks import uplift_model_train_all, uplift_model_train_task
from tests.factories.funnel import OfferDecisionFactory
from tests.factories.tenancy import MerchantFactory
from tests.loyalty.test_services_uplift import randomized_decisions

pytestmark = pytest.mark.django_db


def test_the_task_trains_the_merchants_uplift_model(merchant):
    # given
    randomized_decisions(merchant, count=320)

    # when
    run_id = uplift_model_train_task(merchant.pk)

    # then
    run = UpliftModel.objects.get(pk=run_id)
    assert (run.merchant, run.status, run.decisions) == (merchant, RunStatus.SUCCEEDED, 320)


def test_too_little_randomized_data_is_logged_not_raised(merchant):
    # given
    OfferDecisionFactory(merchant=merchant, randomized=True)

    # when
    result = uplift_model_train_task(merchant.pk)

    # then
    assert result is None
    assert UpliftModel.objects.for_merchant(merchant).get().status == RunStatus.FAILED


def test_the_nightly_fan_out_covers_active_merchants_withrandomized_decisions(merchant, other_merchant):
    # given
    OfferDecisionFactory(merchant=merchant, randomized=True)
    OfferDecisionFactory(merchant=other_merchant, randomized=False)
    inactive = MerchantFactory(is_active=False)
    OfferDecisionFactory(merchant=inactive, randomized=True)

    # when
    dispatched = uplift_model_train_all()

    # then
    assert dispatched == 1
    assert list(UpliftModel.objects.values_list("merchant_id", flat=True)) == [merchant.pk]
    assert uplift_model_train_task(inactive.pk) is None
