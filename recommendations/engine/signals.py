"""Interaction weights and the sparse matrices every model starts from.

An interaction weighs `feedback_weights[kind]` (a purchase says more than a view) times a time decay
that halves every `half_life_days` before `now`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommendations.engine.dataset import FEEDBACK_KINDS, Baskets, Interactions, TrainingData

SECONDS_PER_DAY = 86_400.0


def kind_weights(feedback_weights: dict[str, float]) -> np.ndarray:
    """Weight per kind index; a kind missing from the settings weighs nothing."""
    return np.array([float(feedback_weights.get(kind, 0.0)) for kind in FEEDBACK_KINDS], dtype=np.float64)


def time_decay(*, timestamp: np.ndarray, now: float, half_life_days: float) -> np.ndarray:
    age_days = np.maximum(now - timestamp, 0.0) / SECONDS_PER_DAY
    return np.power(0.5, age_days / max(half_life_days, 1e-9))


def interaction_weights(
    *, interactions: Interactions, feedback_weights: dict[str, float], now: float, half_life_days: float | None
) -> np.ndarray:
    """Feedback weight × time decay per interaction (no decay when `half_life_days` is None)."""
    weights = kind_weights(feedback_weights)[interactions.kind.astype(np.int64)]
    if half_life_days is None:
        return weights
    return weights * time_decay(timestamp=interactions.timestamp, now=now, half_life_days=half_life_days)


def user_item_matrix(*, data: TrainingData, weights: np.ndarray) -> sp.csr_matrix:
    """Users × items, the weights of repeated interactions summed."""
    matrix = sp.csr_matrix(
        (weights, (data.interactions.user, data.interactions.item)),
        shape=(len(data.users), len(data.items)),
        dtype=np.float64,
    )
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def binary(matrix: sp.spmatrix) -> sp.csr_matrix:
    result = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    result.sum_duplicates()
    result.eliminate_zeros()
    result.data[:] = 1.0
    return result


def basket_matrix(*, baskets: Baskets, item_count: int) -> sp.csr_matrix:
    """Orders × items, 1 where the order holds the item."""
    rows = np.repeat(np.arange(len(baskets), dtype=np.int64), np.diff(baskets.offsets))
    matrix = sp.csr_matrix(
        (np.ones(len(baskets.item)), (rows, baskets.item)), shape=(len(baskets), item_count), dtype=np.float64
    )
    matrix.sum_duplicates()
    return binary(matrix)


def top_k_per_row(matrix: sp.csr_matrix, *, k: int, min_score: float = 0.0) -> dict[int, list[tuple[int, float]]]:
    """Row index -> the k largest (column, score) of the row above `min_score`, best first."""
    matrix = sp.csr_matrix(matrix)
    result: dict[int, list[tuple[int, float]]] = {}
    indptr, indices, values = matrix.indptr, matrix.indices, matrix.data
    for row in range(matrix.shape[0]):
        start, end = indptr[row], indptr[row + 1]
        if start == end:
            continue
        row_values = values[start:end]
        row_columns = indices[start:end]
        keep = row_values > min_score
        if not keep.any():
            continue
        row_values, row_columns = row_values[keep], row_columns[keep]
        if len(row_values) > k:
            chosen = np.argpartition(-row_values, k - 1)[:k]
            row_values, row_columns = row_values[chosen], row_columns[chosen]
        # Ties broken by column so that lists are deterministic.
        order = np.lexsort((row_columns, -row_values))
        result[row] = [(int(row_columns[i]), float(row_values[i])) for i in order]
    return result


def top_k_dense(scores: np.ndarray, *, k: int) -> np.ndarray:
    """Per row, the column indexes of the k largest scores, best first (ties by column)."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    # Sort the partition by column first, so that a stable sort by score breaks ties by column.
    part.sort(axis=1)
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)
