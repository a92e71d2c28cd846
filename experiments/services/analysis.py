"""The analysis of an experiment: metric sums from the database through the statistics engine to a verdict.

`experiment_analyze` reads every metric's per-variant sums in one statement (`selectors.metrics`), compares
each treatment variant with the control on the primary, secondary and guardrail metrics, and concludes:

- fixed-horizon lifts (Welch t for means, the two-proportion z test, the delta method for ratios), on
  CUPED-adjusted means when the experiment uses CUPED and the metric has a pre-period;
- Holm's correction across variants × (primary + secondary) metrics, intervals rebuilt to agree with it;
  guardrails are judged on their own, uncorrected, so that a harm is never explained away;
- always-valid (mSPRT) p-values when the experiment is sequential, a running minimum over the snapshots,
  which is what decides significance then; Holm applies to them the same way;
- the Bayesian view (probability to beat control, expected loss) beside them;
- a sample-ratio check against the shares the allocation history implies; a mismatch blocks any verdict.

A saved analysis is an `AnalysisSnapshot`; the daily task writes one per day, and each carries the lift
over time ("daily") forward from the one before it.
"""

from __future__ import annotations

import math
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone

from experiments.metrics import MetricDefinition, MetricKind, metric_definition
from experiments.models import AnalysisSnapshot, Experiment, ExperimentKind, Variant
from experiments.results import (
    DailyPoint,
    ExperimentAnalysis,
    GuardrailStatus,
    MetricResult,
    VariantSummary,
    Verdict,
)
from experiments.selectors.metrics import (
    MetricSums,
    exposure_counts_by_period,
    metric_sums_by_variant,
    metric_window,
    metrics_sums_by_variant,
)
from experiments.stats.bayesian import BayesianResult, bayesian_means, bayesian_proportions
from experiments.stats.cuped import cuped_estimates
from experiments.stats.frequentist import (
    lift,
    mean_estimate,
    proportion_estimate,
    ratio_estimate,
    two_proportion_z_test,
    welch_degrees_of_freedom,
    welch_t_test,
)
from experiments.stats.multiple import holm_adjust, holm_adjusted_alphas, holm_adjusted_intervals
from experiments.stats.sequential import SequentialResult, always_valid_p_value_running, sequential_lift
from experiments.stats.srm import SrmResult, expected_shares, sample_ratio_check
from experiments.stats.summaries import LiftEstimate, MeanEstimate, RatioSums, SampleSums

MIN_UNITS_PER_VARIANT = 100
BAYESIAN_SEED = 0


class ExperimentAnalysisError(ValueError):
    """The experiment cannot be analysed (no control and treatment to compare)."""


@dataclass(frozen=True)
class MetricRole:
    metric: MetricDefinition
    role: str  # "primary" | "secondary" | "guardrail"
    threshold: float | None = None  # guardrails: the harmful relative change allowed


@dataclass(frozen=True)
class Comparison:
    """One metric, one treatment variant against the control, before any correction."""

    fixed: LiftEstimate
    control: MeanEstimate  # the estimates the lift, sequential test and Bayesian view were built on
    treatment: MeanEstimate
    cuped_variance_reduction: float | None  # None: CUPED off or not applicable (ratios)
    cuped_applied: bool = False  # the pre-period varied, so the estimates are adjusted


