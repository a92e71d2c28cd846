from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from freezegun import freeze_time

from experiments import tasks
from experiments.models import AnalysisSnapshot, ExperimentKind, ExperimentStatus
from experiments.results import Verdict
from tests.experiments.analysis_shop import Arm, shop_generate
from tests.factories.experiments import experiment_with_variants
from tests.factories.tenancy import MerchantFactory

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, tzinfo=UTC)


def test_the_task_analyses_the_experiment_and_saves_one_snapshot_per_moment(merchant):
    # given
    experiment = experiment_with_variants(merchant=merchant, status=ExperimentStatus.RUNNING, started_at=START)
    shop_generate(experiment=experiment, arms={"control": Arm(50, 0.2), "variant-1": Arm(50, 0.2)}, start=START)
    as_of = (START + timedelta(days=7)).isoformat()

    # when: run, then retried with the same moment
    verdict = tasks.experiment_analyze_task.delay(experiment.pk, as_of).get()
    tasks.experiment_analyze_task.delay(experiment.pk, as_of).get()

    # then
    assert verdict == Verdict.NOT_ENOUGH_DATA
    snapshot = AnalysisSnapshot.objects.for_merchant(merchant).get(experiment=experiment)
    assert snapshot.computed_at == START + timedelta(days=7)
    assert snapshot.analysis["units_total"] == 100


def test_the_task_skips_a_deleted_experiment_and_refuses_a_naive_moment(merchant):
    # given
    experiment = experiment_with_variants(merchant=merchant, status=ExperimentStatus.RUNNING, started_at=START)

    # when / then
    assert tasks.experiment_analyze_task.delay(experiment.pk + 1000).get() is None
    with pytest.raises(ValueError, match="aware"):
        tasks.experiment_analyze_task.delay(experiment.pk, "2025-03-02T00:00:00").get()
    assert not AnalysisSnapshot.objects.exists()


@freeze_time("2025-03-08 04:30:00+00:00")
def test_the_daily_run_analyses_every_running_ab_test_and_bandit_of_active_merchants(merchant, other_merchant):
    # given
    running = [
        experiment_with_variants(merchant=merchant, status=ExperimentStatus.RUNNING, started_at=START),
        experiment_with_variants(
            merchant=other_merchant, status=ExperimentStatus.RUNNING, started_at=START, kind=ExperimentKind.BANDIT
        ),
    ]
    experiment_with_variants(merchant=merchant, status=ExperimentStatus.STOPPED, started_at=START)
    experiment_with_variants(merchant=merchant)  # draft
    experiment_with_variants(
        merchant=merchant, status=ExperimentStatus.RUNNING, started_at=START, kind=ExperimentKind.CONTEXTUAL_BANDIT
    )
    experiment_with_variants(
        merchant=MerchantFactory(is_active=False), status=ExperimentStatus.RUNNING, started_at=START
    )

    # when
    queued = tasks.experiments_analyze_running.delay().get()

    # then
    assert queued == 2
    snapshots = AnalysisSnapshot.objects.order_by("experiment_id")
    assert [snapshot.experiment_id for snapshot in snapshots] == [experiment.pk for experiment in running]
    assert {snapshot.computed_at for snapshot in snapshots} == {datetime(2025, 3, 8, 4, 30, tzinfo=UTC)}


def test_the_analysis_runs_daily_with_time_limits():
    # then
    schedule = settings.CELERY_BEAT_SCHEDULE["experiments-analyze-daily"]
    assert schedule["task"] == tasks.experiments_analyze_running.name
    assert (schedule["schedule"].hour, schedule["schedule"].minute) == ({4}, {30})
    limits = settings.CELERY_TASK_ANNOTATIONS[tasks.experiment_analyze_task.name]
    assert 0 < limits["soft_time_limit"] < limits["time_limit"]
    assert tasks.experiment_analyze_task.soft_time_limit == limits["soft_time_limit"]
