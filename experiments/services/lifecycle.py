"""An experiment's life: created as a draft, started, stopped, its winner rolled out; weights changed by a
merchant or a bandit on the way. Every step is one transaction on the locked experiment row, writes an
audit entry, and makes this process's assignment path re-read the merchant's live experiments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from events.models import Device
from experiments.assignment import Visitor, ranges_overlap
from experiments.metrics import DEFAULT_GUARDRAILS, METRICS
from experiments.models import (
    AllocationChange,
    AllocationSource,
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    Layer,
    Surface,
    Variant,
)
from experiments.selectors.assignment import live_experiments_forget
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

WEIGHT_TOLERANCE = 0.001
MAX_VARIANTS = 20
MAX_SEGMENTS = 50
# Experiment fields a caller may set beside the named arguments (analysis, bucketing and bandit settings).
SETTINGS_FIELDS = frozenset(
    {
        "seed",
        "coverage",
        "alpha",
        "power",
        "minimum_detectable_effect",
        "planned_sample_size",
        "sequential",
        "cuped",
        "pre_period_days",
        "winsorize_percentile",
        "reward_metric",
        "arm_floor",
    }
)
# Fields whose values are other rows: checked by the services, not by `clean_fields` (it would query).
_RELATION_FIELDS = ["merchant", "layer", "created_by", "rolled_out_variant", "experiment"]


class ExperimentValidationError(ValueError):
    """A request the caller must fix; `field` names the argument (or form field) at fault."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ExperimentTransitionError(ExperimentValidationError):
    """The experiment's status does not allow this step (e.g. stopping a draft)."""

    def __init__(self, reason: str):
        super().__init__("status", reason)


@dataclass(frozen=True)
class VariantSpec:
    key: str
    name: str
    weight: float
    config: dict = field(default_factory=dict)


# --- validation ----------------------------------------------------------------------------------


def _first_error(error: ValidationError, prefix: str = "") -> ExperimentValidationError:
    if hasattr(error, "error_dict"):
        name, errors = next(iter(error.error_dict.items()))
        return ExperimentValidationError(f"{prefix}{name}", errors[0].messages[0])
    return ExperimentValidationError(prefix.rstrip(".") or "non_field_errors", error.messages[0])


def _checked_weights(weights: Sequence[object], field_name: str) -> list[float]:
    checked = []
    for weight in weights:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            raise ExperimentValidationError(field_name, "Weights are numbers.")
        if not 0.0 <= weight <= 1.0:
            raise ExperimentValidationError(field_name, "Each weight lies between 0 and 1.")
        checked.append(float(weight))
    if abs(sum(checked) - 1.0) > WEIGHT_TOLERANCE:
        raise ExperimentValidationError(field_name, f"Weights must add up to 1 (they add up to {sum(checked):g}).")
    return checked


def _checked_metric(key: object, field_name: str) -> str:
    if not isinstance(key, str) or key not in METRICS:
        raise ExperimentValidationError(field_name, f"Unknown metric {key!r}; choose one of {', '.join(METRICS)}.")
    return key


