"""Monte-Carlo checks that the statistics engine keeps its promises (issue 4, "Validation").

Each check simulates many experiments with numpy (seeded, vectorised: only the per-arm sufficient
statistics, or the buyers of each arm, are drawn), runs every simulated experiment through the engine's own
functions, and returns a frozen result with the figures, the bound and `passed`. `rows()` gives the lines
`manage.py validate_stats` prints.

The revenue-like metric: a unit buys with probability `conversion` (5%), and a buyer spends a log-normal
amount (median 60, σ = 1: mean 99, a long right tail), so revenue per unit is zero for 95% of units and
very skewed, as in a shop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from experiments.stats.cuped import cuped_estimates
from experiments.stats.frequentist import (
    lift,
    mean_estimate,
    two_proportion_z_test,
    welch_degrees_of_freedom,
    welch_t_test,
)
from experiments.stats.power import mean_test_power, sample_size_for_proportion, sample_size_per_variant
from experiments.stats.sequential import sequential_lift
from experiments.stats.srm import sample_ratio_check
from experiments.stats.summaries import SampleSums

Progress = Callable[[float], None]

CONVERSION = 0.05
ORDER_VALUE_LOG_MEAN = math.log(60.0)
ORDER_VALUE_LOG_SD = 1.0
WINSORIZE_PERCENTILE = 0.99


@dataclass(frozen=True)
class ValidationRow:
    check: str
    value: str
    bound: str
    passed: bool | None  # None: a figure shown for context, not a check


@dataclass(frozen=True)
class AaResult:
    experiments: int
    units_per_variant: int
    alpha: float
    revenue_false_positive_rate: float  # Welch t on winsorized revenue per unit
    conversion_false_positive_rate: float  # two-proportion z test
    low: float = 0.04
    high: float = 0.06

    @property
    def passed(self) -> bool:
        return all(
            self.low <= rate <= self.high
            for rate in (self.revenue_false_positive_rate, self.conversion_false_positive_rate)
        )

    def rows(self) -> list[ValidationRow]:
        bound = f"{self.low:.0%}–{self.high:.0%}"
        label = f"A/A, {self.experiments:,} experiments × {self.units_per_variant:,} units/variant, α = {self.alpha}"
        return [
            ValidationRow(
                f"{label}: revenue/unit (Welch, winsorized p99) FPR",
                f"{self.revenue_false_positive_rate:.2%}",
                bound,
                self.low <= self.revenue_false_positive_rate <= self.high,
            ),
            ValidationRow(
                f"{label}: conversion (z test) FPR",
                f"{self.conversion_false_positive_rate:.2%}",
                bound,
                self.low <= self.conversion_false_positive_rate <= self.high,
            ),
        ]


@dataclass(frozen=True)
class PowerResult:
    experiments: int
    alpha: float
    promised_power: float
    relative_mde: float
    revenue_units_per_variant: int  # from sample_size_per_variant
    revenue_detected: float  # share of experiments where Welch found the planted lift (p < α, right sign)
    revenue_expected: float  # the power the planted model actually implies (its treated sd is a bit larger)
    conversion_units_per_variant: int  # from sample_size_for_proportion
    conversion_detected: float
    tolerance: float = 0.05

    @property
    def passed(self) -> bool:
        return all(
            abs(detected - self.promised_power) <= self.tolerance
            for detected in (self.revenue_detected, self.conversion_detected)
        )

    def rows(self) -> list[ValidationRow]:
        bound = f"{self.promised_power:.0%} ± {self.tolerance * 100:.0f} pts"
        return [
            ValidationRow(
                f"power: revenue/unit +{self.relative_mde:.0%} (conversion lift), "
                f"{self.revenue_units_per_variant:,} units/variant, {self.experiments:,} experiments "
                f"(model implies {self.revenue_expected:.1%})",
                f"{self.revenue_detected:.1%}",
                bound,
                abs(self.revenue_detected - self.promised_power) <= self.tolerance,
            ),
            ValidationRow(
                f"power: conversion +{self.relative_mde:.0%}, {self.conversion_units_per_variant:,} units/variant, "
                f"{self.experiments:,} experiments",
                f"{self.conversion_detected:.1%}",
                bound,
                abs(self.conversion_detected - self.promised_power) <= self.tolerance,
            ),
        ]


@dataclass(frozen=True)
class PeekingResult:
    experiments: int
    days: int
    units_per_day: int  # per variant
    alpha: float
    naive_false_positive_rate: float  # Welch t at every daily look, stop at the first p < α
    always_valid_false_positive_rate: float  # mSPRT, stop at the first always-valid p < α
    final_day_false_positive_rate: float  # Welch once, on the last day (the fixed-horizon baseline)

    @property
    def passed(self) -> bool:
        return self.always_valid_false_positive_rate <= self.alpha and self.naive_false_positive_rate > self.alpha

    def rows(self) -> list[ValidationRow]:
        label = f"peeking daily for {self.days} days, {self.experiments:,} A/A experiments"
        return [
            ValidationRow(
                f"{label}: naive repeated Welch t FPR",
                f"{self.naive_false_positive_rate:.2%}",
                f"> {self.alpha:.0%} (shows the problem)",
                self.naive_false_positive_rate > self.alpha,
            ),
            ValidationRow(
                f"{label}: always-valid (mSPRT) FPR",
                f"{self.always_valid_false_positive_rate:.2%}",
                f"≤ {self.alpha:.0%}",
                self.always_valid_false_positive_rate <= self.alpha,
            ),
            ValidationRow(
                f"{label}: Welch once on day {self.days} (reference)",
                f"{self.final_day_false_positive_rate:.2%}",
                f"≈ {self.alpha:.0%}",
                None,
            ),
        ]


@dataclass(frozen=True)
class SrmPlantedResult:
    units: int
    share: float
    chi_square: float
    p_value: float
    flagged: bool  # the planted split itself (exact counts)
    sampled_flag_rate: float  # share of random draws from the broken split that are flagged
    false_flag_rate: float  # share of random draws from a correct 50/50 split that are flagged
    draws: int

    @property
    def passed(self) -> bool:
        return self.flagged and self.false_flag_rate <= 0.005

    def rows(self) -> list[ValidationRow]:
        planted = f"{self.share:.1%}/{1 - self.share:.1%}"
        return [
            ValidationRow(
                f"SRM: planted {planted} split of {self.units:,} units (χ² = {self.chi_square:.1f})",
                f"p = {self.p_value:.1e}, {'flagged' if self.flagged else 'NOT flagged'}",
                "flagged (p < 0.001)",
                self.flagged,
            ),
            ValidationRow(
                f"SRM: {self.draws:,} random {planted} splits of {self.units:,} units flagged",
                f"{self.sampled_flag_rate:.1%}",
                "(the check's power at this size)",
                None,
            ),
            ValidationRow(
                f"SRM: {self.draws:,} random 50/50 splits of {self.units:,} units flagged",
                f"{self.false_flag_rate:.2%}",
                "≤ 0.5% (0.1% expected)",
                self.false_flag_rate <= 0.005,
            ),
        ]


@dataclass(frozen=True)
class CupedCheckResult:
    experiments: int
    units_per_variant: int
    correlation: float  # between pre-period and in-experiment revenue, over all simulated units
    mean_variance_reduction: float
    false_positive_rate: float  # A/A, Welch on CUPED-adjusted means
    mean_absolute_bias: float  # mean adjusted minus plain lift, relative to the plain lift's standard error
    minimum_reduction: float = 0.30
    low: float = 0.035
    high: float = 0.065

    @property
    def passed(self) -> bool:
        return (
            self.mean_variance_reduction >= self.minimum_reduction and self.low <= self.false_positive_rate <= self.high
        )

    def rows(self) -> list[ValidationRow]:
        label = f"CUPED (synthetic pre-period, ρ = {self.correlation:.2f}), {self.experiments:,} A/A experiments"
        return [
            ValidationRow(
                f"{label}: mean variance reduction (ρ² = {self.correlation**2:.0%})",
                f"{self.mean_variance_reduction:.1%}",
                f"≥ {self.minimum_reduction:.0%}",
                self.mean_variance_reduction >= self.minimum_reduction,
            ),
            ValidationRow(
                f"{label}: FPR with the adjustment",
                f"{self.false_positive_rate:.2%}",
                f"{self.low:.1%}–{self.high:.1%}",
                self.low <= self.false_positive_rate <= self.high,
            ),
        ]


ValidationResult = AaResult | PowerResult | PeekingResult | SrmPlantedResult | CupedCheckResult


def aa_false_positive_rate(
    *,
    experiments: int = 2_000,
    units_per_variant: int = 5_000,
    seed: int = 0,
    alpha: float = 0.05,
    progress: Progress | None = None,
) -> AaResult:
    """Identical arms: how often do Welch (revenue, winsorized like the metric SQL) and the z test
    (conversion) call a difference at α?"""
    rng = np.random.default_rng(seed)
    buyers = rng.binomial(units_per_variant, CONVERSION, size=(experiments, 2))
    revenue = _revenue_sums(rng, buyers, winsorize_percentile=WINSORIZE_PERCENTILE)
    revenue_rejections = 0
    conversion_rejections = 0
    for index in range(experiments):
        control, treatment = (
            SampleSums(n=units_per_variant, y_sum=revenue[index, arm, 0], y_sum_squares=revenue[index, arm, 1])
            for arm in (0, 1)
        )
        revenue_rejections += welch_t_test(control, treatment, confidence=1 - alpha).p_value < alpha
        conversion = two_proportion_z_test(
            control_successes=int(buyers[index, 0]),
            control_n=units_per_variant,
            treatment_successes=int(buyers[index, 1]),
            treatment_n=units_per_variant,
        )
        conversion_rejections += conversion.p_value < alpha
        _report(progress, index, experiments)
    return AaResult(
        experiments=experiments,
        units_per_variant=units_per_variant,
        alpha=alpha,
        revenue_false_positive_rate=revenue_rejections / experiments,
        conversion_false_positive_rate=conversion_rejections / experiments,
    )


def power_check(
    *,
    experiments: int = 2_000,
    relative_mde: float = 0.10,
    power: float = 0.8,
    seed: int = 0,
    alpha: float = 0.05,
    progress: Progress | None = None,
) -> PowerResult:
    """Size each test with the calculator for `relative_mde`, plant exactly that lift, count detections.

    The lift is planted where shops see it, in the conversion rate (revenue per unit rises by the same
    factor). Revenue is sized from the control's analytic mean and sd, as a merchant would from history;
    the treated arm's sd is slightly larger, so the planted model implies a power a little below the promise
    (reported as `revenue_expected`). Revenue is not winsorized here: capping changes the effect the
    calculator was asked about."""
    rng = np.random.default_rng(seed)
    mean, sd = revenue_per_unit_moments(conversion=CONVERSION)
    revenue_units = sample_size_per_variant(
        baseline_mean=mean, baseline_sd=sd, relative_mde=relative_mde, alpha=alpha, power=power
    )
    treated_conversion = CONVERSION * (1 + relative_mde)
    treated_mean, treated_sd = revenue_per_unit_moments(conversion=treated_conversion)
    revenue_expected = mean_test_power(
        n_per_variant=revenue_units,
        standardized_effect=(treated_mean - mean) / math.sqrt((sd**2 + treated_sd**2) / 2),
        alpha=alpha,
    )
    buyers = rng.binomial(revenue_units, [CONVERSION, treated_conversion], size=(experiments, 2))
    revenue = _revenue_sums(rng, buyers, winsorize_percentile=None)
    conversion_units = sample_size_for_proportion(
        baseline_rate=CONVERSION, relative_mde=relative_mde, alpha=alpha, power=power
    )
    converted = rng.binomial(conversion_units, [CONVERSION, treated_conversion], size=(experiments, 2))
    revenue_detected = 0
    conversion_detected = 0
    for index in range(experiments):
        control, treatment = (
            SampleSums(n=revenue_units, y_sum=revenue[index, arm, 0], y_sum_squares=revenue[index, arm, 1])
            for arm in (0, 1)
        )
        result = welch_t_test(control, treatment, confidence=1 - alpha)
        revenue_detected += result.p_value < alpha and result.absolute > 0
        conversion = two_proportion_z_test(
            control_successes=int(converted[index, 0]),
            control_n=conversion_units,
            treatment_successes=int(converted[index, 1]),
            treatment_n=conversion_units,
        )
        conversion_detected += conversion.p_value < alpha and conversion.absolute > 0
        _report(progress, index, experiments)
    return PowerResult(
        experiments=experiments,
        alpha=alpha,
        promised_power=power,
        relative_mde=relative_mde,
        revenue_units_per_variant=revenue_units,
        revenue_detected=revenue_detected / experiments,
        revenue_expected=revenue_expected,
        conversion_units_per_variant=conversion_units,
        conversion_detected=conversion_detected / experiments,
    )


def peeking_false_positive_rates(
    *,
    experiments: int = 2_000,
    days: int = 30,
    units_per_day: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
    progress: Progress | None = None,
) -> PeekingResult:
    """A/A experiments looked at every day on cumulative data: the naive Welch t test stopped at the first
    p < α, against the mSPRT (τ² tuned to the planned days × units_per_day) stopped at the first
    always-valid p < α."""
    rng = np.random.default_rng(seed)
    buyers = rng.binomial(units_per_day, CONVERSION, size=(experiments, days, 2))
    daily = _revenue_sums(rng, buyers, winsorize_percentile=None)  # (experiments, days, 2, 2)
    cumulative = np.cumsum(daily, axis=1)
    planned = days * units_per_day
    naive = 0
    always_valid = 0
    final_day = 0
    for index in range(experiments):
        naive_rejected = False
        valid_rejected = False
        for day in range(days):
            n = (day + 1) * units_per_day
            control, treatment = (
                SampleSums(n=n, y_sum=cumulative[index, day, arm, 0], y_sum_squares=cumulative[index, day, arm, 1])
                for arm in (0, 1)
            )
            welch = welch_t_test(control, treatment, confidence=1 - alpha)
            naive_rejected = naive_rejected or welch.p_value < alpha
            if day == days - 1:
                final_day += welch.p_value < alpha
            if not valid_rejected:
                sequential = sequential_lift(
                    mean_estimate(control), mean_estimate(treatment), alpha=alpha, planned_units_per_variant=planned
                )
                valid_rejected = sequential.p_value < alpha
        naive += naive_rejected
        always_valid += valid_rejected
        _report(progress, index, experiments)
    return PeekingResult(
        experiments=experiments,
        days=days,
        units_per_day=units_per_day,
        alpha=alpha,
        naive_false_positive_rate=naive / experiments,
        always_valid_false_positive_rate=always_valid / experiments,
        final_day_false_positive_rate=final_day / experiments,
    )


def srm_planted(*, units: int = 200_000, share: float = 0.505, seed: int = 0, draws: int = 2_000) -> SrmPlantedResult:
    """The planted split itself must be flagged; random draws show the check's power and false-alarm rate."""
    rng = np.random.default_rng(seed)
    first = round(units * share)
    planted = sample_ratio_check([first, units - first], [0.5, 0.5])
    broken = rng.binomial(units, share, size=draws)
    fair = rng.binomial(units, 0.5, size=draws)
    sampled_flags = sum(sample_ratio_check([int(k), units - int(k)], [0.5, 0.5]).flagged for k in broken)
    false_flags = sum(sample_ratio_check([int(k), units - int(k)], [0.5, 0.5]).flagged for k in fair)
    return SrmPlantedResult(
        units=units,
        share=share,
        chi_square=planted.chi_square,
        p_value=planted.p_value,
        flagged=planted.flagged,
        sampled_flag_rate=sampled_flags / draws,
        false_flag_rate=false_flags / draws,
        draws=draws,
    )