def experiment_analyze(
    *,
    experiment: Experiment,
    as_of: datetime | None = None,
    save: bool = True,
    backfill_daily: bool = False,
) -> ExperimentAnalysis:
    """Analyse the experiment as of `as_of` (default now); save it as a snapshot unless `save` is False.

    `backfill_daily` computes the cumulative primary lift at the end of each day that no earlier snapshot
    covers (one query per day): the simulator's end-to-end run uses it; the daily task does not need it.
    """
    as_of = as_of or timezone.now()
    variants = list(
        Variant.objects.for_merchant(experiment.merchant_id).filter(experiment=experiment).order_by("index")
    )
    if len(variants) < 2 or not variants[0].is_control:
        raise ExperimentAnalysisError(f"experiment {experiment.key} needs a control and at least one treatment")
    control, treatments = variants[0], variants[1:]
    roles = metric_roles(experiment)
    previous = (
        AnalysisSnapshot.objects.for_merchant(experiment.merchant_id)
        .filter(experiment=experiment, computed_at__lte=as_of)
        .order_by("-computed_at", "-pk")
        .values_list("analysis", flat=True)
        .first()
    )
    previous_analysis = ExperimentAnalysis.from_dict(previous) if previous else None

    sums = metrics_sums_by_variant(
        experiment=experiment, metrics=[role.metric.key for role in roles], as_of=as_of, with_pre_period=None
    )
    primary = roles[0].metric
    units = {variant.key: sums[primary.key][variant.key].n for variant in variants}
    periods = exposure_counts_by_period(experiment=experiment, as_of=as_of)
    shares = expected_shares([(total, [weights[v.key] for v in variants]) for total, _, weights in periods])
    srm = sample_ratio_check([units[v.key] for v in variants], shares)
    if experiment.kind == ExperimentKind.CONTEXTUAL_BANDIT:
        # Its policy picks an arm per request, whatever the weights say: there is no ratio to check.
        srm = SrmResult(chi_square=0.0, p_value=1.0, flagged=False)

    results = _metric_results(
        experiment=experiment,
        roles=roles,
        sums=sums,
        control=control,
        treatments=treatments,
        previous=previous_analysis,
    )
    verdict, reason, winner = _verdict(
        experiment=experiment,
        results=results,
        units=units,
        control=control,
        treatments=treatments,
        srm_flagged=srm.flagged,
        srm_p_value=srm.p_value,
        shares=shares,
        sums=sums[primary.key],
    )
    window = metric_window(experiment=experiment, as_of=as_of)
    analysis = ExperimentAnalysis(
        experiment_key=experiment.key,
        computed_at=as_of.isoformat(),
        window_start=window.start.isoformat() if window.start else None,
        window_end=window.end.isoformat(),
        alpha=experiment.alpha,
        verdict=verdict,
        verdict_reason=reason,
        winner=winner,
        srm_p_value=srm.p_value,
        srm_flagged=srm.flagged,
        planned_units_per_variant=experiment.planned_sample_size,
        units_total=sum(units.values()),
        variants=[
            VariantSummary(
                key=variant.key,
                name=variant.name,
                is_control=variant.is_control,
                units=units[variant.key],
                weight=variant.weight,
                expected_share=share,
            )
            for variant, share in zip(variants, shares, strict=True)
        ],
        metrics=results,
    )
    analysis = replace(
        analysis,
        daily=_daily_points(
            experiment=experiment,
            as_of=as_of,
            current=_daily_from_sums(experiment=experiment, sums=sums[primary.key], day=None),
            previous=previous_analysis,
            backfill=backfill_daily,
        ),
    )
    if save:
        analysis_snapshot_create(experiment=experiment, analysis=analysis, computed_at=as_of)
    return analysis


def analysis_snapshot_create(
    *, experiment: Experiment, analysis: ExperimentAnalysis, computed_at: datetime
) -> AnalysisSnapshot:
    """The snapshot of the analysis as of `computed_at`: written once per moment, so a retried task
    rewrites its own snapshot instead of adding a second one.

    A derived figure, recomputable at any time: no audit entry (a merchant's "refresh" changes nothing
    they own)."""
    snapshot, _ = AnalysisSnapshot.objects.for_merchant(experiment.merchant_id).update_or_create(
        experiment=experiment,
        computed_at=computed_at,
        defaults={"analysis": analysis.as_dict()},
        create_defaults={"merchant_id": experiment.merchant_id, "analysis": analysis.as_dict()},
    )
    return snapshot


def metric_roles(experiment: Experiment) -> list[MetricRole]:
    """Primary first, then secondaries, then guardrails; a metric appears once, in its first role."""
    roles = [MetricRole(metric=metric_definition(experiment.primary_metric), role="primary")]
    seen = {experiment.primary_metric}
    for key in experiment.secondary_metrics or []:
        if key not in seen:
            roles.append(MetricRole(metric=metric_definition(key), role="secondary"))
            seen.add(key)
    for guardrail in experiment.guardrails or []:
        key = guardrail["metric"]
        if key not in seen:
            threshold = abs(float(guardrail.get("max_relative_change", 0.0)))
            roles.append(MetricRole(metric=metric_definition(key), role="guardrail", threshold=threshold))
            seen.add(key)
    return roles