def _checked_guardrails(guardrails: Iterable[object]) -> list[dict]:
    checked = []
    for position, guardrail in enumerate(guardrails):
        name = f"guardrails[{position}]"
        if not isinstance(guardrail, Mapping) or set(guardrail) != {"metric", "max_relative_change"}:
            raise ExperimentValidationError(name, 'Each guardrail is {"metric": ..., "max_relative_change": ...}.')
        metric = _checked_metric(guardrail["metric"], f"{name}.metric")
        threshold = guardrail["max_relative_change"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 10:
            raise ExperimentValidationError(
                f"{name}.max_relative_change", "A relative change above 0 (0.10 is 10%), at most 10."
            )
        checked.append({"metric": metric, "max_relative_change": float(threshold)})
    if len({guardrail["metric"] for guardrail in checked}) != len(checked):
        raise ExperimentValidationError("guardrails", "One guardrail per metric.")
    return checked


def targeting_normalize(targeting: Mapping[str, object] | None) -> dict:
    """{"devices": [...], "visitor": "any"|"new"|"returning", "segments": [...]}: checked, with defaults."""
    targeting = dict(targeting or {})
    unknown = set(targeting) - {"devices", "visitor", "segments"}
    if unknown:
        raise ExperimentValidationError("targeting", f"Unknown targeting key(s): {', '.join(sorted(unknown))}.")
    devices = targeting.get("devices") or []
    if not isinstance(devices, (list, tuple)) or any(device not in Device.values for device in devices):
        raise ExperimentValidationError("targeting.devices", f"A list of: {', '.join(Device.values)}.")
    visitor = targeting.get("visitor") or Visitor.ANY
    if visitor not in {member.value for member in Visitor}:
        raise ExperimentValidationError("targeting.visitor", "One of: any, new, returning.")
    segments = targeting.get("segments") or []
    if (
        not isinstance(segments, (list, tuple))
        or len(segments) > MAX_SEGMENTS
        or any(not isinstance(segment, str) or not segment.strip() or len(segment) > 100 for segment in segments)
    ):
        raise ExperimentValidationError("targeting.segments", "A list of segment names.")
    return {
        "devices": sorted(set(devices)),
        "visitor": str(Visitor(visitor)),
        "segments": sorted({segment.strip() for segment in segments}),
    }


def _check_layer_free(*, experiment: Experiment) -> None:
    """No running experiment of the same layer may own any of this experiment's slice."""
    if experiment.layer_id is None:
        return
    others = (
        Experiment.objects.for_merchant(experiment.merchant_id)
        .filter(layer_id=experiment.layer_id, status=ExperimentStatus.RUNNING)
        .exclude(pk=experiment.pk)
        .values_list("key", "layer_start", "layer_end")
    )
    for key, start, end in others:
        if ranges_overlap((experiment.layer_start, experiment.layer_end), (start, end)):
            raise ExperimentValidationError(
                "layer_start",
                f"The layer's slice {start:g}-{end:g} belongs to the running experiment {key!r}.",
            )


def _check_pricing_experiment(
    *, kind: str, targeting: Mapping[str, object] | None, variants: Sequence[VariantSpec]
) -> None:
    """Pricing experiments randomise products, never shoppers: prices are the same for everyone."""
    # The pricing app owns its variant conventions ({"pricing": "engine"|"static"}, {"price_multiplier": x}).
    from pricing.selectors.experiments import PricingConfigError, pricing_config_check

    if kind != ExperimentKind.AB:
        raise ExperimentValidationError(
            "kind",
            "A pricing experiment is an A/B test: a bandit would move products between arms mid-test, and a "
            "contextual one would choose a price per shopper.",
        )
    checked = targeting_normalize(targeting)
    if checked["devices"] or checked["segments"] or checked["visitor"] != Visitor.ANY:
        raise ExperimentValidationError(
            "targeting", "A pricing experiment randomises products; prices are the same for every shopper."
        )
    for position, spec in enumerate(variants):
        try:
            pricing_config_check(spec.config)
        except PricingConfigError as error:
            raise ExperimentValidationError(f"variants[{position}].config.{error.field}", error.reason) from None


def _live_changed(merchant_id: int) -> None:
    # At once for this process, and again after commit in case a request re-read the old rows meanwhile.
    live_experiments_forget(merchant_id=merchant_id)
    transaction.on_commit(lambda: live_experiments_forget(merchant_id=merchant_id))


# --- create --------------------------------------------------------------------------------------


def experiment_create(
    *,
    merchant: Merchant,
    key: str,
    name: str,
    variants: Sequence[VariantSpec],
    surface: str = Surface.STOREFRONT,
    kind: str = ExperimentKind.AB,
    hypothesis: str = "",
    primary_metric: str = "revenue_per_user",
    secondary_metrics: Sequence[str] = (),
    guardrails: Sequence[Mapping[str, object]] = DEFAULT_GUARDRAILS,
    targeting: Mapping[str, object] | None = None,
    layer: Layer | None = None,
    layer_start: float = 0.0,
    layer_end: float = 1.0,
    actor: AbstractBaseUser | None = None,
    **settings: object,
) -> Experiment:
    """A draft experiment with its variants (index 0, the first, is the control).

    Raises ExperimentValidationError naming the argument at fault: fewer than two variants, weights that
    are not shares adding up to 1, unknown metrics, a malformed guardrail or targeting, a layer slice a
    running experiment already owns, a key already used by the merchant, a setting out of range.
    """
    unknown = set(settings) - SETTINGS_FIELDS
    if unknown:
        raise ExperimentValidationError(sorted(unknown)[0], "Not a setting of an experiment.")
    if surface not in Surface.values:
        raise ExperimentValidationError("surface", f"One of: {', '.join(Surface.values)}.")
    if kind not in ExperimentKind.values:
        raise ExperimentValidationError("kind", f"One of: {', '.join(ExperimentKind.values)}.")
    if len(variants) < 2:
        raise ExperimentValidationError("variants", "An experiment compares at least two variants.")
    if len(variants) > MAX_VARIANTS:
        raise ExperimentValidationError("variants", f"At most {MAX_VARIANTS} variants.")
    if len({spec.key for spec in variants}) != len(variants):
        raise ExperimentValidationError("variants", "Variant keys must differ.")
    weights = _checked_weights([spec.weight for spec in variants], "variants")
    for position, spec in enumerate(variants):
        if not isinstance(spec.config, Mapping):
            raise ExperimentValidationError(f"variants[{position}].config", "A JSON object.")
    if surface == Surface.PRICING:
        _check_pricing_experiment(kind=kind, targeting=targeting, variants=variants)
    primary_metric = _checked_metric(primary_metric, "primary_metric")
    secondary = [_checked_metric(metric, "secondary_metrics") for metric in secondary_metrics]
    if "reward_metric" in settings:
        _checked_metric(settings["reward_metric"], "reward_metric")
    if layer is not None and layer.merchant_id != merchant.pk:
        raise ExperimentValidationError("layer", "No such layer.")

    experiment = Experiment(
        merchant=merchant,
        key=key,
        name=name,
        hypothesis=hypothesis,
        surface=surface,
        kind=kind,
        primary_metric=primary_metric,
        secondary_metrics=list(dict.fromkeys(secondary)),
        guardrails=_checked_guardrails(guardrails),
        targeting=targeting_normalize(targeting),
        layer=layer,
        layer_start=layer_start,
        layer_end=layer_end,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        **settings,
    )
    try:
        experiment.clean_fields(exclude=_RELATION_FIELDS)
    except ValidationError as error:
        raise _first_error(error) from None
    if experiment.layer_start >= experiment.layer_end:
        raise ExperimentValidationError("layer_end", "The layer slice ends after it starts.")
    rows = [
        Variant(
            merchant=merchant,
            index=index,
            key=spec.key,
            name=spec.name or spec.key,
            weight=weight,
            config=dict(spec.config),
        )
        for index, (spec, weight) in enumerate(zip(variants, weights, strict=True))
    ]
    for position, row in enumerate(rows):
        try:
            row.clean_fields(exclude=_RELATION_FIELDS)
        except ValidationError as error:
            raise _first_error(error, f"variants[{position}].") from None

    with transaction.atomic():
        if Experiment.objects.for_merchant(merchant).filter(key=experiment.key).exists():
            raise ExperimentValidationError("key", "The shop already has an experiment with this key.")
        _check_layer_free(experiment=experiment)
        experiment.save()
        for row in rows:
            row.experiment = experiment
        Variant.objects.bulk_create(rows)
        audit_log_write(
            merchant=merchant,
            actor=actor,
            action="experiment.create",
            target=experiment,
            detail={"key": experiment.key, "variants": {row.key: row.weight for row in rows}},
        )
    return experiment


# --- transitions ---------------------------------------------------------------------------------


def _locked(experiment: Experiment) -> Experiment:
    return Experiment.objects.for_merchant(experiment.merchant_id).select_for_update().get(pk=experiment.pk)


def _sync(target: Experiment, source: Experiment, fields: Iterable[str]) -> None:
    for name in fields:
        setattr(target, name, getattr(source, name))


def _weights_of(experiment: Experiment) -> dict[str, float]:
    return dict(experiment.variants.order_by("index").values_list("key", "weight"))


def _transition_audit(*, experiment: Experiment, actor: AbstractBaseUser | None, action: str, before: str) -> None:
    audit_log_write(
        merchant=experiment.merchant,
        actor=actor,
        action=action,
        target=experiment,
        detail={"key": experiment.key, "from": before, "to": experiment.status},
    )


def experiment_start(
    *, experiment: Experiment, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Experiment:
    """draft → running: shoppers are bucketed from now on; the starting weights are logged."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(experiment)
        if locked.status != ExperimentStatus.DRAFT:
            raise ExperimentTransitionError(f"Only a draft can start; this experiment is {locked.status}.")
        if locked.surface == Surface.PRICING:
            # Again at the start: a draft's variants and targeting may have been edited since its creation.
            _check_pricing_experiment(
                kind=locked.kind,
                targeting=locked.targeting,
                variants=[
                    VariantSpec(key=row.key, name=row.name, weight=row.weight, config=dict(row.config or {}))
                    for row in locked.variants.order_by("index")
                ],
            )
        if locked.layer_id is not None:
            # Two experiments starting in one layer at once must not both see it free.
            Layer.objects.for_merchant(locked.merchant_id).select_for_update().get(pk=locked.layer_id)
            _check_layer_free(experiment=locked)
        locked.status = ExperimentStatus.RUNNING
        locked.started_at = now
        locked.save(update_fields=["status", "started_at"])
        AllocationChange.objects.create(
            merchant_id=locked.merchant_id,
            experiment=locked,
            effective_at=now,
            source=AllocationSource.START,
            weights=_weights_of(locked),
            actor=actor if actor is not None and actor.is_authenticated else None,
        )
        _transition_audit(experiment=locked, actor=actor, action="experiment.start", before=ExperimentStatus.DRAFT)
        _live_changed(locked.merchant_id)
    _sync(experiment, locked, ("status", "started_at"))
    return experiment


def experiment_stop(
    *, experiment: Experiment, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Experiment:
    """running → stopped: no new exposures; units already exposed are still analysed."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _locked(experiment)
        if locked.status != ExperimentStatus.RUNNING:
            raise ExperimentTransitionError(f"Only a running experiment can stop; this one is {locked.status}.")
        locked.status = ExperimentStatus.STOPPED
        locked.stopped_at = now
        locked.save(update_fields=["status", "stopped_at"])
        _transition_audit(experiment=locked, actor=actor, action="experiment.stop", before=ExperimentStatus.RUNNING)
        _live_changed(locked.merchant_id)
    _sync(experiment, locked, ("status", "stopped_at"))
    return experiment


def experiment_roll_out(
    *, experiment: Experiment, variant: Variant, actor: AbstractBaseUser | None, now: datetime | None = None
) -> Experiment:
    """running | stopped → rolled out: from now on every shopper gets `variant`'s config (no exposure is
    logged); the allocation log records 100% for it."""
    now = now or timezone.now()
    if variant.experiment_id != experiment.pk or variant.merchant_id != experiment.merchant_id:
        raise ExperimentValidationError("variant", "Not a variant of this experiment.")
    with transaction.atomic():
        locked = _locked(experiment)
        before = locked.status
        if before not in (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED):
            raise ExperimentTransitionError(f"Only a running or stopped experiment can roll out; this one is {before}.")
        locked.status = ExperimentStatus.ROLLED_OUT
        locked.rolled_out_variant = variant
        locked.rolled_out_at = now
        locked.stopped_at = locked.stopped_at or now
        locked.save(update_fields=["status", "rolled_out_variant", "rolled_out_at", "stopped_at"])
        weights = {key: 1.0 if key == variant.key else 0.0 for key in _weights_of(locked)}
        for key, weight in weights.items():
            Variant.objects.for_merchant(locked.merchant_id).filter(experiment=locked, key=key).update(weight=weight)
        AllocationChange.objects.create(
            merchant_id=locked.merchant_id,
            experiment=locked,
            effective_at=now,
            source=AllocationSource.ROLLOUT,
            weights=weights,
            actor=actor if actor is not None and actor.is_authenticated else None,
        )
        audit_log_write(
            merchant=locked.merchant,
            actor=actor,
            action="experiment.roll_out",
            target=locked,
            detail={"key": locked.key, "from": before, "to": locked.status, "variant": variant.key},
        )
        _live_changed(locked.merchant_id)
    _sync(experiment, locked, ("status", "rolled_out_variant", "rolled_out_at", "stopped_at"))
    return experiment


def experiment_weights_update(
    *,
    experiment: Experiment,
    weights: Mapping[str, float],
    actor: AbstractBaseUser | None = None,
    source: str = AllocationSource.MANUAL,
    detail: dict | None = None,
    now: datetime | None = None,
) -> AllocationChange:
    """New weights for a draft or running experiment, logged with their source.

    Only units seen from now on follow them: a unit already exposed keeps its variant (sticky bucketing),
    so a bandit's reallocation or a merchant's 50/50 → 90/10 never moves anyone already counted.
    """
    now = now or timezone.now()
    if source not in (AllocationSource.MANUAL, AllocationSource.BANDIT):
        raise ExperimentValidationError("source", "Weights change by hand (manual) or by a bandit.")
    with transaction.atomic():
        locked = _locked(experiment)
        if locked.status not in (ExperimentStatus.DRAFT, ExperimentStatus.RUNNING):
            raise ExperimentTransitionError(f"Weights change before or during a test; this one is {locked.status}.")
        if locked.surface == Surface.PRICING and locked.status == ExperimentStatus.RUNNING:
            # Products are bucketed by hash alone (no stored exposure), so new weights would move some of them.
            raise ExperimentValidationError(
                "weights", "A running pricing experiment keeps its weights: new ones would move products between arms."
            )
        current = _weights_of(locked)
        if set(weights) != set(current):
            raise ExperimentValidationError("weights", f"Give a weight for each variant: {', '.join(current)}.")
        checked = dict(zip(weights, _checked_weights(list(weights.values()), "weights"), strict=True))
        ordered = {key: checked[key] for key in current}
        for key, weight in ordered.items():
            Variant.objects.for_merchant(locked.merchant_id).filter(experiment=locked, key=key).update(weight=weight)
        change = AllocationChange.objects.create(
            merchant_id=locked.merchant_id,
            experiment=locked,
            effective_at=now,
            source=source,
            weights=ordered,
            detail=detail or {},
            actor=actor if actor is not None and actor.is_authenticated else None,
        )
        audit_log_write(
            merchant=locked.merchant,
            actor=actor,
            action="experiment.weights_update",
            target=locked,
            detail={"key": locked.key, "source": source, "from": current, "to": ordered},
        )
        _live_changed(locked.merchant_id)
    return change
