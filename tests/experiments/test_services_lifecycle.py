from datetime import UTC, datetime

import pytest

from experiments.metrics import DEFAULT_GUARDRAILS
from experiments.models import AllocationChange, AllocationSource, Experiment, ExperimentStatus, Variant
from experiments.services.lifecycle import (
    ExperimentTransitionError,
    ExperimentValidationError,
    VariantSpec,
    experiment_create,
    experiment_roll_out,
    experiment_start,
    experiment_stop,
    experiment_weights_update,
)
from revopt.tenancy.models import AuditLogEntry
from tests.factories.experiments import LayerFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TWO = (
    VariantSpec(key="popularity", name="Popularity", weight=0.5, config={"strategy": "popularity"}),
    VariantSpec(key="hybrid", name="Hybrid", weight=0.5, config={"strategy": "hybrid"}),
)


def _create(merchant, **overrides):
    arguments = {"merchant": merchant, "key": "recs-test", "name": "Recommendations test", "variants": TWO}
    return experiment_create(**{**arguments, **overrides})


def _audit(merchant):
    entries = AuditLogEntry.objects.for_merchant(merchant).filter(action__startswith="experiment.").order_by("pk")
    return list(entries.values_list("action", "target_id", "actor"))


# --- create -----------------------------------------------------------------------------------------


def test_create_makes_a_draft_with_its_variants_in_order(merchant, merchant_manager):
    # when
    experiment = _create(
        merchant,
        hypothesis="Personal lists sell more.",
        surface="recommendations",
        secondary_metrics=["conversion", "aov"],
        targeting={"devices": ["mobile"], "segments": [" Champions "]},
        actor=merchant_manager,
        alpha=0.01,
        pre_period_days=21,
    )

    # then
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT
    assert experiment.surface == "recommendations"
    assert experiment.alpha == 0.01
    assert experiment.pre_period_days == 21
    assert experiment.created_by == merchant_manager
    assert experiment.guardrails == list(DEFAULT_GUARDRAILS)
    assert experiment.targeting == {"devices": ["mobile"], "visitor": "any", "segments": ["Champions"]}
    variants = list(experiment.variants.values_list("index", "key", "weight", "config"))
    assert variants == [(0, "popularity", 0.5, {"strategy": "popularity"}), (1, "hybrid", 0.5, {"strategy": "hybrid"})]
    assert _audit(merchant) == [("experiment.create", str(experiment.pk), merchant_manager.pk)]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"variants": TWO[:1]}, "variants"),
        ({"variants": (TWO[0], VariantSpec("b", "B", 0.6))}, "variants"),
        ({"variants": (VariantSpec("a", "A", 1.2), VariantSpec("b", "B", -0.2))}, "variants"),
        ({"variants": (TWO[0], VariantSpec("popularity", "Again", 0.5))}, "variants"),
        ({"variants": (TWO[0], VariantSpec("has space", "B", 0.5))}, "variants[1].key"),
        ({"variants": (TWO[0], VariantSpec("b", "B", 0.5, config=["not", "a", "dict"]))}, "variants[1].config"),
        ({"key": "Not a slug!"}, "key"),
        ({"name": ""}, "name"),
        ({"primary_metric": "happiness"}, "primary_metric"),
        ({"secondary_metrics": ["conversion", "nope"]}, "secondary_metrics"),
        ({"guardrails": [{"metric": "refund_rate"}]}, "guardrails[0]"),
        ({"guardrails": [{"metric": "nope", "max_relative_change": 0.1}]}, "guardrails[0].metric"),
        ({"guardrails": [{"metric": "refund_rate", "max_relative_change": -1}]}, "guardrails[0].max_relative_change"),
        ({"targeting": {"devices": ["fridge"]}}, "targeting.devices"),
        ({"targeting": {"visitor": "sometimes"}}, "targeting.visitor"),
        ({"targeting": {"country": "FR"}}, "targeting"),
        ({"surface": "billboard"}, "surface"),
        ({"kind": "coin_flip"}, "kind"),
        ({"alpha": 0.5}, "alpha"),
        ({"winsorize_percentile": 0.1}, "winsorize_percentile"),
        ({"reward_metric": "nope"}, "reward_metric"),
        ({"colour": "blue"}, "colour"),
        ({"layer_start": 0.6, "layer_end": 0.4}, "layer_end"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(merchant, overrides, field):
    # when / then
    with pytest.raises(ExperimentValidationError) as error:
        _create(merchant, **overrides)
    assert error.value.field == field
    assert not Experiment.objects.for_merchant(merchant).exists()


def test_a_key_is_unique_per_merchant_only(merchant, other_merchant):
    # given
    _create(merchant)

    # when / then
    with pytest.raises(ExperimentValidationError) as error:
        _create(merchant)
    assert error.value.field == "key"
    assert _create(other_merchant).key == "recs-test"


def test_another_merchants_layer_is_refused(merchant, other_merchant):
    # when / then
    with pytest.raises(ExperimentValidationError) as error:
        _create(merchant, layer=LayerFactory(merchant=other_merchant))
    assert error.value.field == "layer"


def test_a_layer_slice_held_by_a_running_experiment_cannot_be_taken(merchant):
    # given a running experiment owning [0, 0.5) of the layer
    layer = LayerFactory(merchant=merchant, key="checkout")
    first = _create(merchant, key="first", layer=layer, layer_start=0.0, layer_end=0.5)
    experiment_start(experiment=first, actor=None, now=NOW)

    # when / then: an overlapping slice is refused, the rest of the layer is free
    with pytest.raises(ExperimentValidationError) as error:
        _create(merchant, key="second", layer=layer, layer_start=0.4, layer_end=1.0)
    assert error.value.field == "layer_start"
    assert _create(merchant, key="third", layer=layer, layer_start=0.5, layer_end=1.0).layer_end == 1.0


def test_two_drafts_may_share_a_slice_but_only_one_can_run(merchant):
    # given
    layer = LayerFactory(merchant=merchant)
    first = _create(merchant, key="first", layer=layer, layer_end=0.6)
    second = _create(merchant, key="second", layer=layer, layer_start=0.5)
    experiment_start(experiment=first, actor=None, now=NOW)

    # when / then
    with pytest.raises(ExperimentValidationError):
        experiment_start(experiment=second, actor=None, now=NOW)
    second.refresh_from_db()
    assert second.status == ExperimentStatus.DRAFT
    experiment_stop(experiment=first, actor=None, now=LATER)
    assert experiment_start(experiment=second, actor=None, now=LATER).status == ExperimentStatus.RUNNING


# --- transitions ------------------------------------------------------------------------------------


def test_start_runs_the_experiment_and_logs_the_starting_weights(merchant, merchant_manager):
    # given
    experiment = _create(merchant)

    # when
    returned = experiment_start(experiment=experiment, actor=merchant_manager, now=NOW)

    # then
    assert returned is experiment
    assert experiment.status == ExperimentStatus.RUNNING
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING
    assert experiment.started_at == NOW
    change = AllocationChange.objects.for_merchant(merchant).get(experiment=experiment)
    assert change.source == AllocationSource.START
    assert change.weights == {"popularity": 0.5, "hybrid": 0.5}
    assert change.effective_at == NOW
    assert change.actor == merchant_manager
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="experiment.start")
    assert entry.detail == {"key": "recs-test", "from": "draft", "to": "running"}
    assert entry.actor == merchant_manager