def metric_comparison(
    *, definition: MetricDefinition, control: MetricSums, treatment: MetricSums, confidence: float, cuped: bool
) -> Comparison:
    """The fixed-horizon lift of one metric: z test for proportions, Welch for means, delta method for
    ratios; CUPED-adjusted when `cuped` and the pre-period varies (the adjusted means are z/Welch tested)."""
    if definition.kind == MetricKind.RATIO:
        assert isinstance(control, RatioSums) and isinstance(treatment, RatioSums)
        control_estimate, treatment_estimate = ratio_estimate(control), ratio_estimate(treatment)
        return Comparison(
            fixed=lift(control_estimate, treatment_estimate, confidence=confidence),
            control=control_estimate,
            treatment=treatment_estimate,
            cuped_variance_reduction=None,
        )
    assert isinstance(control, SampleSums) and isinstance(treatment, SampleSums)
    if cuped:
        adjusted = cuped_estimates(control, treatment)
        if adjusted.theta != 0.0:
            degrees_of_freedom = (
                welch_degrees_of_freedom(adjusted.control, adjusted.treatment)
                if definition.kind == MetricKind.MEAN
                else None
            )
            return Comparison(
                fixed=lift(
                    adjusted.control, adjusted.treatment, confidence=confidence, degrees_of_freedom=degrees_of_freedom
                ),
                control=adjusted.control,
                treatment=adjusted.treatment,
                cuped_variance_reduction=adjusted.variance_reduction,
                cuped_applied=True,
            )
    if definition.kind == MetricKind.PROPORTION:
        fixed = two_proportion_z_test(
            control_successes=round(control.y_sum),
            control_n=control.n,
            treatment_successes=round(treatment.y_sum),
            treatment_n=treatment.n,
            confidence=confidence,
        )
        control_estimate = proportion_estimate(round(control.y_sum), control.n)
        treatment_estimate = proportion_estimate(round(treatment.y_sum), treatment.n)
    else:
        fixed = welch_t_test(control, treatment, confidence=confidence)
        control_estimate, treatment_estimate = mean_estimate(control), mean_estimate(treatment)
    return Comparison(
        fixed=fixed,
        control=control_estimate,
        treatment=treatment_estimate,
        cuped_variance_reduction=0.0 if cuped else None,
    )


def _raw_value(definition: MetricDefinition, sums: MetricSums) -> float:
    """The metric's plain value for a variant (what a merchant reads), whatever the test adjusted."""
    if isinstance(sums, RatioSums):
        return sums.numerator_sum / sums.denominator_sum if sums.denominator_sum else 0.0
    return sums.y_sum / sums.n if sums.n else 0.0


def _has_pre_period(experiment: Experiment, definition: MetricDefinition) -> bool:
    return experiment.cuped and experiment.started_at is not None and definition.kind != MetricKind.RATIO