def cuped_check(
    *,
    experiments: int = 2_000,
    units_per_variant: int = 2_000,
    seed: int = 0,
    alpha: float = 0.05,
    progress: Progress | None = None,
) -> CupedCheckResult:
    """A/A experiments whose units have stable habits: in both periods a unit places Poisson(λ) orders
    (λ ~ Gamma(0.5, 2) across units) of its usual basket (log-normal across units, median 60) times a
    per-order log-normal factor (σ = 0.3). Pre-period and in-experiment revenue then correlate at ρ ≈ 0.7;
    CUPED must shrink the variance by about ρ² and keep the false positive rate at α."""
    rng = np.random.default_rng(seed)
    shape = (experiments, 2, units_per_variant)
    rate = rng.gamma(0.5, 2.0, size=shape)
    basket = rng.lognormal(ORDER_VALUE_LOG_MEAN, 0.7, size=shape)
    pre = _compound_revenue(rng, rate) * basket
    post = _compound_revenue(rng, rate) * basket
    correlation = float(np.corrcoef(pre.ravel(), post.ravel())[0, 1])
    sums = np.stack([post.sum(-1), (post**2).sum(-1), pre.sum(-1), (pre**2).sum(-1), (pre * post).sum(-1)], axis=-1)
    rejections = 0
    reductions = []
    bias = []
    for index in range(experiments):
        control, treatment = (
            SampleSums(
                n=units_per_variant,
                y_sum=sums[index, arm, 0],
                y_sum_squares=sums[index, arm, 1],
                x_sum=sums[index, arm, 2],
                x_sum_squares=sums[index, arm, 3],
                xy_sum=sums[index, arm, 4],
            )
            for arm in (0, 1)
        )
        adjusted = cuped_estimates(control, treatment)
        result = lift(
            adjusted.control,
            adjusted.treatment,
            confidence=1 - alpha,
            degrees_of_freedom=welch_degrees_of_freedom(adjusted.control, adjusted.treatment),
        )
        rejections += result.p_value < alpha
        reductions.append(adjusted.variance_reduction)
        plain = welch_t_test(control, treatment)
        bias.append((result.absolute - plain.absolute) / math.sqrt(plain.control_variance + plain.treatment_variance))
        _report(progress, index, experiments)
    return CupedCheckResult(
        experiments=experiments,
        units_per_variant=units_per_variant,
        correlation=correlation,
        mean_variance_reduction=float(np.mean(reductions)),
        false_positive_rate=rejections / experiments,
        mean_absolute_bias=float(np.mean(bias)),
    )