def test_stop_then_roll_out_the_winner(merchant, merchant_manager):
    # given
    experiment = _create(merchant)
    experiment_start(experiment=experiment, actor=merchant_manager, now=NOW)
    winner = Variant.objects.get(experiment=experiment, key="hybrid")

    # when
    experiment_stop(experiment=experiment, actor=merchant_manager, now=LATER)
    experiment_roll_out(experiment=experiment, variant=winner, actor=merchant_manager, now=LATER)

    # then
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.ROLLED_OUT
    assert experiment.stopped_at == LATER
    assert experiment.rolled_out_at == LATER
    assert experiment.rolled_out_variant == winner
    rollout = AllocationChange.objects.for_merchant(merchant).get(
        experiment=experiment, source=AllocationSource.ROLLOUT
    )
    assert rollout.weights == {"popularity": 0.0, "hybrid": 1.0}
    assert dict(experiment.variants.values_list("key", "weight")) == {"popularity": 0.0, "hybrid": 1.0}
    actions = [action for action, _, _ in _audit(merchant)]
    assert actions == ["experiment.create", "experiment.start", "experiment.stop", "experiment.roll_out"]
    assert AuditLogEntry.objects.for_merchant(merchant).get(action="experiment.roll_out").detail["variant"] == "hybrid"


def test_a_running_experiment_can_roll_out_directly(merchant):
    # given
    experiment = _create(merchant)
    experiment_start(experiment=experiment, actor=None, now=NOW)

    # when
    experiment_roll_out(experiment=experiment, variant=experiment.variants.get(index=0), actor=None, now=LATER)

    # then: rolling out also ends the test
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.ROLLED_OUT
    assert experiment.stopped_at == LATER


