import pytest
from django.conf import settings

from recommendations import tasks
from recommendations.models import RecommenderVersion, VersionStatus
from recommendations.services.versions import recommender_version_create
from tests.factories.events import DataQualityReportFactory
from tests.factories.tenancy import MerchantFactory

pytestmark = pytest.mark.django_db


def test_the_task_trains_the_merchant_and_returns_the_version(merchant, merchant_manager):
    # given: no data-quality report yet, so the training ends quickly as failed
    # when
    version_pk = tasks.recommender_train_task.delay(
        merchant.pk, trigger="admin", created_by_id=merchant_manager.pk
    ).get()

    # then
    version = RecommenderVersion.objects.get(pk=version_pk)
    assert version.merchant == merchant and version.trigger == "admin" and version.created_by == merchant_manager
    assert version.status == VersionStatus.FAILED and "data-quality gate closed" in version.status_reason


def test_the_task_skips_a_merchant_whose_training_is_still_running(merchant):
    # given
    running = recommender_version_create(merchant=merchant, trigger="schedule", params={})

    # when
    result = tasks.recommender_train_task.delay(merchant.pk).get()

    # then
    assert result is None
    assert list(RecommenderVersion.objects.for_merchant(merchant)) == [running]


def test_train_all_queues_one_training_per_active_merchant(merchant, other_merchant):
    # given
    MerchantFactory(is_active=False)
    DataQualityReportFactory(merchant=merchant, passed=True)

    # when
    queued = tasks.recommender_train_all.delay().get()

    # then
    assert queued == 2
    trained = set(RecommenderVersion.objects.values_list("merchant__slug", "trigger"))
    assert trained == {(merchant.slug, "schedule"), (other_merchant.slug, "schedule")}


def test_training_runs_nightly_with_time_limits():
    # then
    schedule = settings.CELERY_BEAT_SCHEDULE["recommenders-nightly"]
    assert schedule["task"] == "recommendations.tasks.recommender_train_all"
    assert tasks.recommender_train_all.name == schedule["task"]
    limits = settings.CELERY_TASK_ANNOTATIONS[tasks.recommender_train_task.name]
    assert 0 < limits["soft_time_limit"] < limits["time_limit"] == settings.REVOPT["RECOMMENDER_TRAIN_TIME_LIMIT"]
    assert tasks.recommender_train_task.soft_time_limit == limits["soft_time_limit"]
    assert tasks.recommender_train_task.time_limit == limits["time_limit"]
