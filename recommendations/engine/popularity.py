"""Non-personal lists: time-decayed popularity, trending, per category, new arrivals."""

from __future__ import annotations

import math

import numpy as np

from recommendations.engine.dataset import Items, TrainingData, TrainingParams
from recommendations.engine.signals import SECONDS_PER_DAY, interaction_weights

# Trending compares a short half-life against a long one, both fractions of the settings' half-life.
TRENDING_SHORT_FRACTION = 0.25
TRENDING_LONG_FRACTION = 2.0


def popularity_scores(*, data: TrainingData, params: TrainingParams) -> np.ndarray:
    """Per item: the feedback-weighted, time-decayed sum of its interactions."""
    weights = interaction_weights(
        interactions=data.interactions,
        feedback_weights=params.feedback_weights,
        now=data.now,
        half_life_days=params.half_life_days,
    )
    return np.bincount(data.interactions.item, weights=weights, minlength=len(data.items)).astype(np.float64)


def _decayed_rate(*, data: TrainingData, params: TrainingParams, half_life_days: float) -> np.ndarray:
    """Weighted interactions per day, as seen through a decay of the given half-life.

    The decayed sum is divided by the integral of the decay over the span the data covers, so a
    steady item has the same rate under any half-life.
    """
    weights = interaction_weights(
        interactions=data.interactions,
        feedback_weights=params.feedback_weights,
        now=data.now,
        half_life_days=half_life_days,
    )
    decayed = np.bincount(data.interactions.item, weights=weights, minlength=len(data.items))
    span_days = max((data.now - float(data.interactions.timestamp.min())) / SECONDS_PER_DAY, 1.0)
    exposure_days = half_life_days / math.log(2.0) * (1.0 - 0.5 ** (span_days / half_life_days))
    return decayed / exposure_days


def trending_scores(*, data: TrainingData, params: TrainingParams) -> np.ndarray:
    """Per item: how far its recent rate exceeds its longer-term rate, in Poisson standard errors.

    Positive means trending; a steady item scores about zero whatever its volume.
    """
    if len(data.interactions) == 0:
        return np.zeros(len(data.items))
    short = _decayed_rate(
        data=data, params=params, half_life_days=max(params.half_life_days * TRENDING_SHORT_FRACTION, 1.0)
    )
    long = _decayed_rate(data=data, params=params, half_life_days=params.half_life_days * TRENDING_LONG_FRACTION)
    active = long[long > 0]
    # Smoothing: an item needs more than a blip to trend.
    prior = float(np.median(active)) if len(active) else 1.0
    return (short - long) / np.sqrt(long + prior)


def ranked(*, scores: np.ndarray, items: Items, k: int, indexes: np.ndarray | None = None) -> list[tuple[int, float]]:
    """The k best positive-scoring items (optionally among `indexes`) as (product id, score)."""
    candidates = np.arange(len(scores)) if indexes is None else np.asarray(indexes, dtype=np.int64)
    candidates = candidates[scores[candidates] > 0]
    order = np.lexsort((items.ids[candidates], -scores[candidates]))[:k]
    return [(int(items.ids[candidates[i]]), float(scores[candidates[i]])) for i in order]


def ranked_by_category(*, scores: np.ndarray, items: Items, k: int) -> dict[int, list[tuple[int, float]]]:
    result: dict[int, list[tuple[int, float]]] = {}
    categories = items.category
    for category in np.unique(categories[categories >= 0]):
        lines = ranked(scores=scores, items=items, k=k, indexes=np.flatnonzero(categories == category))
        if lines:
            result[int(category)] = lines
    return result


def new_arrivals(*, items: Items, now: float, new_arrival_days: int) -> list[int]:
    """Products created within `new_arrival_days` before `now`, newest first."""
    since = now - new_arrival_days * SECONDS_PER_DAY
    fresh = np.flatnonzero((items.created_at >= since) & (items.created_at <= now))
    order = np.lexsort((items.ids[fresh], -items.created_at[fresh]))
    return [int(items.ids[fresh[i]]) for i in order]
