"""One training: every candidate list serving reads, from one `TrainingData`.

Stages (each reports progress as it finishes): popularity and trending, co-view and co-purchase
neighbours, association rules and bundles, content similarity, the personal ranker (tuned on an inner
temporal split, then refitted), personal candidates with their explanations, item vectors.
Every key and product in the result is a database id.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize
from sklearn.utils.extmath import randomized_svd
from threadpoolctl import threadpool_limits

from recommendations.engine.association import association_rules, bundles
from recommendations.engine.content import content_matrix, similar_content
from recommendations.engine.dataset import KIND_INDEX, TrainingData, TrainingParams
from recommendations.engine.neighbours import purchased_together, viewed_together
from recommendations.engine.popularity import (
    new_arrivals,
    popularity_scores,
    ranked,
    ranked_by_category,
    trending_scores,
)
from recommendations.engine.precomputed import BoughtTogether, Candidate, Precomputed
from recommendations.engine.ranker import RevoptRanker, fit_revopt

Progress = Callable[[float, str], None]

GLOBAL_LIST_LENGTH = 200
CATEGORY_LIST_LENGTH = 50
ITEM_VECTOR_DIMENSIONS = 24
BATCH_USERS = 512


def _noop(fraction: float, message: str) -> None:
    return None


def train(data: TrainingData, params: TrainingParams, progress: Progress | None = None) -> Precomputed:
    # Single-threaded BLAS: implicit asks for it, and on a worker whose cores are busy, BLAS threads
    # spinning against each other made EASE's inversions ten times slower than one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        return _train(data, params, progress or _noop)


def _train(data: TrainingData, params: TrainingParams, report: Progress) -> Precomputed:
    ids = data.items.ids
    k = params.neighbours_per_item

    def by_id(lists: dict[int, list[tuple[int, float]]]) -> dict[int, list[tuple[int, float]]]:
        return {int(ids[item]): [(int(ids[other]), score) for other, score in pairs] for item, pairs in lists.items()}

    result = Precomputed(
        product_category={
            int(product): int(category)
            for product, category in zip(ids, data.items.category, strict=True)
            if category >= 0
        }
    )
    has_interactions = len(data.interactions) > 0
    if has_interactions:
        popularity = popularity_scores(data=data, params=params)
        trending = trending_scores(data=data, params=params)
        result.popular = ranked(scores=popularity, items=data.items, k=GLOBAL_LIST_LENGTH)
        result.trending = ranked(scores=trending, items=data.items, k=GLOBAL_LIST_LENGTH)
        result.popular_by_category = ranked_by_category(scores=popularity, items=data.items, k=CATEGORY_LIST_LENGTH)
        result.trending_by_category = ranked_by_category(scores=trending, items=data.items, k=CATEGORY_LIST_LENGTH)
    result.new_arrivals = new_arrivals(items=data.items, now=data.now, new_arrival_days=params.new_arrival_days)
    report(0.05, "popularity, trending and new arrivals")

    if has_interactions:
        result.viewed_together = by_id(viewed_together(data, k=k))
        result.purchased_together = by_id(purchased_together(data, k=k))
    report(0.15, "co-view and co-purchase neighbours")

    rules = association_rules(baskets=data.baskets, item_count=len(data.items), k=k)
    result.bought_together = {
        int(ids[antecedent]): [
            BoughtTogether(
                product_id=int(ids[rule.consequent]), support=rule.support, confidence=rule.confidence, lift=rule.lift
            )
            for rule in item_rules
        ]
        for antecedent, item_rules in rules.items()
    }
    result.bundles = {
        int(ids[anchor]): [[int(ids[item]) for item in bundle] for bundle in item_bundles]
        for anchor, item_bundles in bundles(baskets=data.baskets, item_count=len(data.items), rules=rules).items()
    }
    report(0.25, "association rules and bundles")

    if len(data.items):
        result.similar_content = by_id(similar_content(data.items, k=k))
    report(0.35, "content similarity")

    ranker: RevoptRanker | None = None
    if has_interactions:
        ranker = fit_revopt(data, params, progress=lambda fraction, message: report(0.35 + 0.35 * fraction, message))
        report(0.7, "personal ranker fitted")
        result.for_customer = personal_candidates(data, ranker, k=params.candidates_per_user)
    report(0.9, "personal candidates")

    result.item_vectors = item_vectors(data, ranker)
    report(1.0, "item vectors")
    return result


def _strongest_kinds(data: TrainingData) -> sp.csr_matrix:
    """Users × items: 1 + the strongest kind index each user gave each item (0 = never)."""
    # Summing duplicates would mix kinds; keep the maximum instead.
    order = np.lexsort((data.interactions.kind, data.interactions.item, data.interactions.user))
    users, items, kinds = data.interactions.user[order], data.interactions.item[order], data.interactions.kind[order]
    last = np.r_[(users[1:] != users[:-1]) | (items[1:] != items[:-1]), True] if len(users) else np.zeros(0, bool)
    return sp.csr_matrix(
        (kinds[last].astype(np.float64) + 1.0, (users[last], items[last])), shape=(len(data.users), len(data.items))
    )


def personal_candidates(data: TrainingData, ranker: RevoptRanker, *, k: int) -> dict[int, list[Candidate]]:
    """Customer id -> the ranker's top k products the customer never interacted with, each explained.

    The explanation names the history item that adds most to the candidate's EASE score (x_uh · B_hj);
    for items EASE does not cover, the history item closest in the hybrid model's embedding space.
    "purchased" when the customer bought that item, "viewed" otherwise; "for_you" when no history
    item pulls the candidate up.
    """
    strongest = _strongest_kinds(data)
    strongest.sort_indices()
    purchase = KIND_INDEX["purchase"] + 1.0
    embeddings = normalize(ranker.hybrid.item_embeddings, norm="l2", axis=1)
    in_ease = np.full(len(data.items), -1, dtype=np.int64)
    in_ease[ranker.ease.covered] = np.arange(len(ranker.ease.covered))
    ids = data.items.ids
    # Indexed by an explaining item index; -1 (nothing explains it) picks the trailing None.
    because_ids = np.array([*ids.tolist(), None], dtype=object)
    history = ranker.history.tocsr()
    history.sort_indices()
    users = np.flatnonzero(np.diff(strongest.indptr) > 0)
    result: dict[int, list[Candidate]] = {}
    for start in range(0, len(users), BATCH_USERS):
        batch = users[start : start + BATCH_USERS]
        top, top_scores = ranker.top(batch, k)
        for row, user in enumerate(batch):
            found = np.isfinite(top_scores[row])
            items, item_scores = top[row][found], top_scores[row][found]
            start_h, end_h = history.indptr[user], history.indptr[user + 1]
            because = _explaining_items(
                ranker, history.indices[start_h:end_h], history.data[start_h:end_h], items, in_ease, embeddings
            )
            # The strongest kind of each explaining item: a purchase says "bought", anything else "viewed".
            start_k, end_k = strongest.indptr[user], strongest.indptr[user + 1]
            kind_items, kind_values = strongest.indices[start_k:end_k], strongest.data[start_k:end_k]
            positions = np.minimum(np.searchsorted(kind_items, np.maximum(because, 0)), len(kind_items) - 1)
            reasons = np.where(
                because < 0, "for_you", np.where(kind_values[positions] >= purchase, "purchased", "viewed")
            )
            result[int(data.users.ids[user])] = list(
                map(
                    Candidate,
                    ids[items].tolist(),
                    item_scores.tolist(),
                    reasons.tolist(),
                    because_ids[because].tolist(),
                )
            )
    return result


def _explaining_items(
    ranker: RevoptRanker,
    history_items: np.ndarray,
    strengths: np.ndarray,
    candidates: np.ndarray,
    in_ease: np.ndarray,
    embeddings: np.ndarray,
) -> np.ndarray:
    """Per candidate, the history item index that explains it best, -1 when none pulls it up."""
    if len(history_items) == 0 or len(candidates) == 0:
        return np.full(len(candidates), -1, dtype=np.int64)
    contributions = np.zeros((len(history_items), len(candidates)), dtype=np.float32)
    history_rows, candidate_columns = in_ease[history_items], in_ease[candidates]
    known_history, known_candidates = history_rows >= 0, candidate_columns >= 0
    if known_history.any() and known_candidates.any():
        block = ranker.ease.weights[np.ix_(history_rows[known_history], candidate_columns[known_candidates])]
        contributions[np.ix_(known_history, known_candidates)] = strengths[known_history, None] * block
    best = contributions.argmax(axis=0)
    explained = contributions[best, np.arange(len(candidates))] > 0
    because = np.where(explained, history_items[best], -1).astype(np.int64)
    rest = np.flatnonzero(~explained)
    if len(rest):
        similarity = embeddings[history_items] @ embeddings[candidates[rest]].T
        closest = similarity.argmax(axis=0)
        similar = similarity[closest, np.arange(len(rest))] > 0
        because[rest] = np.where(similar, history_items[closest], -1)
    return because


def item_vectors(data: TrainingData, ranker: RevoptRanker | None) -> dict[int, list[float]]:
    """Product id -> a unit vector mixing content and the hybrid model's item embedding (for MMR)."""
    if len(data.items) == 0:
        return {}
    blocks = [content_matrix(data.items)]
    if ranker is not None:
        blocks.append(sp.csr_matrix(normalize(ranker.hybrid.item_embeddings, norm="l2", axis=1)))
    features = sp.hstack(blocks).tocsr()
    dimensions = min(ITEM_VECTOR_DIMENSIONS, features.shape[1] - 1, len(data.items) - 1)
    if dimensions >= 2:
        left, singular, _ = randomized_svd(features, n_components=dimensions, random_state=0)
        reduced = left * singular
    else:
        reduced = features.toarray()
    reduced = normalize(reduced, norm="l2", axis=1)
    return {
        int(product): [float(value) for value in vector]
        for product, vector in zip(data.items.ids, reduced, strict=True)
    }
