"""Saving a power-calculator plan onto a draft experiment."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from revopt.tenancy.services import audit_log_write

from ..models import Experiment, ExperimentStatus
from .lifecycle import ExperimentTransitionError, ExperimentValidationError


@transaction.atomic
def experiment_plan_save(
    *,
    experiment: Experiment,
    planned_sample_size: int,
    minimum_detectable_effect: float,
    alpha: float,
    power: float,
    actor: AbstractBaseUser | None,
) -> Experiment:
    """Store the plan (units per variant for a relative MDE at alpha and power) on a draft.

    The analysis judges significance at the experiment's alpha, so the plan's alpha and power are
    saved with it: a plan computed at one alpha and analysed at another would promise the wrong power.
    """
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status != ExperimentStatus.DRAFT:
        raise ExperimentTransitionError(f"Only a draft's plan can change; this experiment is {locked.status}.")
    if planned_sample_size < 1:
        raise ExperimentValidationError("planned_sample_size", "Plan at least one unit per variant.")
    if not 0 < minimum_detectable_effect:
        raise ExperimentValidationError("minimum_detectable_effect", "The effect must be above zero.")
    if not 0.001 <= alpha <= 0.2:
        raise ExperimentValidationError("alpha", "Choose a significance level between 0.1% and 20%.")
    if not 0.5 <= power <= 0.99:
        raise ExperimentValidationError("power", "Choose a power between 50% and 99%.")
    previous = {
        "planned_sample_size": locked.planned_sample_size,
        "minimum_detectable_effect": locked.minimum_detectable_effect,
        "alpha": locked.alpha,
        "power": locked.power,
    }
    locked.planned_sample_size = planned_sample_size
    locked.minimum_detectable_effect = minimum_detectable_effect
    locked.alpha = alpha
    locked.power = power
    locked.save(update_fields=["planned_sample_size", "minimum_detectable_effect", "alpha", "power"])
    audit_log_write(
        merchant=locked.merchant,
        actor=actor,
        action="experiment.plan_save",
        target=locked,
        detail={
            "before": previous,
            "after": {
                "planned_sample_size": planned_sample_size,
                "minimum_detectable_effect": minimum_detectable_effect,
                "alpha": alpha,
                "power": power,
            },
        },
    )
    return locked