def revenue_per_unit_moments(*, conversion: float) -> tuple[float, float]:
    """Mean and sd of revenue per unit under the simulated model (Bernoulli × log-normal)."""
    first = math.exp(ORDER_VALUE_LOG_MEAN + ORDER_VALUE_LOG_SD**2 / 2)
    second = math.exp(2 * ORDER_VALUE_LOG_MEAN + 2 * ORDER_VALUE_LOG_SD**2)
    mean = conversion * first
    return mean, math.sqrt(conversion * second - mean**2)


def _revenue_sums(rng: np.random.Generator, buyers: np.ndarray, *, winsorize_percentile: float | None) -> np.ndarray:
    """Σ revenue and Σ revenue² per cell of `buyers` (counts of buying units), shape buyers.shape + (2,).

    Only buyers are drawn (non-buyers add 0 to both sums). With a percentile, each experiment's amounts (the
    cells sharing a first index) are capped at that percentile of its buyers' amounts, as the metric SQL
    caps at the percentile of the positive per-unit revenues."""
    counts = buyers.ravel()
    cell = np.repeat(np.arange(counts.size), counts)
    amounts = rng.lognormal(ORDER_VALUE_LOG_MEAN, ORDER_VALUE_LOG_SD, size=int(counts.sum()))
    if winsorize_percentile is not None and winsorize_percentile < 1:
        per_experiment = counts.reshape(buyers.shape[0], -1).sum(axis=1)
        bounds = np.concatenate([[0], np.cumsum(per_experiment)])
        for experiment in range(buyers.shape[0]):
            chunk = amounts[bounds[experiment] : bounds[experiment + 1]]
            if chunk.size:
                np.minimum(chunk, np.quantile(chunk, winsorize_percentile), out=chunk)
    totals = np.bincount(cell, weights=amounts, minlength=counts.size)
    squares = np.bincount(cell, weights=amounts**2, minlength=counts.size)
    return np.stack([totals, squares], axis=-1).reshape(*buyers.shape, 2)


def _compound_revenue(rng: np.random.Generator, rate: np.ndarray) -> np.ndarray:
    """Per unit: Poisson(rate) orders, each a log-normal multiple (median 1, σ = 0.3) of the basket; summed."""
    orders = rng.poisson(rate)
    flat = orders.ravel()
    amounts = rng.lognormal(0.0, 0.3, size=int(flat.sum()))
    owner = np.repeat(np.arange(flat.size), flat)
    return np.bincount(owner, weights=amounts, minlength=flat.size).reshape(orders.shape)


def _report(progress: Progress | None, index: int, total: int) -> None:
    if progress is not None and (index + 1) % max(total // 100, 1) == 0:
        progress((index + 1) / total)