def _metric_results(
    *,
    experiment: Experiment,
    roles: list[MetricRole],
    sums: dict[str, dict[str, MetricSums]],
    control: Variant,
    treatments: list[Variant],
    previous: ExperimentAnalysis | None,
) -> list[MetricResult]:
    confidence = 1.0 - experiment.alpha
    cells: list[tuple[MetricRole, Variant, Comparison]] = []
    for role in roles:
        for treatment in treatments:
            comparison = metric_comparison(
                definition=role.metric,
                control=sums[role.metric.key][control.key],
                treatment=sums[role.metric.key][treatment.key],
                confidence=confidence,
                cuped=_has_pre_period(experiment, role.metric),
            )
            cells.append((role, treatment, comparison))

    family = [index for index, (role, _, _) in enumerate(cells) if role.role != "guardrail"]
    adjusted_fixed = dict(
        zip(
            family,
            holm_adjusted_intervals([cells[index][2].fixed for index in family], alpha=experiment.alpha),
            strict=True,
        )
    )

    sequential: dict[int, SequentialResult] = {}
    running_p: dict[int, float] = {}
    if experiment.sequential:
        for index, (role, treatment, comparison) in enumerate(cells):
            result = sequential_lift(
                comparison.control,
                comparison.treatment,
                alpha=experiment.alpha,
                planned_units_per_variant=experiment.planned_sample_size,
            )
            before = previous.metric(role.metric.key, treatment.key) if previous else None
            earlier = [before.sequential_p_value] if before and before.sequential_p_value is not None else []
            sequential[index] = result
            running_p[index] = always_valid_p_value_running([*earlier, result.p_value])
        # Holm on the always-valid p-values; each confidence sequence rebuilt at the level that agrees.
        family_p = [running_p[index] for index in family]
        for index, level in zip(family, holm_adjusted_alphas(family_p, alpha=experiment.alpha), strict=True):
            cell = cells[index][2]
            sequential[index] = sequential_lift(
                cell.control,
                cell.treatment,
                alpha=level,
                mixture_variance=sequential[index].mixture_variance,
            )
        decision_p = dict(running_p)
        decision_p.update(zip(family, holm_adjust(family_p), strict=True))
    else:
        decision_p = {index: cells[index][2].fixed.p_value for index in range(len(cells))}
        decision_p.update({index: adjusted_p for index, (adjusted_p, _) in adjusted_fixed.items()})

    results = []
    for index, (role, treatment, comparison) in enumerate(cells):
        definition = role.metric
        control_sums = sums[definition.key][control.key]
        treatment_sums = sums[definition.key][treatment.key]
        adjusted_p, shown = adjusted_fixed.get(index, (comparison.fixed.p_value, comparison.fixed))
        bayesian = _bayesian(
            definition=definition, comparison=comparison, control=control_sums, treatment=treatment_sums
        )
        significant = decision_p[index] < experiment.alpha
        status = (
            _guardrail_status(
                definition=definition,
                relative=comparison.fixed.relative,
                threshold=role.threshold,
                significant=significant,
            )
            if role.role == "guardrail"
            else None
        )
        sequential_result = sequential.get(index)
        results.append(
            MetricResult(
                metric=definition.key,
                label=definition.label,
                role=role.role,
                variant=treatment.key,
                control_value=_raw_value(definition, control_sums),
                treatment_value=_raw_value(definition, treatment_sums),
                absolute_lift=shown.absolute,
                absolute_low=shown.absolute_interval.low,
                absolute_high=shown.absolute_interval.high,
                relative_lift=shown.relative,
                relative_low=shown.relative_interval.low,
                relative_high=shown.relative_interval.high,
                p_value=comparison.fixed.p_value,
                adjusted_p_value=adjusted_p,
                significant=significant,
                sequential_p_value=running_p.get(index),
                sequential_low=sequential_result.relative_interval.low if sequential_result else None,
                sequential_high=sequential_result.relative_interval.high if sequential_result else None,
                cuped_variance_reduction=comparison.cuped_variance_reduction,
                probability_to_beat_control=bayesian.probability_to_beat_control,
                expected_loss=bayesian.expected_loss,
                guardrail_threshold=role.threshold,
                guardrail_status=status,
                units_control=control_sums.n,
                units_treatment=treatment_sums.n,
            )
        )
    return results


def _bayesian(
    *, definition: MetricDefinition, comparison: Comparison, control: MetricSums, treatment: MetricSums
) -> BayesianResult:
    if definition.kind == MetricKind.PROPORTION and not comparison.cuped_applied:
        assert isinstance(control, SampleSums) and isinstance(treatment, SampleSums)
        return bayesian_proportions(
            control_successes=round(control.y_sum),
            control_n=control.n,
            treatment_successes=round(treatment.y_sum),
            treatment_n=treatment.n,
            seed=BAYESIAN_SEED,
            higher_is_better=definition.higher_is_better,
        )
    return bayesian_means(
        comparison.control, comparison.treatment, seed=BAYESIAN_SEED, higher_is_better=definition.higher_is_better
    )


def _guardrail_status(
    *, definition: MetricDefinition, relative: float, threshold: float | None, significant: bool
) -> str:
    harm = -relative if definition.higher_is_better else relative
    if threshold is None or not harm > threshold:
        return GuardrailStatus.OK
    return GuardrailStatus.BREACHED if significant else GuardrailStatus.AT_RISK


# --- the verdict ------------------------------------------------------------------------------


def _better(definition: MetricDefinition, relative: float) -> bool:
    return relative > 0 if definition.higher_is_better else relative < 0


