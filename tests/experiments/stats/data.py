"""Sample arrays and their sums for the statistics tests."""

import numpy as np

from experiments.stats.summaries import RatioSums, SampleSums


def sums_of(y: np.ndarray, x: np.ndarray | None = None) -> SampleSums:
    if x is None:
        return SampleSums(n=len(y), y_sum=float(y.sum()), y_sum_squares=float((y * y).sum()))
    return SampleSums(
        n=len(y),
        y_sum=float(y.sum()),
        y_sum_squares=float((y * y).sum()),
        x_sum=float(x.sum()),
        x_sum_squares=float((x * x).sum()),
        xy_sum=float((x * y).sum()),
    )


def ratio_sums_of(numerator: np.ndarray, denominator: np.ndarray) -> RatioSums:
    return RatioSums(
        n=len(numerator),
        numerator_sum=float(numerator.sum()),
        numerator_sum_squares=float((numerator * numerator).sum()),
        denominator_sum=float(denominator.sum()),
        denominator_sum_squares=float((denominator * denominator).sum()),
        cross_sum=float((numerator * denominator).sum()),
    )


def shop_revenue(rng: np.random.Generator, *, n: int, conversion: float = 0.1, median: float = 60.0) -> np.ndarray:
    """Revenue per unit: mostly zeros, a log-normal amount for buyers."""
    return np.where(rng.random(n) < conversion, rng.lognormal(np.log(median), 1.0, n), 0.0)
