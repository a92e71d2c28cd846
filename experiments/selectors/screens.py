"""Reads behind the merchant's experiment screens: the list, the results page and the planner.

Every query starts from `Model.objects.for_merchant(merchant)`. The list costs a fixed number of
queries however many experiments a shop has; the results page reads the latest analysis snapshot
(what `services.analysis.experiment_analyze` stored) rather than recomputing it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from revopt.charts import IntervalRow
from revopt.tenancy.models import AuditLogEntry, Merchant

from ..metrics import METRICS
from ..models import AllocationChange, AnalysisSnapshot, Experiment, ExperimentStatus, Exposure, Variant
from ..results import ExperimentAnalysis, GuardrailStatus, MetricResult, Verdict

logger = logging.getLogger(__name__)

# Traffic over this many recent days sets the "≈ N more days" estimate.
RATE_WINDOW_DAYS = 7
AUDIT_TRAIL_LIMIT = 50
ROLE_ORDER = {"primary": 0, "secondary": 1, "guardrail": 2}


# --- verdicts as badges -------------------------------------------------------------------------


@dataclass(frozen=True)
class VerdictBadge:
    label: str  # "B wins +4.2%", "Keep running", "Sample ratio mismatch"
    tone: str  # success | danger | warning | info | neutral (the badge-* classes of app.css)
    verdict: str | None  # experiments.results.Verdict, None before the first analysis


_VERDICT_BADGES = {
    Verdict.KEEP_RUNNING: ("Keep running", "info"),
    Verdict.LOSER: ("Control wins", "warning"),
    Verdict.NO_DIFFERENCE: ("No difference", "neutral"),
    Verdict.GUARDRAIL_BREACHED: ("Guardrail breached", "danger"),
    Verdict.SAMPLE_RATIO_MISMATCH: ("Sample ratio mismatch", "danger"),
    Verdict.NOT_ENOUGH_DATA: ("Not enough data", "neutral"),
}


def verdict_badge(*, analysis: ExperimentAnalysis | None, variant_names: Mapping[str, str]) -> VerdictBadge:
    """The latest verdict in a few words, e.g. "Free shipping wins +4.2%" (the primary metric's lift)."""
    if analysis is None:
        return VerdictBadge(label="Not analysed yet", tone="neutral", verdict=None)
    if analysis.verdict == Verdict.WINNER and analysis.winner:
        name = variant_names.get(analysis.winner, analysis.winner)
        primary = next(
            (row for row in analysis.metrics if row.role == "primary" and row.variant == analysis.winner), None
        )
        lift = f" {primary.relative_lift:+.1%}" if primary is not None and math.isfinite(primary.relative_lift) else ""
        return VerdictBadge(label=f"{name} wins{lift}", tone="success", verdict=Verdict.WINNER)
    label, tone = _VERDICT_BADGES.get(analysis.verdict, (str(analysis.verdict).replace("_", " ").capitalize(), "info"))
    return VerdictBadge(label=label, tone=tone, verdict=analysis.verdict)


def analysis_from_snapshot(snapshot: AnalysisSnapshot | None) -> ExperimentAnalysis | None:
    """The stored analysis, or None when there is none or it cannot be read (an older shape): the
    page then shows "not analysed" and offers a refresh rather than failing."""
    if snapshot is None:
        return None
    try:
        return ExperimentAnalysis.from_dict(snapshot.analysis)
    except (TypeError, KeyError, ValueError):
        logger.warning("analysis snapshot %s of experiment %s cannot be read", snapshot.pk, snapshot.experiment_id)
        return None


# --- the list ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExperimentListRow:
    experiment: Experiment
    units: int
    planned_units: int | None  # planned units per variant × variants
    analysis: ExperimentAnalysis | None
    badge: VerdictBadge

    @property
    def progress(self) -> float | None:
        if not self.planned_units:
            return None
        return min(1.0, self.units / self.planned_units)

    @property
    def primary_metric_label(self) -> str:
        definition = METRICS.get(self.experiment.primary_metric)
        return definition.label if definition else self.experiment.primary_metric


def _latest_snapshot_id() -> Subquery:
    return Subquery(
        AnalysisSnapshot.objects.filter(experiment=OuterRef("pk")).order_by("-computed_at", "-pk").values("pk")[:1]
    )


def experiment_list_rows(*, merchant: Merchant) -> list[ExperimentListRow]:
    """The merchant's experiments, newest first, in four queries (experiments, variants, snapshots)."""
    experiments = list(
        Experiment.objects.for_merchant(merchant)
        .annotate(units=Count("exposures"), latest_snapshot_id=_latest_snapshot_id())
        .prefetch_related("variants")
        .order_by("-created_at", "-pk")
    )
    snapshot_ids = [experiment.latest_snapshot_id for experiment in experiments if experiment.latest_snapshot_id]
    snapshots = {
        snapshot.pk: snapshot
        for snapshot in AnalysisSnapshot.objects.for_merchant(merchant).filter(pk__in=snapshot_ids)
    }
    rows = []
    for experiment in experiments:
        variants = list(experiment.variants.all())
        analysis = analysis_from_snapshot(snapshots.get(experiment.latest_snapshot_id))
        planned = experiment.planned_sample_size * len(variants) if experiment.planned_sample_size else None
        rows.append(
            ExperimentListRow(
                experiment=experiment,
                units=experiment.units,
                planned_units=planned,
                analysis=analysis,
                badge=verdict_badge(analysis=analysis, variant_names={v.key: v.name for v in variants}),
            )
        )
    return rows


def experiment_get(*, merchant: Merchant, key: str) -> Experiment:
    """The merchant's experiment with this key (variants prefetched); raises Experiment.DoesNotExist."""
    return (
        Experiment.objects.for_merchant(merchant)
        .select_related("layer", "rolled_out_variant", "created_by")
        .prefetch_related("variants")
        .get(key=key)
    )


def experiments_draft(*, merchant: Merchant) -> list[Experiment]:
    """Drafts, whose plan the planner may still save."""
    return list(Experiment.objects.for_merchant(merchant).filter(status=ExperimentStatus.DRAFT).order_by("name"))


# --- sample progress --------------------------------------------------------------------------


def days_to_plan(
    *,
    planned_per_variant: int,
    units_by_variant: Mapping[str, int],
    weights: Mapping[str, float],
    daily_rate: float,
) -> float | None:
    """Days until every variant has its planned units, if traffic keeps arriving at `daily_rate`
    units a day split by the current weights; the slowest variant decides. None when it never will
    (no traffic, or a variant that gets no traffic still short of its plan)."""
    slowest = 0.0
    for key, units in units_by_variant.items():
        missing = planned_per_variant - units
        if missing <= 0:
            continue
        per_day = daily_rate * weights.get(key, 0.0)
        if per_day <= 0:
            return None
        slowest = max(slowest, missing / per_day)
    return slowest


@dataclass(frozen=True)
class VariantProgress:
    variant: Variant
    units: int
    planned: int | None

    @property
    def progress(self) -> float | None:
        return min(1.0, self.units / self.planned) if self.planned else None


@dataclass(frozen=True)
class SampleProgress:
    variants: list[VariantProgress]
    units_total: int
    planned_total: int | None
    daily_rate: float | None  # units a day over the recent window, None unless running
    days_remaining: float | None  # None: no plan, not running, or no traffic to reach it with

    @property
    def progress(self) -> float | None:
        return min(1.0, self.units_total / self.planned_total) if self.planned_total else None

    @property
    def reached(self) -> bool:
        return bool(self.planned_total) and all(row.progress == 1.0 for row in self.variants)


def sample_progress(*, experiment: Experiment, variants: Sequence[Variant], now: datetime) -> SampleProgress:
    """Units per variant against the plan, and days to go at the last week's traffic (one query)."""
    window_start = None
    if experiment.status == ExperimentStatus.RUNNING and experiment.started_at is not None:
        window_start = max(experiment.started_at, now - timedelta(days=RATE_WINDOW_DAYS))
    counted = {"units": Count("pk")}
    if window_start is not None:
        counted["recent"] = Count("pk", filter=Q(exposed_at__gte=window_start))
    counts = (
        Exposure.objects.for_merchant(experiment.merchant_id)
        .filter(experiment=experiment)
        .values("variant_id")
        .annotate(**counted)
        .order_by()
    )
    by_variant = {row["variant_id"]: row for row in counts}
    planned = experiment.planned_sample_size
    rows = [
        VariantProgress(variant=variant, units=by_variant.get(variant.pk, {}).get("units", 0), planned=planned)
        for variant in variants
    ]
    units_total = sum(row.units for row in rows)
    daily_rate = days_remaining = None
    if window_start is not None:
        elapsed_days = max((now - window_start).total_seconds() / 86400, 1 / 24)
        daily_rate = sum(row["recent"] for row in by_variant.values()) / elapsed_days
        if planned:
            days_remaining = days_to_plan(
                planned_per_variant=planned,
                units_by_variant={row.variant.key: row.units for row in rows},
                weights={variant.key: variant.weight for variant in variants},
                daily_rate=daily_rate,
            )
    return SampleProgress(
        variants=rows,
        units_total=units_total,
        planned_total=planned * len(rows) if planned else None,
        daily_rate=daily_rate,
        days_remaining=days_remaining,
    )


# --- the results page -------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSection:
    """One metric's rows (one per treatment variant), for its table on the results page."""

    metric: str
    label: str
    role: str
    unit: str  # experiments.metrics.MetricUnit
    higher_is_better: bool
    results: list[MetricResult]


@dataclass(frozen=True)
class ExperimentResults:
    experiment: Experiment
    variants: list[Variant]
    analysis: ExperimentAnalysis | None
    snapshot_at: datetime | None
    badge: VerdictBadge
    progress: SampleProgress
    allocation_changes: list[AllocationChange]
    audit_entries: list[AuditLogEntry]

    @property
    def variant_names(self) -> dict[str, str]:
        return {variant.key: variant.name for variant in self.variants}

    @property
    def sections(self) -> list[MetricSection]:
        return metric_sections(self.analysis) if self.analysis else []

    @property
    def guardrails(self) -> list[MetricResult]:
        return [row for row in self.analysis.metrics if row.role == "guardrail"] if self.analysis else []

    @property
    def forest_rows(self) -> list[IntervalRow]:
        if self.analysis is None:
            return []
        return forest_rows(self.analysis, variant_names=self.variant_names, sequential=self.experiment.sequential)

    @property
    def roll_out_candidates(self) -> list[Variant]:
        """Variants a manager may roll out: the winner first when there is one, then the others."""
        if self.experiment.status not in (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED):
            return []
        winner = self.analysis.winner if self.analysis and self.analysis.verdict == Verdict.WINNER else None
        return sorted(self.variants, key=lambda variant: (variant.key != winner, variant.index))

    @property
    def winner(self) -> Variant | None:
        if self.analysis is None or self.analysis.verdict != Verdict.WINNER:
            return None
        return next((variant for variant in self.variants if variant.key == self.analysis.winner), None)


def experiment_results(*, merchant: Merchant, experiment: Experiment, now: datetime | None = None) -> ExperimentResults:
    """Everything the results page shows, from the latest snapshot and the experiment's own rows."""
    now = now or timezone.now()
    variants = list(experiment.variants.all())
    snapshot = (
        AnalysisSnapshot.objects.for_merchant(merchant)
        .filter(experiment=experiment)
        .order_by("-computed_at", "-pk")
        .first()
    )
    analysis = analysis_from_snapshot(snapshot)
    allocation_changes = list(
        AllocationChange.objects.for_merchant(merchant)
        .filter(experiment=experiment)
        .select_related("actor")
        .order_by("effective_at", "pk")
    )
    audit_entries = list(
        AuditLogEntry.objects.for_merchant(merchant)
        # Services name the target by its model ("Experiment"); match either spelling.
        .filter(target_type__iexact="experiment", target_id=str(experiment.pk))
        .select_related("actor")
        .order_by("-created_at", "-pk")[:AUDIT_TRAIL_LIMIT]
    )
    return ExperimentResults(
        experiment=experiment,
        variants=variants,
        analysis=analysis,
        snapshot_at=snapshot.computed_at if snapshot is not None and analysis is not None else None,
        badge=verdict_badge(analysis=analysis, variant_names={v.key: v.name for v in variants}),
        progress=sample_progress(experiment=experiment, variants=variants, now=now),
        allocation_changes=allocation_changes,
        audit_entries=audit_entries,
    )


def metric_sections(analysis: ExperimentAnalysis) -> list[MetricSection]:
    """The analysis' rows grouped per metric: primary first, then secondaries, then guardrails."""
    sections: dict[str, MetricSection] = {}
    for row in analysis.metrics:
        if row.metric not in sections:
            definition = METRICS.get(row.metric)
            sections[row.metric] = MetricSection(
                metric=row.metric,
                label=row.label,
                role=row.role,
                unit=str(definition.unit) if definition else "count",
                higher_is_better=definition.higher_is_better if definition else True,
                results=[],
            )
        sections[row.metric].results.append(row)
    return sorted(sections.values(), key=lambda section: ROLE_ORDER.get(section.role, len(ROLE_ORDER)))


def result_interval(row: MetricResult, *, sequential: bool) -> tuple[float, float]:
    """The relative-lift interval the significance call rests on: the always-valid one when the
    experiment is sequential (and the analysis gave one), else the Holm-adjusted fixed-horizon one."""
    if sequential and row.sequential_low is not None and row.sequential_high is not None:
        return row.sequential_low, row.sequential_high
    return row.relative_low, row.relative_high


def result_tone(row: MetricResult) -> str:
    """positive: significantly better for the shop; negative: significantly worse, or a guardrail
    at risk or breached; neutral: not significant yet."""
    if row.role == "guardrail" and row.guardrail_status in (GuardrailStatus.AT_RISK, GuardrailStatus.BREACHED):
        return "negative"
    if not row.significant:
        return "neutral"
    definition = METRICS.get(row.metric)
    higher_is_better = definition.higher_is_better if definition else True
    return "positive" if (row.relative_lift > 0) == higher_is_better else "negative"


def guardrail_limit(row: MetricResult) -> float | None:
    """The guardrail's threshold as a relative lift on the harmful side (+10% for refund rate)."""
    if row.guardrail_threshold is None:
        return None
    definition = METRICS.get(row.metric)
    higher_is_better = definition.higher_is_better if definition else True
    magnitude = abs(row.guardrail_threshold)
    return -magnitude if higher_is_better else magnitude


def forest_rows(
    analysis: ExperimentAnalysis, *, variant_names: Mapping[str, str], sequential: bool
) -> list[IntervalRow]:
    """One forest-plot row per metric and treatment variant, in the order of `metric_sections`."""
    several_treatments = len({row.variant for row in analysis.metrics}) > 1
    rows = []
    for section in metric_sections(analysis):
        for result in section.results:
            if not math.isfinite(result.relative_lift):
                # No relative lift against a control of zero (no refunds yet): the table says so.
                continue
            low, high = result_interval(result, sequential=sequential)
            name = variant_names.get(result.variant, result.variant)
            rows.append(
                IntervalRow(
                    label=f"{section.label} · {name}" if several_treatments else section.label,
                    estimate=result.relative_lift,
                    low=low,
                    high=high,
                    tone=result_tone(result),
                    threshold=guardrail_limit(result) if result.role == "guardrail" else None,
                    key=f"{result.metric}:{result.variant}",
                )
            )
    return rows