def _percent(value: float) -> str:
    return f"{value:+.1%}" if math.isfinite(value) else ("+∞" if value > 0 else "−∞")


def _interval_text(result: MetricResult) -> str:
    low, high = result.relative_low, result.relative_high
    if result.sequential_low is not None and result.sequential_high is not None:
        low, high = result.sequential_low, result.sequential_high
    return f"{_percent(low)} to {_percent(high)}"


def _verdict(
    *,
    experiment: Experiment,
    results: list[MetricResult],
    units: dict[str, int],
    control: Variant,
    treatments: list[Variant],
    srm_flagged: bool,
    srm_p_value: float,
    shares: Sequence[float],
    sums: dict[str, MetricSums],
) -> tuple[str, str, str | None]:
    names = {variant.key: variant.name or variant.key for variant in [control, *treatments]}
    if srm_flagged:
        split = ", ".join(
            f"{names[key]} {count:,} ({share:.1%} expected)"
            for (key, count), share in zip(units.items(), shares, strict=True)
        )
        return (
            Verdict.SAMPLE_RATIO_MISMATCH,
            f"The split does not match the allocation ({split}; p = {srm_p_value:.1g}): "
            "find what loses or adds shoppers in one variant before trusting any result.",
            None,
        )

    primary_key = experiment.primary_metric
    primary = {result.variant: result for result in results if result.metric == primary_key}
    definition = metric_definition(primary_key)
    label = definition.label.lower()
    smallest = min(units.values())
    control_sums = sums[control.key]
    no_conversions = control_sums.numerator_sum == 0 if isinstance(control_sums, RatioSums) else control_sums.y_sum == 0
    if smallest < MIN_UNITS_PER_VARIANT or no_conversions:
        detail = (
            f"{smallest:,} units in the smallest variant, {MIN_UNITS_PER_VARIANT} needed in each"
            if smallest < MIN_UNITS_PER_VARIANT
            else f"no {label} in the control yet"
        )
        return Verdict.NOT_ENOUGH_DATA, f"Too little data to compare yet: {detail}.", None

    breached = {
        result.variant: result
        for result in results
        if result.role == "guardrail" and result.guardrail_status == GuardrailStatus.BREACHED
    }
    winners = [
        result for result in primary.values() if result.significant and _better(definition, result.relative_lift)
    ]
    if winners:
        best = max(winners, key=lambda r: r.relative_lift if definition.higher_is_better else -r.relative_lift)
        name = names[best.variant]
        if best.variant in breached:
            harm = breached[best.variant]
            return (
                Verdict.GUARDRAIL_BREACHED,
                f"{name} changes {label} by {_percent(best.relative_lift)}, but moves {harm.label.lower()} by "
                f"{_percent(harm.relative_lift)}, beyond the {harm.guardrail_threshold:.0%} guardrail: "
                "do not roll it out as it is.",
                None,
            )
        return (
            Verdict.WINNER,
            f"{name} changes {label} by {_percent(best.relative_lift)} ({_interval_text(best)}) "
            "with no guardrail breached: roll it out.",
            best.variant,
        )
    if breached:
        variant, harm = next(iter(breached.items()))
        return (
            Verdict.GUARDRAIL_BREACHED,
            f"{names[variant]} moves {harm.label.lower()} by {_percent(harm.relative_lift)}, beyond the "
            f"{harm.guardrail_threshold:.0%} guardrail, without a significant gain on {label}: consider stopping it.",
            None,
        )
    if all(result.significant and not _better(definition, result.relative_lift) for result in primary.values()):
        lifts = ", ".join(f"{names[key]} {_percent(result.relative_lift)}" for key, result in primary.items())
        return Verdict.LOSER, f"Every variant does worse than the control on {label} ({lifts}): keep the control.", None

    best = max(primary.values(), key=lambda r: r.relative_lift if definition.higher_is_better else -r.relative_lift)
    planned = experiment.planned_sample_size
    reached = planned is not None and smallest >= planned
    if reached or experiment.stopped_at is not None:
        why = "The planned sample is reached" if reached else "The experiment has stopped"
        return (
            Verdict.NO_DIFFERENCE,
            f"{why} and no variant differs significantly from the control on {label} "
            f"(closest: {names[best.variant]} {_percent(best.relative_lift)}, {_interval_text(best)}).",
            None,
        )
    progress = f", {smallest / planned:.0%} of the planned sample" if planned else ""
    return (
        Verdict.KEEP_RUNNING,
        f"No significant difference on {label} yet ({names[best.variant]} {_percent(best.relative_lift)}, "
        f"{_interval_text(best)}{progress}): keep running.",
        None,
    )


