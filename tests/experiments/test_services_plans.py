import pytest

from experiments.models import ExperimentStatus
from experiments.services.lifecycle import ExperimentTransitionError, ExperimentValidationError
from experiments.services.plans import experiment_plan_save
from revopt.tenancy.models import AuditLogEntry
from tests.factories.experiments import experiment_with_variants

pytestmark = pytest.mark.django_db


def test_a_plan_is_saved_on_a_draft_with_its_alpha_and_power_and_audited(merchant, merchant_manager):
    # given
    experiment = experiment_with_variants(merchant=merchant, planned_sample_size=100)

    # when
    experiment_plan_save(
        experiment=experiment,
        planned_sample_size=31_234,
        minimum_detectable_effect=0.1,
        alpha=0.01,
        power=0.9,
        actor=merchant_manager,
    )

    # then
    experiment.refresh_from_db()
    assert (experiment.planned_sample_size, experiment.minimum_detectable_effect) == (31_234, 0.1)
    assert (experiment.alpha, experiment.power) == (0.01, 0.9)
    entry = AuditLogEntry.objects.get(action="experiment.plan_save")
    assert entry.actor == merchant_manager and entry.target_id == str(experiment.pk)
    assert entry.detail["before"]["planned_sample_size"] == 100
    assert entry.detail["after"]["planned_sample_size"] == 31_234


def test_a_running_experiments_plan_cannot_change(merchant):
    # given
    experiment = experiment_with_variants(merchant=merchant, status=ExperimentStatus.RUNNING, planned_sample_size=100)

    # when / then
    with pytest.raises(ExperimentTransitionError):
        experiment_plan_save(
            experiment=experiment,
            planned_sample_size=5,
            minimum_detectable_effect=0.1,
            alpha=0.05,
            power=0.8,
            actor=None,
        )
    experiment.refresh_from_db()
    assert experiment.planned_sample_size == 100
    assert not AuditLogEntry.objects.filter(action="experiment.plan_save").exists()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"planned_sample_size": 0}, "planned_sample_size"),
        ({"minimum_detectable_effect": 0.0}, "minimum_detectable_effect"),
        ({"alpha": 0.5}, "alpha"),
        ({"power": 0.3}, "power"),
    ],
)
def test_a_plan_out_of_range_names_its_field(merchant, changes, field):
    # given
    experiment = experiment_with_variants(merchant=merchant)
    plan = {"planned_sample_size": 1000, "minimum_detectable_effect": 0.05, "alpha": 0.05, "power": 0.8}
    plan.update(changes)

    # when / then
    with pytest.raises(ExperimentValidationError) as refused:
        experiment_plan_save(experiment=experiment, actor=None, **plan)
    assert refused.value.field == field
    experiment.refresh_from_db()
    assert experiment.planned_sample_size is None
