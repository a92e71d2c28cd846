"""Always-valid inference, so merchants may look at the results every day without inflating false positives.

The mixture sequential probability ratio test (mSPRT) of Johari, Pekelis & Walsh (2017, "Always valid
inference: continuous monitoring of A/B tests"): with the difference of means Δ̂ ≈ N(θ, V) and a normal
mixture θ ~ N(0, τ²) over the alternatives, the likelihood ratio against θ = θ₀ is

    Λ(θ₀) = √(V / (V + τ²)) · exp(τ²(Δ̂ − θ₀)² / (2V(V + τ²))),

a nonnegative martingale under θ₀, so by Ville's inequality P(sup_n Λ ≥ 1/α) ≤ α. The always-valid
p-value is min(1, 1/Λ(0)) minimised over every look, and {θ₀ : Λ(θ₀) < 1/α} is the matching confidence
sequence, Δ̂ ± √(V(V + τ²)/τ² · (2·log(1/α) + log((V + τ²)/V))): Howard, Ramdas, McAuliffe & Sekhon
(2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences"), normal-mixture boundary.

The mixture variance τ² sets the sample size at which the boundary is tightest. Given V* (the variance of
Δ̂ at the sample size the experiment is planned for), the width is smallest at τ² = s·V* with
s = 2·log(1/α) + log(1 + s), solved as GrowthBook does by s ≈ −2·log α + log(1 − 2·log α). Without a plan,
GrowthBook's default applies: tightest at 5,000 units in all (2,500 per variant). V* is read from the
current per-unit variances, which settle within the first days.

The relative lift's confidence sequence is Fieller's set at the same boundary (as `frequentist.py` does for
fixed-horizon intervals), so it excludes 0 exactly when the absolute one does, i.e. when p < α.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from experiments.stats.frequentist import relative_interval
from experiments.stats.summaries import Interval, MeanEstimate

DEFAULT_TUNING_UNITS_PER_VARIANT = 2_500


@dataclass(frozen=True)
class SequentialResult:
    p_value: float  # this look's min(1, 1/Λ); the always-valid p-value is the running minimum over looks
    absolute_interval: Interval
    relative_interval: Interval
    mixture_variance: float  # τ²


def sequential_lift(
    control: MeanEstimate,
    treatment: MeanEstimate,
    *,
    alpha: float = 0.05,
    mixture_variance: float | None = None,
    planned_units_per_variant: int | None = None,
) -> SequentialResult:
    """mSPRT p-value and (1 − α) confidence sequences for treatment − control and treatment/control − 1.

    τ² is `mixture_variance` when given, else tuned to `planned_units_per_variant` (else to 2,500 units
    per variant) with `mixture_variance_for`."""
    difference = treatment.value - control.value
    variance = control.variance_of_value + treatment.variance_of_value
    tau_squared = (
        mixture_variance
        if mixture_variance is not None
        else mixture_variance_for(
            control=control,
            treatment=treatment,
            units_per_variant=planned_units_per_variant or DEFAULT_TUNING_UNITS_PER_VARIANT,
            alpha=alpha,
        )
    )
    if not math.isfinite(variance) or tau_squared <= 0 or not math.isfinite(tau_squared):
        return SequentialResult(
            p_value=1.0,
            absolute_interval=Interval(-math.inf, math.inf),
            relative_interval=Interval(-math.inf, math.inf),
            mixture_variance=tau_squared,
        )
    if variance <= 0:
        exact = Interval(difference, difference)
        return SequentialResult(
            p_value=1.0 if difference == 0 else 0.0,
            absolute_interval=exact,
            relative_interval=relative_interval(
                control=control.value,
                treatment=treatment.value,
                control_variance=0.0,
                treatment_variance=0.0,
                critical=0.0,
            ),
            mixture_variance=tau_squared,
        )
    log_likelihood_ratio = 0.5 * math.log(variance / (variance + tau_squared)) + tau_squared * difference**2 / (
        2.0 * variance * (variance + tau_squared)
    )
    p_value = math.exp(-max(log_likelihood_ratio, 0.0))
    critical = boundary_critical_value(variance=variance, mixture_variance=tau_squared, alpha=alpha)
    half_width = critical * math.sqrt(variance)
    return SequentialResult(
        p_value=p_value,
        absolute_interval=Interval(difference - half_width, difference + half_width),
        relative_interval=relative_interval(
            control=control.value,
            treatment=treatment.value,
            control_variance=control.variance_of_value,
            treatment_variance=treatment.variance_of_value,
            critical=critical,
        ),
        mixture_variance=tau_squared,
    )


def boundary_critical_value(*, variance: float, mixture_variance: float, alpha: float) -> float:
    """The confidence sequence's half-width in standard errors of Δ̂: about 3.0 at α = 0.05 where τ² is
    tuned (1.96 for a fixed-horizon interval), growing slowly away from it."""
    ratio = (variance + mixture_variance) / variance
    return math.sqrt(ratio / (ratio - 1.0) * (2.0 * math.log(1.0 / alpha) + math.log(ratio)))


def mixture_variance_for(
    *, control: MeanEstimate, treatment: MeanEstimate, units_per_variant: int, alpha: float = 0.05
) -> float:
    """τ² that makes the confidence sequence narrowest when each arm holds `units_per_variant` units,
    from the per-unit variances observed so far."""
    per_unit = _per_unit_variance(control) + _per_unit_variance(treatment)
    if per_unit <= 0 or not math.isfinite(per_unit):
        return math.nan
    variance_at_plan = per_unit / max(units_per_variant, 1)
    return _optimal_scale(alpha) * variance_at_plan


def always_valid_p_value_running(p_values: Sequence[float]) -> float:
    """The always-valid p-value after these looks (oldest first): the running minimum, never above 1.
    Pass the previous snapshot's value and this look's, or the whole history."""
    return min([1.0, *p_values])


def _optimal_scale(alpha: float) -> float:
    """s = τ²/V* minimising the boundary at V*: s = 2·log(1/α) + log(1 + s), GrowthBook's closed form."""
    two_log = -2.0 * math.log(alpha)
    return two_log + math.log(two_log + 1.0)


def _per_unit_variance(estimate: MeanEstimate) -> float:
    return estimate.variance_of_value * estimate.n
