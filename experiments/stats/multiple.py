"""Holm's step-down correction across the variants and metrics of one experiment, with intervals that agree.

Holm (1979) controls the family-wise error rate at α like Bonferroni but rejects more. An interval is
"consistent" with the adjusted p-value when it excludes 0 exactly when p_adj < α. Rebuilding each interval
at the tail probability α·p/p_adj does that: the interval excludes 0 iff p < α·p/p_adj iff p_adj < α. (For a
single comparison the tail is α: the plain interval.) When a p-value and its interval come from different
standard errors (the pooled z test's p beside unpooled intervals), p here is the one the interval implies,
so the equivalence stays exact. The relative interval (Fieller's) excludes 0 exactly when the absolute one
does, so both agree. The same tails serve always-valid tests: `holm_adjusted_alphas` gives the α at which to
rebuild each confidence sequence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from experiments.stats.frequentist import critical_value, relative_interval, two_sided_p_value
from experiments.stats.summaries import Interval, LiftEstimate


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values in the input order (= statsmodels multipletests(method="holm"))."""
    count = len(p_values)
    if count == 0:
        return []
    values = np.asarray(p_values, dtype=float)
    order = np.argsort(values, kind="stable")
    multipliers = count - np.arange(count)
    stepped = np.minimum(np.maximum.accumulate(values[order] * multipliers), 1.0)
    adjusted = np.empty(count)
    adjusted[order] = stepped
    return [float(value) for value in adjusted]


def holm_adjusted_alphas(p_values: Sequence[float], *, alpha: float) -> list[float]:
    """Per hypothesis, α·p/p_adj: the level at which its own test rejects exactly when Holm does.

    For always-valid tests, rebuild each confidence sequence at this α with the same τ² as its p-value
    (`sequential_lift(..., alpha=level, mixture_variance=result.mixture_variance)`): the default τ² depends
    on α."""
    adjusted = holm_adjust(p_values)
    count = len(p_values)
    return [
        alpha * p_value / adjusted_value if adjusted_value > 0 else alpha / count
        for p_value, adjusted_value in zip(p_values, adjusted, strict=True)
    ]


def holm_adjusted_intervals(lifts: Sequence[LiftEstimate], *, alpha: float) -> list[tuple[float, LiftEstimate]]:
    """(Holm-adjusted p, the lift with both intervals rebuilt so that they exclude 0 iff adjusted p < α).

    The returned lift keeps its raw p_value; its `confidence` is the level of the rebuilt intervals."""
    raw = [lift.p_value for lift in lifts]
    adjusted = holm_adjust(raw)
    count = len(lifts)
    results = []
    for lift, adjusted_p in zip(lifts, adjusted, strict=True):
        interval_p = _interval_p_value(lift)
        # p underflowed to 0: any tail keeps 0 outside; α/count is Bonferroni's.
        tail = min(alpha * interval_p / adjusted_p, 1.0) if adjusted_p > 0 and interval_p > 0 else alpha / count
        results.append((adjusted_p, _at_tail(lift, tail=tail)))
    return results


def _interval_p_value(lift: LiftEstimate) -> float:
    """The two-sided p-value the lift's own intervals imply (its p_value, unless that came from another
    standard error)."""
    variance = _variance(lift)
    if variance is None:
        return lift.p_value
    return two_sided_p_value(
        difference=lift.absolute, standard_error=math.sqrt(variance), degrees_of_freedom=lift.degrees_of_freedom
    )


def _at_tail(lift: LiftEstimate, *, tail: float) -> LiftEstimate:
    critical = critical_value(tail=tail, degrees_of_freedom=lift.degrees_of_freedom)
    variance = _variance(lift)
    if variance is None:
        # Built elsewhere, without its variances: rescale the symmetric absolute interval (normal critical
        # values) and keep the relative interval's proportions.
        old_critical = critical_value(tail=1.0 - lift.confidence)
        scale = critical / old_critical if old_critical > 0 else math.inf
        return replace(
            lift,
            absolute_interval=_scaled(lift.absolute_interval, centre=lift.absolute, scale=scale),
            relative_interval=_scaled(lift.relative_interval, centre=lift.relative, scale=scale),
            confidence=1.0 - tail,
        )
    half_width = critical * math.sqrt(variance)
    return replace(
        lift,
        absolute_interval=Interval(lift.absolute - half_width, lift.absolute + half_width)
        if math.isfinite(half_width)
        else Interval(-math.inf, math.inf),
        relative_interval=relative_interval(
            control=lift.control,
            treatment=lift.treatment,
            control_variance=lift.control_variance,
            treatment_variance=lift.treatment_variance,
            critical=critical,
        ),
        confidence=1.0 - tail,
    )


def _variance(lift: LiftEstimate) -> float | None:
    if lift.control_variance is None or lift.treatment_variance is None:
        return None
    return lift.control_variance + lift.treatment_variance


def _scaled(interval: Interval, *, centre: float, scale: float) -> Interval:
    return Interval(centre - (centre - interval.low) * scale, centre + (interval.high - centre) * scale)
