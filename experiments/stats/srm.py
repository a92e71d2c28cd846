"""Sample ratio mismatch: did the variants receive the share of units the allocation promised?

A broken split (a redirect that loses some shoppers, a bot filter hitting one arm) biases every metric in
ways no test can correct, so a flagged experiment gets no verdict. The check is Pearson's χ² goodness of
fit at p < 0.001 (Fabijan et al. 2019, "Diagnosing sample ratio mismatch in online controlled experiments").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import special

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmResult:
    chi_square: float
    p_value: float
    flagged: bool


def sample_ratio_check(
    observed: Sequence[int], expected_shares: Sequence[float], *, threshold: float = SRM_THRESHOLD
) -> SrmResult:
    """χ² of the observed unit counts against the expected shares (= scipy.stats.chisquare).

    Shares are normalised. A variant with share 0 that received units is a mismatch (p = 0); variants with
    share 0 and no units are left out. No units at all: nothing to flag."""
    if len(observed) != len(expected_shares):
        raise ValueError("observed and expected_shares must have the same length")
    total_share = sum(expected_shares)
    total = sum(observed)
    if total <= 0 or total_share <= 0:
        return SrmResult(chi_square=0.0, p_value=1.0, flagged=False)
    chi_square = 0.0
    cells = 0
    for count, share in zip(observed, expected_shares, strict=True):
        if share < 0 or count < 0:
            raise ValueError("counts and shares must not be negative")
        expected = total * share / total_share
        if expected == 0:
            if count > 0:
                return SrmResult(chi_square=math.inf, p_value=0.0, flagged=True)
            continue
        chi_square += (count - expected) ** 2 / expected
        cells += 1
    if cells < 2:
        return SrmResult(chi_square=0.0, p_value=1.0, flagged=False)
    p_value = float(special.chdtrc(cells - 1, chi_square))
    return SrmResult(chi_square=chi_square, p_value=p_value, flagged=p_value < threshold)


def expected_shares(periods: Sequence[tuple[int, Sequence[float]]]) -> list[float]:
    """The share of units each variant should hold when the weights changed during the test.

    `periods` holds, per allocation period, the number of units first assigned in it and the variants'
    weights then. Bucketing is sticky, so a unit keeps the variant of the period it arrived in and the
    expectation is Σ_periods units × normalised weights, normalised. No units yet: the last period's weights."""
    if not periods:
        return []
    size = len(periods[0][1])
    totals = [0.0] * size
    for units, weights in periods:
        if len(weights) != size:
            raise ValueError("every period must give a weight to every variant")
        weight_sum = sum(weights)
        if weight_sum <= 0 or units <= 0:
            continue
        for index, weight in enumerate(weights):
            totals[index] += units * weight / weight_sum
    grand_total = sum(totals)
    if grand_total <= 0:
        last = periods[-1][1]
        last_sum = sum(last)
        return [weight / last_sum for weight in last] if last_sum > 0 else [1.0 / size] * size
    return [total / grand_total for total in totals]
