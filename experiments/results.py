"""What an analysis of an experiment concludes, as the results page and the snapshots store it.

Pure dataclasses with a JSON round trip (`as_dict` / `from_dict`): `services.analysis` builds them from
the selectors' sums and the statistics engine; `AnalysisSnapshot.analysis` stores `as_dict()`; the
merchant screens read `ExperimentAnalysis.from_dict(snapshot.analysis)`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import StrEnum

_NON_FINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


class Verdict(StrEnum):
    KEEP_RUNNING = "keep_running"  # no decision yet
    WINNER = "winner"  # a variant beats control on the primary metric, no guardrail breached
    LOSER = "loser"  # every variant is significantly worse than control
    NO_DIFFERENCE = "no_difference"  # planned sample reached, nothing significant
    GUARDRAIL_BREACHED = "guardrail_breached"  # a variant harms a guardrail metric
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"  # the split is broken: no verdict can be trusted
    NOT_ENOUGH_DATA = "not_enough_data"


class GuardrailStatus(StrEnum):
    OK = "ok"
    AT_RISK = "at_risk"  # harmful beyond the threshold, not yet significant
    BREACHED = "breached"  # harmful beyond the threshold, significant


@dataclass(frozen=True)
class VariantSummary:
    key: str
    name: str
    is_control: bool
    units: int
    weight: float  # current weight
    expected_share: float  # share of units the allocation history implies (the SRM check's expectation)


@dataclass(frozen=True)
class MetricResult:
    """One metric for one treatment variant against the control."""

    metric: str  # key of experiments.metrics.METRICS
    label: str
    role: str  # "primary" | "secondary" | "guardrail"
    variant: str  # treatment variant key
    control_value: float
    treatment_value: float
    absolute_lift: float
    absolute_low: float
    absolute_high: float
    relative_lift: float
    relative_low: float  # interval consistent with the Holm-adjusted p-value
    relative_high: float
    p_value: float  # fixed-horizon, raw
    adjusted_p_value: float  # Holm across variants and metrics
    significant: bool  # adjusted (sequential when the experiment is sequential) p < alpha
    sequential_p_value: float | None = None  # always-valid
    sequential_low: float | None = None  # always-valid confidence sequence for the relative lift
    sequential_high: float | None = None
    cuped_variance_reduction: float | None = None  # 0.35 = the variance fell by 35%
    probability_to_beat_control: float | None = None
    expected_loss: float | None = None  # relative, if this variant were shipped and is worse
    guardrail_threshold: float | None = None
    guardrail_status: str | None = None  # GuardrailStatus for role == "guardrail"
    units_control: int = 0
    units_treatment: int = 0


@dataclass(frozen=True)
class DailyPoint:
    """Cumulative primary-metric lift as of one day, for the "lift over time" chart."""

    day: str  # ISO date
    variant: str
    units: int
    relative_lift: float
    low: float
    high: float


@dataclass(frozen=True)
class ExperimentAnalysis:
    experiment_key: str
    computed_at: str  # ISO datetime
    window_start: str | None
    window_end: str | None
    alpha: float
    verdict: str  # Verdict
    verdict_reason: str  # one sentence a merchant reads
    winner: str | None  # variant key when verdict == WINNER
    srm_p_value: float | None
    srm_flagged: bool
    planned_units_per_variant: int | None
    units_total: int
    variants: list[VariantSummary] = field(default_factory=list)
    metrics: list[MetricResult] = field(default_factory=list)
    daily: list[DailyPoint] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-safe: an unbounded interval's ±inf (or a NaN) is stored as "Infinity"/"-Infinity"/"NaN",
        which PostgreSQL's jsonb cannot hold as numbers; `from_dict` turns them back into floats."""
        return _json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> ExperimentAnalysis:
        return _restored(
            cls,
            {
                **data,
                "variants": [_restored(VariantSummary, row) for row in data.get("variants", [])],
                "metrics": [_restored(MetricResult, row) for row in data.get("metrics", [])],
                "daily": [_restored(DailyPoint, row) for row in data.get("daily", [])],
            },
        )

    def metric(self, metric: str, variant: str) -> MetricResult | None:
        for result in self.metrics:
            if result.metric == metric and result.variant == variant:
                return result
        return None

    @property
    def computed(self) -> datetime:
        return datetime.fromisoformat(self.computed_at)


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def _restored(cls: type, row: dict) -> object:
    """`cls(**row)` with the non-finite markers of `_json_safe` turned back into floats in float fields."""
    float_fields = {f.name for f in fields(cls) if str(f.type).startswith("float")}
    return cls(
        **{
            key: _NON_FINITE.get(value, value) if key in float_fields and isinstance(value, str) else value
            for key, value in row.items()
        }
    )
