"""Fixed-horizon tests: Welch's t and the two-proportion z test, with intervals for the absolute and relative lift.

Every estimate is a `MeanEstimate` (a value and the variance of that value), so means, proportions and
ratio metrics (delta method) share one `lift`.

The relative lift's interval is Fieller's: the set of ratios ρ = treatment / control that the same test
would not reject, i.e. (t − ρc)² ≤ k²(v_t + ρ²v_c), the exact interval for a ratio of normal means. To first
order it is the delta-method interval GrowthBook and Eppo report (t/c − 1 ± k·√(v_t/c² + t²v_c/c⁴)): the
two differ by O(1/n) (Fieller's is shifted outward by about k²·(v_c/c²)·t/c, under a tenth of the
half-width once the control is known to ±5%) while the widths shrink as O(1/√n). Unlike the delta
interval it excludes 0 exactly when the absolute interval does, so a relative interval never contradicts
the p-value a merchant is shown (nor the Holm-adjusted one, see `multiple.py`). When the control mean is
not distinguishable from zero (c² ≤ k²v_c) Fieller's set is unbounded and the delta-method interval is
returned instead.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy import special

from experiments.stats.summaries import Interval, LiftEstimate, MeanEstimate, RatioSums, SampleSums

UNBOUNDED = Interval(-math.inf, math.inf)


def mean_estimate(sums: SampleSums) -> MeanEstimate:
    """ȳ and s²/n (sample variance with ddof=1). Fewer than two units: infinite variance."""
    if sums.n <= 0:
        return MeanEstimate(n=0, value=0.0, variance_of_value=math.inf)
    mean = float(sums.y_sum) / sums.n
    if sums.n == 1:
        return MeanEstimate(n=1, value=mean, variance_of_value=math.inf)
    variance = _sample_variance(n=sums.n, total=sums.y_sum, total_squares=sums.y_sum_squares)
    return MeanEstimate(n=sums.n, value=mean, variance_of_value=variance / sums.n)


def proportion_estimate(successes: int, n: int) -> MeanEstimate:
    """p and p(1 − p)/n."""
    if n <= 0:
        return MeanEstimate(n=0, value=0.0, variance_of_value=math.inf)
    rate = float(successes) / n
    return MeanEstimate(n=n, value=rate, variance_of_value=rate * (1.0 - rate) / n)


def ratio_estimate(sums: RatioSums) -> MeanEstimate:
    """Σnumerator / Σdenominator, its variance by the delta method (Deng, Knoblich & Lu 2018, eq. 3).

    With per-unit means μx (numerator) and μy (denominator) and R = μx/μy:
    Var(R̂) ≈ (s²x − 2R·sxy + R²·s²y) / (n·μy²).
    """
    if sums.n <= 1 or sums.denominator_sum == 0:
        value = sums.numerator_sum / sums.denominator_sum if sums.denominator_sum else 0.0
        return MeanEstimate(n=max(sums.n, 0), value=value, variance_of_value=math.inf)
    n = sums.n
    mean_numerator = sums.numerator_sum / n
    mean_denominator = sums.denominator_sum / n
    ratio = float(sums.numerator_sum) / sums.denominator_sum
    variance_numerator = _sample_variance(n=n, total=sums.numerator_sum, total_squares=sums.numerator_sum_squares)
    variance_denominator = _sample_variance(n=n, total=sums.denominator_sum, total_squares=sums.denominator_sum_squares)
    covariance = (sums.cross_sum - n * mean_numerator * mean_denominator) / (n - 1)
    variance = (variance_numerator - 2 * ratio * covariance + ratio**2 * variance_denominator) / (
        n * mean_denominator**2
    )
    return MeanEstimate(n=n, value=ratio, variance_of_value=max(float(variance), 0.0))


def lift(
    control: MeanEstimate,
    treatment: MeanEstimate,
    *,
    confidence: float = 0.95,
    degrees_of_freedom: float | None = None,
) -> LiftEstimate:
    """Treatment − control with its interval and two-sided p-value (z, or Student t with the given df),
    and treatment / control − 1 with Fieller's interval at the same level (see the module docstring)."""
    tail = 1.0 - confidence
    absolute = treatment.value - control.value
    variance = control.variance_of_value + treatment.variance_of_value
    standard_error = math.sqrt(variance)
    df = _usable_df(degrees_of_freedom)
    critical = critical_value(tail=tail, degrees_of_freedom=df)
    return LiftEstimate(
        control=control.value,
        treatment=treatment.value,
        absolute=absolute,
        absolute_interval=_symmetric(absolute, critical * standard_error),
        relative=relative_lift(control=control.value, treatment=treatment.value),
        relative_interval=relative_interval(
            control=control.value,
            treatment=treatment.value,
            control_variance=control.variance_of_value,
            treatment_variance=treatment.variance_of_value,
            critical=critical,
        ),
        p_value=two_sided_p_value(difference=absolute, standard_error=standard_error, degrees_of_freedom=df),
        confidence=confidence,
        control_variance=control.variance_of_value,
        treatment_variance=treatment.variance_of_value,
        degrees_of_freedom=df,
    )


