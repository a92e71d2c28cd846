"""The planning calculator: units per variant for a given minimum detectable effect, and the reverse.

Two-sided tests at level α with the exact normal power (both rejection tails, as statsmodels'
NormalIndPower and power_proportions_2indep compute it). With more than two variants each treatment is
compared to the control at α/(variants − 1) (Bonferroni), a safe plan for the Holm correction the analysis
applies. Proportions use the pooled variance under the null and the unpooled one under the alternative,
matching the two-proportion z test the analysis runs. Invalid inputs raise ValueError with the field named.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy import optimize, special

MAX_UNITS = 10**12


def sample_size_per_variant(
    *,
    baseline_mean: float,
    baseline_sd: float,
    relative_mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    variants: int = 2,
) -> int:
    """Units per variant for Welch's t / the z test of a mean to detect a relative change of `relative_mde`."""
    _check_common(alpha=alpha, power=power, variants=variants)
    if baseline_sd <= 0:
        raise ValueError("baseline_sd: must be positive")
    if relative_mde == 0 or baseline_mean == 0:
        raise ValueError("relative_mde: the effect must not be zero")
    effect = abs(relative_mde * baseline_mean) / baseline_sd
    return _solve_units(
        lambda n: mean_test_power(
            n_per_variant=n, standardized_effect=effect, alpha=comparison_alpha(alpha=alpha, variants=variants)
        ),
        power,
    )


def sample_size_for_proportion(
    *, baseline_rate: float, relative_mde: float, alpha: float = 0.05, power: float = 0.8, variants: int = 2
) -> int:
    """Units per variant for the two-proportion z test to detect baseline_rate → baseline_rate × (1 + mde)."""
    _check_common(alpha=alpha, power=power, variants=variants)
    _check_rates(baseline_rate=baseline_rate, relative_mde=relative_mde)
    return _solve_units(
        lambda n: proportion_test_power(
            n_per_variant=n,
            baseline_rate=baseline_rate,
            relative_mde=relative_mde,
            alpha=comparison_alpha(alpha=alpha, variants=variants),
        ),
        power,
    )


def minimum_detectable_effect(
    *,
    n_per_variant: int,
    baseline_mean: float,
    baseline_sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    variants: int = 2,
) -> float:
    """The relative change of a mean detected with the given power at `n_per_variant` units per variant."""
    _check_common(alpha=alpha, power=power, variants=variants)
    if n_per_variant < 2:
        raise ValueError("n_per_variant: at least 2 units per variant")
    if baseline_sd <= 0:
        raise ValueError("baseline_sd: must be positive")
    if baseline_mean == 0:
        raise ValueError("baseline_mean: a relative effect needs a non-zero baseline")
    level = comparison_alpha(alpha=alpha, variants=variants)
    effect = optimize.brentq(
        lambda d: mean_test_power(n_per_variant=n_per_variant, standardized_effect=d, alpha=level) - power,
        1e-12,
        1e3,
        xtol=1e-14,
        rtol=1e-12,
    )
    return effect * baseline_sd / abs(baseline_mean)


def minimum_detectable_effect_for_proportion(
    *, n_per_variant: int, baseline_rate: float, alpha: float = 0.05, power: float = 0.8, variants: int = 2
) -> float | None:
    """The relative rise of a rate detected with the given power; None when even rate → 1 is not enough."""
    _check_common(alpha=alpha, power=power, variants=variants)
    if n_per_variant < 2:
        raise ValueError("n_per_variant: at least 2 units per variant")
    if not 0 < baseline_rate < 1:
        raise ValueError("baseline_rate: must be between 0 and 1")
    level = comparison_alpha(alpha=alpha, variants=variants)

    def shortfall(mde: float) -> float:
        return (
            proportion_test_power(
                n_per_variant=n_per_variant, baseline_rate=baseline_rate, relative_mde=mde, alpha=level
            )
            - power
        )

    highest = (1.0 - 1e-9) / baseline_rate - 1.0
    if shortfall(highest) < 0:
        return None
    return optimize.brentq(shortfall, 1e-12, highest, xtol=1e-14, rtol=1e-12)


def mean_test_power(*, n_per_variant: float, standardized_effect: float, alpha: float) -> float:
    """Power of the two-sided z test of two means, n per arm, effect in units of the per-unit sd."""
    critical = -special.ndtri(alpha / 2.0)
    shift = abs(standardized_effect) * math.sqrt(n_per_variant / 2.0)
    return float(special.ndtr(shift - critical) + special.ndtr(-shift - critical))


def proportion_test_power(*, n_per_variant: float, baseline_rate: float, relative_mde: float, alpha: float) -> float:
    """Power of the pooled two-sided two-proportion z test (= statsmodels power_proportions_2indep)."""
    control = baseline_rate
    treatment = baseline_rate * (1.0 + relative_mde)
    pooled = (control + treatment) / 2.0
    sd_null = math.sqrt(2.0 * pooled * (1.0 - pooled))
    sd_alternative = math.sqrt(control * (1.0 - control) + treatment * (1.0 - treatment))
    critical = -special.ndtri(alpha / 2.0)
    shift = abs(treatment - control) * math.sqrt(n_per_variant)
    return float(
        special.ndtr((shift - critical * sd_null) / sd_alternative)
        + special.ndtr((-shift - critical * sd_null) / sd_alternative)
    )


def comparison_alpha(*, alpha: float, variants: int) -> float:
    """The level of each treatment-vs-control comparison: α, or α/(variants − 1) for several treatments."""
    return alpha / max(variants - 1, 1)


def _solve_units(power_at: Callable[[float], float], target: float) -> int:
    if power_at(MAX_UNITS) < target:
        raise ValueError("relative_mde: too small to detect with any realistic sample")
    low = 1.0
    if power_at(low) >= target:
        return 2
    units = optimize.brentq(lambda n: power_at(n) - target, low, MAX_UNITS, xtol=1e-9, rtol=1e-12)
    return max(math.ceil(units - 1e-9), 2)


def _check_common(*, alpha: float, power: float, variants: int) -> None:
    if not 0 < alpha < 1:
        raise ValueError("alpha: must be between 0 and 1")
    if not 0 < power < 1:
        raise ValueError("power: must be between 0 and 1")
    if variants < 2:
        raise ValueError("variants: at least 2 (a control and a treatment)")


def _check_rates(*, baseline_rate: float, relative_mde: float) -> None:
    if not 0 < baseline_rate < 1:
        raise ValueError("baseline_rate: must be between 0 and 1")
    if relative_mde == 0:
        raise ValueError("relative_mde: the effect must not be zero")
    if not 0 < baseline_rate * (1.0 + relative_mde) < 1:
        raise ValueError("relative_mde: the treated rate must stay between 0 and 1")
