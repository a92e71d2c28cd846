"""Offline evaluation on a per-user temporal holdout: revopt's ranker beside plain baselines.

Every ranker is fitted on the same train part and ranks the whole catalog for each held-out user,
minus what that user touched in train; the top 10 are scored against the held-out items.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recommendations.engine.baselines import BASELINES, Scorer, fit_baseline
from recommendations.engine.collaborative import als_available
from recommendations.engine.dataset import TrainingData, TrainingParams
from recommendations.engine.metrics import ranking_metrics
from recommendations.engine.precomputed import Precomputed
from recommendations.engine.ranker import fit_revopt
from recommendations.engine.signals import top_k_dense
from recommendations.engine.split import temporal_split
from recommendations.engine.validation import seen_matrix

__all__ = [
    "METRIC_KEYS",
    "RANKERS",
    "compare",
    "evaluate_precomputed",
    "fit_ranker",
    "format_table",
    "holdout_metrics",
    "ranked_lists",
    "score_scorer",
    "temporal_split",
]

K = 10
BATCH_USERS = 512
METRIC_KEYS: tuple[str, ...] = ("precision@10", "recall@10", "ndcg@10", "map@10", "coverage", "novelty")
RANKERS: tuple[str, ...] = ("revopt", "random", "popularity", "item-knn", "lightfm-warp", "implicit-als")

Progress = Callable[[float, str], None]


def popularity_share(data: TrainingData) -> np.ndarray:
    seen = seen_matrix(data)
    return np.asarray(seen.sum(axis=0)).ravel() / max(len(data.users), 1)


def ranked_lists(scorer: Scorer, *, users: Sequence[int], seen: sp.csr_matrix, k: int = K) -> dict[int, list[int]]:
    """User index -> the top k item indexes of the scorer, items seen in train excluded."""
    users = np.asarray(sorted(users), dtype=np.int64)
    lists: dict[int, list[int]] = {}
    for start in range(0, len(users), BATCH_USERS):
        batch = users[start : start + BATCH_USERS]
        scores = np.array(scorer(batch), dtype=np.float32, copy=True)
        rows = seen[batch]
        scores[np.repeat(np.arange(len(batch)), np.diff(rows.indptr)), rows.indices] = -np.inf
        top = top_k_dense(scores, k=k)
        for row, user in enumerate(batch):
            lists[int(user)] = [int(item) for item in top[row] if np.isfinite(scores[row, item])]
    return lists


def score_scorer(scorer: Scorer, *, train: TrainingData, holdout: dict[int, set[int]]) -> dict[str, float]:
    lists = ranked_lists(scorer, users=list(holdout), seen=seen_matrix(train))
    return ranking_metrics(lists, holdout, k=K, catalog_size=len(train.items), popularity_share=popularity_share(train))


def holdout_metrics(data: TrainingData, params: TrainingParams) -> dict[str, float]:
    """revopt's ranker fitted on the train part of a temporal split, scored on its holdout."""
    train, holdout = temporal_split(data)
    if not holdout:
        return ranking_metrics({}, {}, k=K, catalog_size=len(data.items), popularity_share=np.zeros(0))
    return score_scorer(fit_ranker("revopt", train, params, seed=params.seed), train=train, holdout=holdout)


def evaluate_precomputed(
    precomputed: Precomputed, data_train: TrainingData, holdout: dict[int, set[int]]
) -> dict[str, float]:
    """Score a trained model's `for_customer` lists on a holdout (ids mapped through `data_train`).

    Products unknown to `data_train` and products the user touched in train are skipped; users
    without a list score zero.
    """
    item_index = {int(product_id): index for index, product_id in enumerate(data_train.items.ids)}
    seen = seen_matrix(data_train)
    lists: dict[int, list[int]] = {}
    for user in holdout:
        candidates = precomputed.for_customer.get(int(data_train.users.ids[user]), [])
        touched = set(seen.indices[seen.indptr[user] : seen.indptr[user + 1]].tolist())
        ranked = [item_index.get(candidate.product_id) for candidate in candidates]
        lists[user] = [item for item in ranked if item is not None and item not in touched][:K]
    return ranking_metrics(
        lists, holdout, k=K, catalog_size=len(data_train.items), popularity_share=popularity_share(data_train)
    )


def fit_ranker(name: str, train: TrainingData, params: TrainingParams, *, seed: int) -> Scorer:
    """Fit `name` on `train`, its hyperparameters chosen on an inner temporal split of `train` first."""
    # Single-threaded BLAS, as in `training.train` (implicit asks for it; busy cores punish more).
    with threadpool_limits(limits=1, user_api="blas"):
        if name == "revopt":
            return fit_revopt(train, params, seed=seed).scores
        return fit_baseline(name, train, params, seed=seed)


def compare(
    data: TrainingData,
    params: TrainingParams,
    rankers: list[str] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    progress: Progress | None = None,
) -> list[dict]:
    """One row per ranker: the mean and sd over seeds of each metric and of the fit time.

    The split is temporal, so the same for every seed. For each seed, each ranker (revopt's
    included) chooses its hyperparameters on an inner temporal split of the train part and is then
    fitted on all of it, so the sd covers the whole pipeline's run-to-run spread; the fit time
    includes that tuning.
    """
    names = (
        list(rankers)
        if rankers is not None
        else [name for name in RANKERS if name != "implicit-als" or als_available()]
    )
    unknown = [name for name in names if name != "revopt" and name not in BASELINES]
    if unknown:
        raise ValueError(f"unknown rankers: {', '.join(unknown)}")
    train, holdout = temporal_split(data)
    runs = len(names) * len(seeds)
    rows: list[dict] = []
    done = 0
    for name in names:
        per_seed: list[dict[str, float]] = []
        for seed in seeds:
            started = time.perf_counter()
            scorer = fit_ranker(name, train, params, seed=seed)
            fitted = time.perf_counter() - started
            metrics = score_scorer(scorer, train=train, holdout=holdout)
            metrics["fit_seconds"] = fitted
            per_seed.append(metrics)
            done += 1
            if progress:
                progress(done / runs, f"{name} seed {seed}: ndcg@10 {metrics['ndcg@10']:.4f}")
        row: dict = {"ranker": name, "seeds": len(seeds), "users": int(per_seed[0]["users"])}
        for key in (*METRIC_KEYS, "fit_seconds"):
            values = [metrics[key] for metrics in per_seed]
            row[key] = statistics.fmean(values)
            row[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """A plain-text table: mean ± sd per metric, one line per ranker."""
    headers = ["ranker", *METRIC_KEYS, "fit s"]
    lines = [headers]
    for row in rows:
        cells = [row["ranker"]]
        for key in METRIC_KEYS:
            decimals = 2 if key == "novelty" else 4
            cells.append(f"{row[key]:.{decimals}f} ± {row[f'{key}_sd']:.{decimals}f}")
        cells.append(f"{row.get('fit_seconds', 0.0):.1f}")
        lines.append(cells)
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    rendered = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)