def welch_degrees_of_freedom(control: MeanEstimate, treatment: MeanEstimate) -> float | None:
    """Welch–Satterthwaite: (v_c + v_t)² / (v_c²/(n_c − 1) + v_t²/(n_t − 1)); None when undefined."""
    if control.n < 2 or treatment.n < 2:
        return None
    denominator = control.variance_of_value**2 / (control.n - 1) + treatment.variance_of_value**2 / (treatment.n - 1)
    if not math.isfinite(denominator) or denominator <= 0:
        return None
    return (control.variance_of_value + treatment.variance_of_value) ** 2 / denominator


def welch_t_test(control: SampleSums, treatment: SampleSums, *, confidence: float = 0.95) -> LiftEstimate:
    """Welch's unequal-variance t test (= scipy.stats.ttest_ind(equal_var=False))."""
    control_estimate = mean_estimate(control)
    treatment_estimate = mean_estimate(treatment)
    return lift(
        control_estimate,
        treatment_estimate,
        confidence=confidence,
        degrees_of_freedom=welch_degrees_of_freedom(control_estimate, treatment_estimate),
    )


def two_proportion_z_test(
    *,
    control_successes: int,
    control_n: int,
    treatment_successes: int,
    treatment_n: int,
    confidence: float = 0.95,
) -> LiftEstimate:
    """p-value from the pooled z test (= statsmodels proportions_ztest); intervals from the unpooled
    variances (= statsmodels confint_proportions_2indep(method="wald")). Both rates 0 or both 1: p = 1."""
    control = proportion_estimate(control_successes, control_n)
    treatment = proportion_estimate(treatment_successes, treatment_n)
    estimate = lift(control, treatment, confidence=confidence)
    if control_n <= 0 or treatment_n <= 0:
        return estimate
    pooled = (control_successes + treatment_successes) / (control_n + treatment_n)
    pooled_standard_error = math.sqrt(pooled * (1.0 - pooled) * (1.0 / control_n + 1.0 / treatment_n))
    p_value = (
        two_sided_p_value(difference=estimate.absolute, standard_error=pooled_standard_error)
        if pooled_standard_error > 0
        else 1.0
    )
    return replace(estimate, p_value=p_value)


def winsorized(values: np.ndarray, percentile: float) -> np.ndarray:
    """Values capped at the `percentile` (a fraction: 0.99) of the positive values, as the metric SQL does:
    zero-revenue units do not set the cap. percentile ≥ 1 (or no positive value) leaves the values as they are."""
    values = np.asarray(values, dtype=float)
    positive = values[values > 0]
    if percentile >= 1.0 or positive.size == 0:
        return values.copy()
    cap = float(np.quantile(positive, percentile))
    return np.minimum(values, cap)


def relative_lift(*, control: float, treatment: float) -> float:
    """treatment / control − 1; ±inf (0 when both are 0) when the control is 0."""
    if control == 0:
        return 0.0 if treatment == 0 else math.copysign(math.inf, treatment)
    return treatment / control - 1.0


def relative_interval(
    *, control: float, treatment: float, control_variance: float, treatment_variance: float, critical: float
) -> Interval:
    """Fieller's interval for treatment / control − 1 at the critical value `critical`; the delta-method
    interval when the control mean is within `critical` standard errors of zero (Fieller unbounded)."""
    if control == 0 or not math.isfinite(control_variance) or not math.isfinite(treatment_variance):
        return UNBOUNDED
    critical_squared = critical**2
    leading = control**2 - critical_squared * control_variance
    if leading <= 0:
        ratio = treatment / control
        delta_variance = treatment_variance / control**2 + ratio**2 * control_variance / control**2
        return _symmetric(ratio - 1.0, critical * math.sqrt(delta_variance))
    discriminant = (
        treatment**2 * control_variance
        + control**2 * treatment_variance
        - critical_squared * control_variance * treatment_variance
    )
    half_width = critical * math.sqrt(max(discriminant, 0.0)) / leading
    centre = treatment * control / leading
    return Interval(centre - half_width - 1.0, centre + half_width - 1.0)


def critical_value(*, tail: float, degrees_of_freedom: float | None = None) -> float:
    """The two-sided critical value: z (or t with df) such that P(|Z| > value) = tail."""
    if tail <= 0:
        return math.inf
    if tail >= 1:
        return 0.0
    if degrees_of_freedom is None:
        return float(-special.ndtri(tail / 2.0))
    return float(-special.stdtrit(degrees_of_freedom, tail / 2.0))


def two_sided_p_value(*, difference: float, standard_error: float, degrees_of_freedom: float | None = None) -> float:
    if standard_error == 0:
        return 1.0 if difference == 0 else 0.0
    if not math.isfinite(standard_error):
        return 1.0
    statistic = -abs(difference) / standard_error
    if degrees_of_freedom is None:
        return float(2.0 * special.ndtr(statistic))
    return float(2.0 * special.stdtr(degrees_of_freedom, statistic))


def _usable_df(degrees_of_freedom: float | None) -> float | None:
    """None (the normal) for a missing, infinite or huge df: Student t is the normal there."""
    if degrees_of_freedom is None or not math.isfinite(degrees_of_freedom) or degrees_of_freedom > 1e9:
        return None
    return max(float(degrees_of_freedom), 1e-3)


def _symmetric(centre: float, half_width: float) -> Interval:
    if math.isnan(half_width) or math.isinf(half_width):
        return UNBOUNDED
    return Interval(centre - half_width, centre + half_width)


def _sample_variance(*, n: int, total: float, total_squares: float) -> float:
    return max(float(total_squares - total * total / n) / (n - 1), 0.0)
