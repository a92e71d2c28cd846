"""Sufficient statistics per variant, as the database aggregates them, and the estimates built on them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SampleSums:
    """Per-unit values y (and optionally a pre-period covariate x) summed over a variant's units."""

    n: int
    y_sum: float
    y_sum_squares: float
    x_sum: float = 0.0
    x_sum_squares: float = 0.0
    xy_sum: float = 0.0


@dataclass(frozen=True)
class RatioSums:
    """A ratio metric: numerator and denominator summed per unit, then over a variant's units."""

    n: int
    numerator_sum: float
    numerator_sum_squares: float
    denominator_sum: float
    denominator_sum_squares: float
    cross_sum: float  # sum of numerator × denominator per unit


@dataclass(frozen=True)
class MeanEstimate:
    """An estimate of a variant's metric: its value and the variance of that value (not of a unit)."""

    n: int
    value: float
    variance_of_value: float


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class LiftEstimate:
    """Treatment vs control on one metric."""

    control: float
    treatment: float
    absolute: float
    absolute_interval: Interval
    relative: float  # treatment / control - 1
    relative_interval: Interval
    p_value: float
    confidence: float  # e.g. 0.95, the level of both intervals
    # What the intervals were built from, so they can be rebuilt at another level (Holm, `multiple.py`).
    control_variance: float | None = None  # variance of the control's value
    treatment_variance: float | None = None
    degrees_of_freedom: float | None = None  # None: normal (z)
