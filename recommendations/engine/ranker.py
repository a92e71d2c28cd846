"""revopt's personal ranker: the collaborative core that `for_customer` serves. Two stages.

1. A blend of signals, each standardised per user over the catalog, proposes candidates:
   - "ease": EASE, the linear item-to-item model (`collaborative.py`), the anchor of the blend;
   - "hybrid": the LightFM hybrid (`hybrid.py`: WARP with category / brand / price band and
     segment / device);
   - "als": implicit's ALS factorisation, when `implicit` is installed;
   - "popularity": how many customers interacted with the item;
   - "recent": popularity at the customer's time, i.e. interactions in the window before the
     customer's latest one (for today's shoppers "popular lately"; it never looks past their time).
2. A gradient-boosted re-ranker (`rerank.py`) re-orders the blend's top candidates with those
   signals plus time and taste context.

Everything is chosen on an inner temporal split of the training data, never on an evaluation
holdout: EASE's regularisation and how much recent history counts (for NDCG@10), the popularity
window and blend weights (for the recall of the candidates the re-ranker sees, or NDCG@10 when the
data is too small to train one), and the re-ranker itself (labels: the inner split's held-out items).
Then every model is refitted on all of the data with the chosen settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from recommendations.engine.collaborative import (
    MAX_ITEMS,
    EaseModel,
    FactorModel,
    als_available,
    covered_items,
    ease_from_gram,
    fit_als,
    gram_matrix,
)
from recommendations.engine.dataset import TrainingData, TrainingParams
from recommendations.engine.hybrid import HybridModel, fit_hybrid
from recommendations.engine.rerank import (
    MAX_TRAINING_USERS,
    MIN_POSITIVES,
    RECENT_WINDOWS,
    RERANK_CANDIDATES,
    Context,
    Reranker,
    build_context,
    candidate_features,
    fit_reranker,
)
from recommendations.engine.signals import SECONDS_PER_DAY, kind_weights, top_k_dense
from recommendations.engine.validation import sample_users, seen_matrix, validation_set

Progress = Callable[[float, str], None]

# How much the feedback kinds' weights count in the models' input (see `history_matrix`).
KIND_EXPONENT_GRID = (0.0, 0.5, 1.0)
EASE_L2_GRID = (100.0, 200.0, 400.0, 800.0)
# Days over which a customer's older history halves its say in EASE's query (None: all history alike).
QUERY_HALF_LIFE_GRID: tuple[float | None, ...] = (None, 30.0, 365.0)
WINDOW_BINS_GRID = (1, 4, 16)
TIME_BINS = 64
WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
ASCENT_ROUNDS = 2
# Tuning fits every model on an inner split of at most this many customers (and then EASE on at
# most this many items); EASE's regularisation is scaled back to the full data, since the Gram
# matrix grows with the number of customers.
TUNING_USERS = 6_000
TUNING_MAX_ITEMS = 2_500
# Above this many interactions there are enough customers that scoring their candidates dominates
# training: the re-ranker gets fewer trees.
LARGE_DATA = 300_000


@dataclass(frozen=True)
class BlendConfig:
    kind_exponent: float = 1.0
    ease_l2: float = 200.0
    query_half_life_days: float | None = None
    window_bins: int = 4
    weights: dict[str, float] = field(
        default_factory=lambda: {"ease": 1.0, "hybrid": 0.25, "als": 0.25, "popularity": 0.1, "recent": 0.1}
    )

    def to_dict(self) -> dict:
        return {
            "kind_exponent": self.kind_exponent,
            "ease_l2": self.ease_l2,
            "query_half_life_days": self.query_half_life_days,
            "window_bins": self.window_bins,
            "weights": dict(self.weights),
        }


def history_matrix(data: TrainingData, params: TrainingParams, *, kind_exponent: float = 1.0) -> sp.csr_matrix:
    """Users × items: the strongest feedback each user gave each item, as (weight / strongest weight)
    to the power `kind_exponent`: 1 keeps the settings' ratios (a view is 1/8 of a purchase), 0 makes
    every kind count alike."""
    weights = kind_weights(params.feedback_weights)
    strongest = weights.max() if weights.max() > 0 else 1.0
    values = np.where(weights > 0, (weights / strongest) ** kind_exponent, 0.0)[data.interactions.kind.astype(np.int64)]
    keep = values > 0
    users, items, kept = data.interactions.user[keep], data.interactions.item[keep], values[keep]
    if len(kept) == 0:
        return sp.csr_matrix((len(data.users), len(data.items)))
    # Repeats keep their strongest kind rather than adding up: ten views are not a purchase.
    order = np.lexsort((kept, items, users))
    users, items, kept = users[order], items[order], kept[order]
    last = np.r_[(users[1:] != users[:-1]) | (items[1:] != items[:-1]), True]
    return sp.csr_matrix((kept[last], (users[last], items[last])), shape=(len(data.users), len(data.items)))


def history_age_days(data: TrainingData, history: sp.csr_matrix) -> sp.csr_matrix:
    """Same pattern as `history`: days from the user's last touch of each item to the user's last touch of anything."""
    interactions = data.interactions
    if len(interactions) == 0:
        return sp.csr_matrix(history.shape)
    # The latest timestamp of each (user, item) pair: sort so that it comes last within the pair.
    order = np.lexsort((interactions.timestamp, interactions.item, interactions.user))
    users, items, times = interactions.user[order], interactions.item[order], interactions.timestamp[order]
    last = np.r_[(users[1:] != users[:-1]) | (items[1:] != items[:-1]), True]
    latest_user = np.full(history.shape[0], -np.inf)
    np.maximum.at(latest_user, users, times)
    ages = np.maximum(latest_user[users[last]] - times[last], 0.0) / SECONDS_PER_DAY
    # +1 day keeps a zero age stored in the sparse pattern.
    matrix = sp.csr_matrix((ages + 1.0, (users[last], items[last])), shape=history.shape)
    matrix = matrix.multiply(history > 0).tocsr()
    matrix.sort_indices()
    matrix.data -= 1.0
    return matrix


@dataclass(frozen=True)
class RecentPopularity:
    """Item counts per time bin (equal-count bins over the training interactions), cumulated."""

    cumulative: np.ndarray  # items × bins (float32): interactions up to the end of each bin
    user_bin: np.ndarray  # the bin of each user's latest interaction, -1 for none

    def scores(self, users: np.ndarray, window_bins: int) -> np.ndarray:
        bins = np.maximum(self.user_bin[users], 0)
        upper = self.cumulative[:, bins].T
        lower_bins = bins - window_bins
        lower = np.where((lower_bins >= 0)[:, None], self.cumulative[:, np.maximum(lower_bins, 0)].T, 0.0)
        return np.log1p(np.maximum(upper - lower, 0.0)).astype(np.float32)

    def at(self, users: np.ndarray, items: np.ndarray, window_bins: int) -> np.ndarray:
        """`scores` for users × n given items only (each row of `items` belongs to that row's user)."""
        bins = np.maximum(self.user_bin[users], 0)[:, None]
        upper = self.cumulative[items, bins]
        lower_bins = bins - window_bins
        lower = np.where(lower_bins >= 0, self.cumulative[items, np.maximum(lower_bins, 0)], 0.0)
        return np.log1p(np.maximum(upper - lower, 0.0)).astype(np.float32)


def recent_popularity(data: TrainingData) -> RecentPopularity:
    interactions = data.interactions
    item_count, user_count = len(data.items), len(data.users)
    if len(interactions) == 0:
        return RecentPopularity(
            cumulative=np.zeros((item_count, 1), dtype=np.float32), user_bin=np.full(user_count, -1)
        )
    edges = np.unique(np.quantile(interactions.timestamp, np.linspace(0.0, 1.0, TIME_BINS + 1)[1:-1]))
    bins = np.searchsorted(edges, interactions.timestamp, side="right")
    counts = sp.csr_matrix(
        (np.ones(len(interactions)), (interactions.item, bins)), shape=(item_count, len(edges) + 1)
    ).toarray()
    latest = np.full(user_count, -np.inf)
    np.maximum.at(latest, interactions.user, interactions.timestamp)
    user_bin = np.where(np.isfinite(latest), np.searchsorted(edges, latest, side="right"), -1)
    return RecentPopularity(cumulative=np.cumsum(counts, axis=1).astype(np.float32), user_bin=user_bin.astype(np.int64))


def standardise(scores: np.ndarray) -> np.ndarray:
    """Per row: zero mean, unit spread (a constant row becomes zeros)."""
    scores = np.asarray(scores, dtype=np.float32)
    mean = scores.mean(axis=1, keepdims=True)
    spread = scores.std(axis=1, keepdims=True)
    return (scores - mean) / np.where(spread > 0, spread, 1.0)


def blend(standardised: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    total: np.ndarray | None = None
    for name, weight in weights.items():
        if weight == 0 or name not in standardised:
            continue
        part = weight * standardised[name]
        total = part if total is None else total + part
    if total is None:
        return np.zeros(next(iter(standardised.values())).shape, dtype=np.float32)
    return total


def ease_query(
    history: sp.csr_matrix, ages: sp.csr_matrix, users: np.ndarray, half_life_days: float | None
) -> sp.csr_matrix:
    """The users' history rows, older items halved every `half_life_days` (None: as they are)."""
    rows = history[users]
    if half_life_days is None:
        return rows
    ages = ages[users]
    decay = sp.csr_matrix((np.power(0.5, ages.data / half_life_days), ages.indices, ages.indptr), shape=ages.shape)
    return rows.multiply(decay).tocsr()


@dataclass(frozen=True)
class Parts:
    """Everything the blend and the re-ranker read, fitted on one training set."""

    history: sp.csr_matrix
    seen: sp.csr_matrix  # users × items, 1 for any interaction of any kind
    ages: sp.csr_matrix
    covered: np.ndarray
    gram: np.ndarray
    hybrid: HybridModel
    als: FactorModel | None
    popularity: np.ndarray
    recent: RecentPopularity
    context: Context

    def query(self, users: np.ndarray, half_life_days: float | None) -> sp.csr_matrix:
        return ease_query(self.history, self.ages, users, half_life_days)

    def standardised(self, users: np.ndarray, ease: EaseModel, config: BlendConfig) -> dict[str, np.ndarray]:
        """Every signal for these users over the whole catalog, standardised per user."""
        item_count = len(self.popularity)
        raw = {
            "ease": ease.scores(self.query(users, config.query_half_life_days)),
            "hybrid": self.hybrid.scores(users),
            "popularity": np.broadcast_to(self.popularity, (len(users), item_count)),
            "recent": self.recent.scores(users, config.window_bins),
        }
        if self.als is not None:
            raw["als"] = self.als.scores(users)
        return {name: standardise(value) for name, value in raw.items()}

    def seen_penalty(self, users: np.ndarray) -> np.ndarray:
        """Users × items: -inf where the user already interacted with the item, else 0."""
        rows = self.seen[users]
        penalty = np.zeros((len(users), self.seen.shape[1]), dtype=np.float32)
        penalty[np.repeat(np.arange(len(users)), np.diff(rows.indptr)), rows.indices] = -np.inf
        return penalty


def fit_parts(
    data: TrainingData,
    params: TrainingParams,
    *,
    seed: int,
    threads: int,
    kind_exponent: float = 1.0,
    max_items: int = MAX_ITEMS,
) -> Parts:
    history = history_matrix(data, params, kind_exponent=kind_exponent)
    covered = covered_items(history, max_items=max_items)
    return Parts(
        history=history,
        seen=seen_matrix(data),
        ages=history_age_days(data, history),
        covered=covered,
        gram=gram_matrix(history, covered),
        hybrid=fit_hybrid(history, items=data.items, users=data.users, seed=seed, threads=threads),
        # ALS's cost grows with factors²: large data gets half the factors.
        als=fit_als(history, factors=64 if history.nnz <= LARGE_DATA else 32, seed=seed, threads=threads)
        if als_available()
        else None,
        popularity=np.log1p(np.asarray((history > 0).sum(axis=0)).ravel()).astype(np.float32),
        recent=recent_popularity(data),
        context=build_context(data),
    )


def rerank_inputs(
    parts: Parts, users: np.ndarray, ease: EaseModel, config: BlendConfig, *, k: int = RERANK_CANDIDATES
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(blended scores, seen-masked blend, the blend's top k unseen items per user (users × k), the
    features of its first RERANK_CANDIDATES) for these users."""
    standardised = parts.standardised(users, ease, config)
    blended = blend(standardised, config.weights)
    masked = blended + parts.seen_penalty(users)
    candidates = top_k_dense(masked, k=max(k, RERANK_CANDIDATES))
    features = candidate_features(
        context=parts.context,
        history=parts.history,
        users=users,
        candidates=candidates[:, :RERANK_CANDIDATES],
        standardised=standardised,
        blended=blended,
        recent={window: parts.recent.at(users, candidates[:, :RERANK_CANDIDATES], window) for window in RECENT_WINDOWS},
    )
    return blended, masked, candidates, features


@dataclass(frozen=True)
class Tuned:
    """What the inner split chose: the blend, and the re-ranker trained on it (None: blend only)."""

    config: BlendConfig
    reranker: Reranker | None


@dataclass(frozen=True)
class RevoptRanker:
    tuned: Tuned
    parts: Parts
    ease: EaseModel

    @property
    def config(self) -> BlendConfig:
        return self.tuned.config

    @property
    def history(self) -> sp.csr_matrix:
        return self.parts.history

    @property
    def hybrid(self) -> HybridModel:
        return self.parts.hybrid

    def scores(self, users: np.ndarray) -> np.ndarray:
        """Users × items, higher is better. With a re-ranker, the blend's top unseen candidates score
        the re-ranker's probability and every other item less than the row's lowest probability, in
        the blend's order."""
        users = np.asarray(users, dtype=np.int64)
        if self.tuned.reranker is None:
            return blend(self.parts.standardised(users, self.ease, self.config), self.config.weights)
        blended, masked, candidates, features = rerank_inputs(self.parts, users, self.ease, self.config)
        probabilities = self.tuned.reranker.predict(features).reshape(candidates.shape)
        rows = np.arange(len(users))[:, None]
        reranked = np.isfinite(masked[rows, candidates])
        floor = np.where(reranked, probabilities, np.inf).min(axis=1, keepdims=True)
        floor = np.where(np.isfinite(floor), floor, 1.0)
        top = blended.max(axis=1, keepdims=True)
        result = _below(floor, blended, top)
        result[rows, candidates] = np.where(reranked, probabilities, result[rows, candidates])
        return result

    def top(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, scores), each users × k, best first: the same order as `scores` over the items the
        user never touched, without building the dense re-ranked matrix. Scores of -inf pad a row
        when fewer than k items are left."""
        users = np.asarray(users, dtype=np.int64)
        if self.tuned.reranker is None:
            masked = blend(self.parts.standardised(users, self.ease, self.config), self.config.weights)
            masked = masked + self.parts.seen_penalty(users)
            items = top_k_dense(masked, k=k)
            return items, np.take_along_axis(masked, items, axis=1)
        blended, masked, candidates, features = rerank_inputs(self.parts, users, self.ease, self.config, k=k)
        head = candidates[:, :RERANK_CANDIDATES]
        rows = np.arange(len(users))[:, None]
        probabilities = self.tuned.reranker.predict(features).reshape(head.shape)
        probabilities = np.where(np.isfinite(masked[rows, head]), probabilities, -np.inf)
        order = np.argsort(-probabilities, axis=1, kind="stable")
        head, head_scores = np.take_along_axis(head, order, axis=1), np.take_along_axis(probabilities, order, axis=1)
        tail = candidates[:, RERANK_CANDIDATES:]
        floor = np.where(np.isfinite(head_scores), head_scores, np.inf).min(axis=1, keepdims=True)
        floor = np.where(np.isfinite(floor), floor, 1.0)
        top_blend = blended.max(axis=1, keepdims=True)
        tail_scores = _below(floor, blended[rows, tail], top_blend)
        tail_scores = np.where(np.isfinite(masked[rows, tail]), tail_scores, -np.inf)
        items = np.concatenate([head, tail], axis=1)[:, :k]
        scores = np.concatenate([head_scores, tail_scores], axis=1)[:, :k].astype(np.float32)
        return items, scores


def _below(floor: np.ndarray, blended: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Blend scores squashed into (0, floor / 2], order kept (a hyperbola, which never underflows)."""
    return (0.5 * floor / (1.0 + np.maximum(top - blended, 0.0))).astype(np.float32)


def _ascend(
    standardised: dict[str, np.ndarray], objective: Callable[[np.ndarray], float], start: dict[str, float]
) -> tuple[float, dict[str, float]]:
    """Coordinate ascent on the blend weights (EASE's fixed at 1) over WEIGHT_GRID."""
    weights = dict(start)
    best = objective(blend(standardised, weights))
    for _ in range(ASCENT_ROUNDS):
        improved = False
        for name in standardised:
            if name == "ease":
                continue
            for value in WEIGHT_GRID:
                if value == weights.get(name, 0.0):
                    continue
                trial = {**weights, name: value}
                score = objective(blend(standardised, trial))
                if score > best + 1e-6:
                    best, weights, improved = score, trial, True
        if not improved:
            break
    return best, weights


def tune(
    data: TrainingData, params: TrainingParams, *, seed: int = 0, threads: int = 2, progress: Progress | None = None
) -> Tuned:
    """Choose the blend, then train the re-ranker, on an inner temporal split of `data`.

    Too small a split (few held-out users or positives) gives the default blend and no re-ranker.
    """
    sample, thinning = sample_users(data, max_users=TUNING_USERS, seed=seed)
    validation = validation_set(sample, seed=seed)
    if validation is None:
        return Tuned(config=BlendConfig(), reranker=None)
    # Large data (thinned for tuning) also tunes EASE on fewer items: each grid point is an inversion.
    max_items = MAX_ITEMS if thinning == 1.0 else TUNING_MAX_ITEMS
    users = validation.users

    # EASE alone first: how much the feedback kinds' weights count, its regularisation, and how much
    # recent history counts. (Data with one kind of feedback has nothing to weigh.)
    used_kinds = np.unique(validation.train.interactions.kind)
    exponents = KIND_EXPONENT_GRID if len(used_kinds) > 1 else (1.0,)
    best_ease: tuple[float, float, float, float | None] = (-1.0, 1.0, EASE_L2_GRID[0], None)
    ages: sp.csr_matrix | None = None
    for exponent in exponents:
        history = history_matrix(validation.train, params, kind_exponent=exponent)
        ages = history_age_days(validation.train, history) if ages is None else ages
        covered = covered_items(history, max_items=max_items)
        gram = gram_matrix(history, covered)
        for l2 in EASE_L2_GRID:
            ease = ease_from_gram(gram=gram, covered=covered, item_count=len(data.items), l2=l2)
            for half_life in QUERY_HALF_LIFE_GRID:
                query = ease_query(history, ages, users, half_life)
                ndcg = validation.ndcg(validation.restrict(standardise(ease.scores(query))))
                if ndcg > best_ease[0]:
                    best_ease = (ndcg, exponent, l2, half_life)
    _, exponent, l2, half_life = best_ease
    if progress:
        progress(0.3, "ranker: EASE chosen")
    parts = fit_parts(validation.train, params, seed=seed, threads=threads, kind_exponent=exponent, max_items=max_items)
    ease = ease_from_gram(gram=parts.gram, covered=parts.covered, item_count=len(data.items), l2=l2)
    if progress:
        progress(0.5, "ranker: inner models fitted")

    # With enough held-out items to train the re-ranker, the blend only proposes its candidates: it
    # is tuned for their recall. Otherwise it is the final order, tuned for NDCG@10.
    reranking = int(validation.relevant.sum()) >= 2 * MIN_POSITIVES

    def objective(scores: np.ndarray) -> float:
        return validation.recall(scores, RERANK_CANDIDATES) if reranking else validation.ndcg(scores)

    best: tuple[float, dict[str, float], int] = (-1.0, {}, WINDOW_BINS_GRID[0])
    for window_bins in WINDOW_BINS_GRID:
        config = BlendConfig(
            kind_exponent=exponent, ease_l2=l2, query_half_life_days=half_life, window_bins=window_bins
        )
        standardised = {
            name: validation.restrict(value) for name, value in parts.standardised(users, ease, config).items()
        }
        start = best[1] or {name: (1.0 if name == "ease" else 0.0) for name in standardised}
        score, weights = _ascend(standardised, objective, start)
        if score > best[0]:
            best = (score, weights, window_bins)
    config = BlendConfig(
        kind_exponent=exponent, ease_l2=l2, query_half_life_days=half_life, window_bins=best[2], weights=best[1]
    )
    if progress:
        progress(0.7, "ranker: blend chosen")

    learners = np.arange(len(users))
    if len(learners) > MAX_TRAINING_USERS:
        learners = np.sort(np.random.default_rng(seed).choice(learners, MAX_TRAINING_USERS, replace=False))
    _, _, candidates, features = rerank_inputs(parts, users[learners], ease, config)
    labels = validation.is_relevant(candidates, rows=learners)
    reranker = checked_reranker(
        features, labels, ideal=validation.ideal[learners], seed=seed, fast=len(data.interactions) > LARGE_DATA
    )
    if progress:
        progress(0.9, "ranker: re-ranker " + ("trained" if reranker else "not worth it"))
    return Tuned(config=replace(config, ease_l2=l2 * thinning), reranker=reranker)


def _ndcg_of_order(scores: np.ndarray, labels: np.ndarray, ideal: np.ndarray) -> float:
    """Mean NDCG@10 of ordering each row's candidates by `scores` (users × N), ties kept in place."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    gains = np.take_along_axis(labels, order, axis=1) / np.log2(np.arange(2, order.shape[1] + 2))
    return float(np.mean(gains.sum(axis=1) / ideal))


def checked_reranker(
    features: np.ndarray, labels: np.ndarray, *, ideal: np.ndarray, seed: int, fast: bool
) -> Reranker | None:
    """The re-ranker only if it beats the blend's own order out of sample: two-fold over the inner
    split's customers (train on one half, score NDCG@10 on the other, and back), mean gain above 0.
    The re-ranker kept is then trained on all of them."""
    users, count = labels.shape
    first = np.zeros(users, dtype=bool)
    first[np.random.default_rng(seed).permutation(users)[: users // 2]] = True
    # The candidates arrive in the blend's order.
    blend_scores = np.tile(-np.arange(count, dtype=np.float64), (users, 1))
    gains = []
    for learn in (first, ~first):
        trial = fit_reranker(features[np.repeat(learn, count)], labels[learn].ravel(), seed=seed, fast=fast)
        if trial is None:
            return None
        held = ~learn
        reranked = trial.predict(features[np.repeat(held, count)]).reshape(-1, count)
        gains.append(
            _ndcg_of_order(reranked, labels[held], ideal[held])
            - _ndcg_of_order(blend_scores[held], labels[held], ideal[held])
        )
    if float(np.mean(gains)) <= 0.0:
        return None
    return fit_reranker(features, labels.ravel(), seed=seed, fast=fast)


def fit_revopt(
    data: TrainingData,
    params: TrainingParams,
    *,
    seed: int | None = None,
    tuned: Tuned | None = None,
    threads: int = 2,
    progress: Progress | None = None,
) -> RevoptRanker:
    """Tune on an inner split (unless `tuned` is given), then fit every part on all of `data`."""
    seed = params.seed if seed is None else seed
    if tuned is None:
        tuned = tune(data, params, seed=seed, threads=threads, progress=progress)
    parts = fit_parts(data, params, seed=seed, threads=threads, kind_exponent=tuned.config.kind_exponent)
    ease = ease_from_gram(gram=parts.gram, covered=parts.covered, item_count=len(data.items), l2=tuned.config.ease_l2)
    if progress:
        progress(1.0, "ranker fitted")
    return RevoptRanker(tuned=tuned, parts=parts, ease=ease)