# --- lift over time ---------------------------------------------------------------------------


def _daily_from_sums(*, experiment: Experiment, sums: dict[str, MetricSums], day: str | None) -> list[DailyPoint]:
    """The primary metric's cumulative lift per treatment: the always-valid band when the experiment is
    sequential, else the fixed-horizon interval (neither Holm-corrected, so the days compare)."""
    definition = metric_definition(experiment.primary_metric)
    keys = list(sums)
    control_key, treatment_keys = keys[0], keys[1:]
    points = []
    for key in treatment_keys:
        comparison = metric_comparison(
            definition=definition,
            control=sums[control_key],
            treatment=sums[key],
            confidence=1.0 - experiment.alpha,
            cuped=_has_pre_period(experiment, definition),
        )
        band = comparison.fixed.relative_interval
        if experiment.sequential:
            band = sequential_lift(
                comparison.control,
                comparison.treatment,
                alpha=experiment.alpha,
                planned_units_per_variant=experiment.planned_sample_size,
            ).relative_interval
        points.append(
            DailyPoint(
                day=day or "",
                variant=key,
                units=sums[control_key].n + sums[key].n,
                relative_lift=comparison.fixed.relative,
                low=band.low,
                high=band.high,
            )
        )
    return points


def _daily_points(
    *,
    experiment: Experiment,
    as_of: datetime,
    current: list[DailyPoint],
    previous: ExperimentAnalysis | None,
    backfill: bool,
) -> list[DailyPoint]:
    """Earlier days from the previous snapshot (its own day included), missing days computed when asked,
    and as_of's day from this analysis."""
    zone = zoneinfo.ZoneInfo(experiment.merchant.timezone or "UTC")
    today = _day_of(as_of, zone)
    points: dict[tuple[str, str], DailyPoint] = {}
    if previous is not None:
        for point in previous.daily:
            points[(point.day, point.variant)] = point
        previous_day = _day_of(previous.computed, zone).isoformat()
        for result in previous.metrics:
            if result.metric == experiment.primary_metric and (previous_day, result.variant) not in points:
                low, high = result.relative_low, result.relative_high
                if result.sequential_low is not None and result.sequential_high is not None:
                    low, high = result.sequential_low, result.sequential_high
                points[(previous_day, result.variant)] = DailyPoint(
                    day=previous_day,
                    variant=result.variant,
                    units=result.units_control + result.units_treatment,
                    relative_lift=result.relative_lift,
                    low=low,
                    high=high,
                )
    if backfill and experiment.started_at is not None:
        covered = {day for day, _ in points}
        for day in _days(start=experiment.started_at.astimezone(zone).date(), end=today):
            if day.isoformat() in covered:
                continue
            day_end = min(datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC), as_of)
            sums = metric_sums_by_variant(experiment=experiment, metric=experiment.primary_metric, as_of=day_end)
            for point in _daily_from_sums(experiment=experiment, sums=sums, day=day.isoformat()):
                points[(point.day, point.variant)] = point
    for point in current:
        points[(today.isoformat(), point.variant)] = replace(point, day=today.isoformat())
    return [
        point
        for (day, _), point in sorted(points.items())
        if day <= today.isoformat() and (experiment.started_at is None or day >= _start_day(experiment, zone))
    ]


def _day_of(moment: datetime, zone: zoneinfo.ZoneInfo) -> date:
    """The day a cumulative figure as of `moment` describes: midnight closes the day before."""
    return (moment - timedelta(microseconds=1)).astimezone(zone).date()


def _start_day(experiment: Experiment, zone: zoneinfo.ZoneInfo) -> str:
    return experiment.started_at.astimezone(zone).date().isoformat()


def _days(*, start: date, end: date) -> list[date]:
    """Every day from start up to, not including, end."""
    return [start + timedelta(days=offset) for offset in range((end - start).days)]
