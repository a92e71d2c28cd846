"""The plain rankers revopt's ranker is measured against, each fitted on the same training data.

Every baseline returns a scorer: user indexes -> users × items scores (higher is better). They see
interactions as binary (the user touched the item), which is how they are usually benchmarked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommendations.engine.collaborative import fit_als
from recommendations.engine.dataset import TrainingData, TrainingParams
from recommendations.engine.hybrid import fit_lightfm
from recommendations.engine.validation import seen_matrix, validation_set

__all__ = ["BASELINES", "GRIDS", "Scorer", "fit_baseline", "seen_matrix", "tune_baseline"]

Scorer = Callable[[np.ndarray], np.ndarray]

ITEM_KNN_NEIGHBOURS = 100


def fit_random(data: TrainingData, params: TrainingParams, *, seed: int) -> Scorer:
    item_count = len(data.items)

    def score(users: np.ndarray) -> np.ndarray:
        generator = np.random.default_rng([seed, int(users[0]) if len(users) else 0])
        return generator.random((len(users), item_count), dtype=np.float32)

    return score


def fit_popularity(data: TrainingData, params: TrainingParams, *, seed: int) -> Scorer:
    counts = np.asarray(seen_matrix(data).sum(axis=0)).ravel().astype(np.float32)
    return lambda users: np.broadcast_to(counts, (len(users), len(counts)))


@dataclass(frozen=True)
class _ItemKnn:
    seen: sp.csr_matrix
    similarity: sp.csr_matrix  # items × items, each row its top neighbours

    def __call__(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.seen[users] @ self.similarity).todense(), dtype=np.float32)


def fit_item_knn(
    data: TrainingData, params: TrainingParams, *, seed: int, neighbours: int = ITEM_KNN_NEIGHBOURS
) -> Scorer:
    """Cosine item-item similarity, each item keeping its `neighbours` nearest; score = Σ over history."""
    seen = seen_matrix(data)
    columns = normalize(seen.T.tocsr(), norm="l2", axis=1)
    similarity = (columns @ columns.T).tocsr()
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    rows, cols, values = [], [], []
    for item in range(similarity.shape[0]):
        start, end = similarity.indptr[item], similarity.indptr[item + 1]
        if start == end:
            continue
        row_values, row_cols = similarity.data[start:end], similarity.indices[start:end]
        if len(row_values) > neighbours:
            chosen = np.argpartition(-row_values, neighbours - 1)[:neighbours]
            row_values, row_cols = row_values[chosen], row_cols[chosen]
        rows.append(np.full(len(row_cols), item))
        cols.append(row_cols)
        values.append(row_values)
    if rows:
        pruned = sp.csr_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=similarity.shape
        )
    else:
        pruned = sp.csr_matrix(similarity.shape)
    # Row h holds h's neighbours; scoring sums, over the history items h, similarity(h, j).
    return _ItemKnn(seen=seen, similarity=pruned)


def fit_lightfm_warp(data: TrainingData, params: TrainingParams, *, seed: int, components: int = 64) -> Scorer:
    """Plain LightFM WARP: identity features only."""
    return fit_lightfm(seen_matrix(data), components=components, epochs=30, seed=seed).scores


def fit_implicit_als(
    data: TrainingData,
    params: TrainingParams,
    *,
    seed: int,
    factors: int = 64,
    regularization: float = 5.0,
    alpha: float = 1.0,
) -> Scorer:
    return fit_als(seen_matrix(data), factors=factors, regularization=regularization, alpha=alpha, seed=seed).scores


BASELINES: dict[str, Callable[..., Scorer]] = {
    "random": fit_random,
    "popularity": fit_popularity,
    "item-knn": fit_item_knn,
    "lightfm-warp": fit_lightfm_warp,
    "implicit-als": fit_implicit_als,
}

# Each baseline's hyperparameters are chosen from these on an inner temporal split of the training
# data, exactly as revopt's ranker chooses its own.
GRIDS: dict[str, list[dict]] = {
    "random": [{}],
    "popularity": [{}],
    "item-knn": [{"neighbours": neighbours} for neighbours in (20, 50, 100, 200)],
    "lightfm-warp": [{"components": components} for components in (32, 64, 128)],
    "implicit-als": [
        # alpha (confidence per interaction) 5, 10 and 40 never beat 1 on MovieLens' inner split.
        {"factors": factors, "regularization": regularization, "alpha": 1.0}
        for factors in (32, 64, 128)
        for regularization in (0.05, 1.0, 5.0, 10.0)
    ],
}


def tune_baseline(name: str, data: TrainingData, params: TrainingParams, *, seed: int) -> dict:
    """The grid point of `name` with the best NDCG@10 on an inner temporal split of `data`."""
    grid = GRIDS[name]
    validation = validation_set(data, seed=seed)
    if len(grid) == 1 or validation is None:
        return grid[0]
    best = (-1.0, grid[0])
    for hyperparameters in grid:
        scorer = BASELINES[name](validation.train, params, seed=seed, **hyperparameters)
        ndcg = validation.ndcg(validation.restrict(scorer(validation.users)))
        if ndcg > best[0]:
            best = (ndcg, hyperparameters)
    return best[1]


def fit_baseline(name: str, data: TrainingData, params: TrainingParams, *, seed: int) -> Scorer:
    hyperparameters = tune_baseline(name, data, params, seed=seed)
    return BASELINES[name](data, params, seed=seed, **hyperparameters)
