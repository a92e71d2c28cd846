"""CUPED (Deng, Xu, Kohavi & Walker 2013): each unit's pre-period value of the metric, x, explains part of
its in-experiment value, y; removing that part leaves the treatment effect unchanged and its variance smaller.

θ is pooled over both arms within groups, Σ_g Σ(x − x̄_g)(y − ȳ_g) / Σ_g Σ(x − x̄_g)², which is the
coefficient of x in the regression y ~ treatment + (x − x̄); the adjusted difference of means is then
exactly that regression's treatment coefficient. Pre-period x cannot depend on the arm, so the adjustment
adds no bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from experiments.stats.frequentist import mean_estimate
from experiments.stats.summaries import MeanEstimate, SampleSums


@dataclass(frozen=True)
class CupedResult:
    control: MeanEstimate  # adjusted: ȳ − θ(x̄ − x̄_pooled), variance (s²y − 2θ·sxy + θ²·s²x)/n
    treatment: MeanEstimate
    theta: float
    variance_reduction: float  # 1 − Var(adjusted difference) / Var(plain difference), ≈ ρ²(x, y)


def cuped_estimates(control: SampleSums, treatment: SampleSums) -> CupedResult:
    """Adjusted means of both arms. No usable covariate (fewer than 2 units in an arm, or x constant):
    the plain means with θ = 0."""
    plain_control = mean_estimate(control)
    plain_treatment = mean_estimate(treatment)
    if control.n < 2 or treatment.n < 2:
        return CupedResult(control=plain_control, treatment=plain_treatment, theta=0.0, variance_reduction=0.0)
    x_spread = _centred_cross(control.n, control.x_sum, control.x_sum, control.x_sum_squares) + _centred_cross(
        treatment.n, treatment.x_sum, treatment.x_sum, treatment.x_sum_squares
    )
    if x_spread <= 0:
        return CupedResult(control=plain_control, treatment=plain_treatment, theta=0.0, variance_reduction=0.0)
    xy_spread = _centred_cross(control.n, control.x_sum, control.y_sum, control.xy_sum) + _centred_cross(
        treatment.n, treatment.x_sum, treatment.y_sum, treatment.xy_sum
    )
    theta = xy_spread / x_spread
    pooled_x_mean = (control.x_sum + treatment.x_sum) / (control.n + treatment.n)
    adjusted_control = _adjusted(control, theta=theta, pooled_x_mean=pooled_x_mean)
    adjusted_treatment = _adjusted(treatment, theta=theta, pooled_x_mean=pooled_x_mean)
    plain_variance = plain_control.variance_of_value + plain_treatment.variance_of_value
    adjusted_variance = adjusted_control.variance_of_value + adjusted_treatment.variance_of_value
    usable = plain_variance > 0 and math.isfinite(plain_variance)
    reduction = 1.0 - adjusted_variance / plain_variance if usable else 0.0
    return CupedResult(
        control=adjusted_control, treatment=adjusted_treatment, theta=theta, variance_reduction=reduction
    )


def _adjusted(sums: SampleSums, *, theta: float, pooled_x_mean: float) -> MeanEstimate:
    n = sums.n
    variance_y = _centred_cross(n, sums.y_sum, sums.y_sum, sums.y_sum_squares) / (n - 1)
    variance_x = _centred_cross(n, sums.x_sum, sums.x_sum, sums.x_sum_squares) / (n - 1)
    covariance = _centred_cross(n, sums.x_sum, sums.y_sum, sums.xy_sum) / (n - 1)
    variance = max(variance_y - 2 * theta * covariance + theta**2 * variance_x, 0.0)
    value = sums.y_sum / n - theta * (sums.x_sum / n - pooled_x_mean)
    return MeanEstimate(n=n, value=float(value), variance_of_value=float(variance) / n)


def _centred_cross(n: int, a_sum: float, b_sum: float, ab_sum: float) -> float:
    """Σ(a − ā)(b − b̄) from the sums."""
    return float(ab_sum - a_sum * b_sum / n)