@pytest.mark.parametrize(
    ("steps", "transition"),
    [
        ([], "stop"),
        ([], "roll_out"),
        (["start"], "start"),
        (["start", "stop"], "start"),
        (["start", "stop"], "stop"),
        (["start", "roll_out"], "roll_out"),
        (["start", "roll_out"], "stop"),
        (["start", "stop"], "weights"),
    ],
)
def test_invalid_transitions_raise_and_change_nothing(merchant, steps, transition):
    # given
    experiment = _create(merchant)
    actions = {
        "start": lambda: experiment_start(experiment=experiment, actor=None, now=NOW),
        "stop": lambda: experiment_stop(experiment=experiment, actor=None, now=NOW),
        "roll_out": lambda: experiment_roll_out(
            experiment=experiment, variant=experiment.variants.get(index=1), actor=None, now=NOW
        ),
        "weights": lambda: experiment_weights_update(experiment=experiment, weights={"popularity": 1, "hybrid": 0}),
    }
    for step in steps:
        actions[step]()
    status_before = Experiment.objects.get(pk=experiment.pk).status
    audit_before = len(_audit(merchant))

    # when / then
    with pytest.raises(ExperimentTransitionError) as error:
        actions[transition]()
    assert error.value.field == "status"
    assert Experiment.objects.get(pk=experiment.pk).status == status_before
    assert len(_audit(merchant)) == audit_before


def test_rolling_out_another_experiments_variant_is_refused(merchant):
    # given
    experiment = _create(merchant)
    other = _create(merchant, key="other")
    experiment_start(experiment=experiment, actor=None, now=NOW)

    # when / then
    with pytest.raises(ExperimentValidationError) as error:
        experiment_roll_out(experiment=experiment, variant=other.variants.get(index=1), actor=None)
    assert error.value.field == "variant"


def test_transitions_use_the_rows_status_not_a_stale_copy(merchant):
    # given two copies of one experiment; one of them starts it
    experiment = _create(merchant)
    stale = Experiment.objects.get(pk=experiment.pk)
    experiment_start(experiment=experiment, actor=None, now=NOW)

    # when / then: the stale copy still says draft, the locked row does not
    with pytest.raises(ExperimentTransitionError):
        experiment_start(experiment=stale, actor=None, now=NOW)
    assert AllocationChange.objects.for_merchant(merchant).count() == 1


# --- weights ----------------------------------------------------------------------------------------


def test_weights_update_changes_the_variants_and_logs_the_change(merchant, merchant_manager):
    # given
    experiment = _create(merchant)
    experiment_start(experiment=experiment, actor=None, now=NOW)

    # when
    change = experiment_weights_update(
        experiment=experiment, weights={"hybrid": 0.9, "popularity": 0.1}, actor=merchant_manager, now=LATER
    )

    # then
    assert change.source == AllocationSource.MANUAL
    assert change.weights == {"popularity": 0.1, "hybrid": 0.9}
    assert change.effective_at == LATER
    assert dict(experiment.variants.values_list("key", "weight")) == {"popularity": 0.1, "hybrid": 0.9}
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="experiment.weights_update")
    assert entry.detail["from"] == {"popularity": 0.5, "hybrid": 0.5}
    assert entry.detail["to"] == {"popularity": 0.1, "hybrid": 0.9}
    assert entry.actor == merchant_manager


def test_a_bandit_reallocation_keeps_its_replay_detail(merchant):
    # given
    experiment = _create(merchant, kind="bandit")
    experiment_start(experiment=experiment, actor=None, now=NOW)
    detail = {"arms": {"popularity": {"alpha": 3, "beta": 40}, "hybrid": {"alpha": 9, "beta": 34}}, "seed": 7}

    # when
    change = experiment_weights_update(
        experiment=experiment, weights={"popularity": 0.2, "hybrid": 0.8}, source=AllocationSource.BANDIT, detail=detail
    )

    # then
    change.refresh_from_db()
    assert change.source == "bandit"
    assert change.detail == detail
    assert change.actor is None


@pytest.mark.parametrize(
    "weights",
    [
        {"popularity": 0.5},
        {"popularity": 0.5, "hybrid": 0.5, "third": 0.0},
        {"popularity": 0.7, "hybrid": 0.7},
        {"popularity": 1.5, "hybrid": -0.5},
        {"popularity": "half", "hybrid": 0.5},
    ],
)
def test_bad_weights_are_refused(merchant, weights):
    # given
    experiment = _create(merchant)

    # when / then
    with pytest.raises(ExperimentValidationError) as error:
        experiment_weights_update(experiment=experiment, weights=weights)
    assert error.value.field == "weights"
    assert dict(experiment.variants.values_list("key", "weight")) == {"popularity": 0.5, "hybrid": 0.5}
    assert not AllocationChange.objects.for_merchant(merchant).exists()


def test_weights_summing_to_one_within_a_thousandth_are_accepted(merchant):
    # given
    experiment = _create(merchant)

    # when
    change = experiment_weights_update(experiment=experiment, weights={"popularity": 0.3334, "hybrid": 0.6665})

    # then
    assert change.weights == {"popularity": 0.3334, "hybrid": 0.6665}
