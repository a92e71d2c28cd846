"""The second stage of revopt's ranker: a gradient-boosted re-ranker over the blend's top candidates.

The blend (EASE, the LightFM hybrid, ALS, popularity priors) proposes each customer's top
`RERANK_CANDIDATES` items; a classifier trained on the inner temporal split (features from models
fitted on the inner train part, labels from its held-out items) re-orders them with context the
blend cannot express linearly:
- each signal's standardised score and the blend's rank;
- popularity in several windows before the customer's latest activity;
- time: the item's age (catalog creation) and how long it has been interacted with, both measured at
  the customer's latest activity; how long the customer has been active; how much history they have;
- taste: the share of the customer's history in the item's category and brand, and the item's price
  against the customer's usual price.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from recommendations.engine.dataset import TrainingData
from recommendations.engine.signals import SECONDS_PER_DAY

# Only the blend's top candidates are re-ranked (the rest keep the blend's order behind them):
# on MovieLens re-ranking 50 or 100 scores the same, and prediction time grows with the count.
RERANK_CANDIDATES = 50
# The re-ranker learns from at most this many held-out customers of the inner split.
MAX_TRAINING_USERS = 1_500
RECENT_WINDOWS = (1, 4, 16)
MIN_POSITIVES = 30
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class Context:
    """Per-user and per-item facts the features read, from one training set."""

    user_latest: np.ndarray  # unix seconds of each user's latest interaction (-inf: none)
    user_first: np.ndarray
    item_first_seen: np.ndarray  # unix seconds of each item's first interaction (+inf: never)
    item_created: np.ndarray  # unix seconds, NaN when unknown
    item_category: np.ndarray  # dense category code per item, -1 for none
    item_brand: np.ndarray  # dense brand code per item, -1 for none
    item_log_price: np.ndarray  # NaN when the price is unknown
    category_of_item: sp.csr_matrix  # items × categories, one-hot
    brand_of_item: sp.csr_matrix  # items × brands, one-hot


def _one_hot(codes: np.ndarray) -> sp.csr_matrix:
    known = codes >= 0
    width = int(codes.max()) + 1 if known.any() else 1
    return sp.csr_matrix((np.ones(int(known.sum())), (np.flatnonzero(known), codes[known])), shape=(len(codes), width))


def build_context(data: TrainingData) -> Context:
    interactions = data.interactions
    user_latest = np.full(len(data.users), -np.inf)
    user_first = np.full(len(data.users), np.inf)
    item_first_seen = np.full(len(data.items), np.inf)
    if len(interactions):
        np.maximum.at(user_latest, interactions.user, interactions.timestamp)
        np.minimum.at(user_first, interactions.user, interactions.timestamp)
        np.minimum.at(item_first_seen, interactions.item, interactions.timestamp)
    _, category_codes = np.unique(data.items.category, return_inverse=True)
    category_codes = np.where(data.items.category >= 0, category_codes, -1)
    brands = np.array([brand.strip().lower() for brand in data.items.brand], dtype=object)
    _, brand_codes = np.unique(brands.astype(str), return_inverse=True)
    brand_codes = np.where(brands != "", brand_codes, -1)
    created = np.where(data.items.created_at > 0, data.items.created_at, np.nan)
    log_price = np.where(data.items.price > 0, np.log(np.maximum(data.items.price, 1e-9)), np.nan)
    return Context(
        user_latest=user_latest,
        user_first=user_first,
        item_first_seen=item_first_seen,
        item_created=created,
        item_category=category_codes.astype(np.int64),
        item_brand=brand_codes.astype(np.int64),
        item_log_price=log_price,
        category_of_item=_one_hot(category_codes.astype(np.int64)),
        brand_of_item=_one_hot(brand_codes.astype(np.int64)),
    )


def _share(history: sp.csr_matrix, one_hot: sp.csr_matrix) -> np.ndarray:
    """Users × groups: the share of each user's history items in each group (category, brand)."""
    pattern = sp.csr_matrix(history > 0, dtype=np.float64)
    counts = np.asarray((pattern @ one_hot).todense())
    return counts / np.maximum(np.diff(pattern.indptr), 1.0)[:, None]


def candidate_features(
    *,
    context: Context,
    history: sp.csr_matrix,
    users: np.ndarray,
    candidates: np.ndarray,
    standardised: dict[str, np.ndarray],
    blended: np.ndarray,
    recent: dict[int, np.ndarray],
) -> np.ndarray:
    """Rows = (user, candidate) pairs in row-major order of `candidates` (users × N item indexes).

    `standardised` and `blended` are users × all items; `recent` maps each of RECENT_WINDOWS to the
    candidates' recent popularity (users × N, aligned with `candidates`)."""
    count = candidates.shape[1]
    rows = np.repeat(np.arange(len(users)), count)
    items = candidates.ravel()
    user_history = history[users]
    latest = context.user_latest[users][rows]
    columns = [standardised[name][rows, items] for name in sorted(standardised)]
    columns.append(blended[rows, items])
    columns.append(np.tile(np.arange(count, dtype=np.float64), len(users)))
    columns.extend(recent[window].ravel() for window in RECENT_WINDOWS)
    history_size = np.diff(user_history.indptr).astype(np.float64)
    columns.append(np.log1p(history_size)[rows])
    columns.append((latest - context.item_created[items]) / SECONDS_PER_DAY / DAYS_PER_YEAR)
    first_seen = context.item_first_seen[items]
    columns.append(np.where(np.isfinite(first_seen), (latest - first_seen) / SECONDS_PER_DAY, np.nan))
    columns.append(((context.user_latest - context.user_first)[users] / SECONDS_PER_DAY)[rows])
    category_share = _share(user_history, context.category_of_item)
    category = context.item_category[items]
    columns.append(np.where(category >= 0, category_share[rows, np.maximum(category, 0)], np.nan))
    brand_share = _share(user_history, context.brand_of_item)
    brand = context.item_brand[items]
    columns.append(np.where(brand >= 0, brand_share[rows, np.maximum(brand, 0)], np.nan))
    columns.append(context.item_log_price[items] - _mean_log_price(context, user_history)[rows])
    features = np.column_stack(columns).astype(np.float32)
    # A feature the data cannot express at all (no brands, no prices) is a constant, not missing.
    unknown = np.isnan(features).all(axis=0)
    features[:, unknown] = 0.0
    return features


def _mean_log_price(context: Context, user_history: sp.csr_matrix) -> np.ndarray:
    priced = np.isfinite(context.item_log_price)
    prices = np.where(priced, context.item_log_price, 0.0)
    pattern = sp.csr_matrix(user_history > 0, dtype=np.float64)
    total = pattern @ prices
    count = pattern @ priced.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1.0), np.nan)


@dataclass(frozen=True)
class Reranker:
    model: HistGradientBoostingClassifier

    def predict(self, features: np.ndarray) -> np.ndarray:
        # One thread: the trees are small, and two OpenMP threads on two busy cores run slower than one.
        with threadpool_limits(limits=1, user_api="openmp"):
            return self.model.predict_proba(features)[:, 1].astype(np.float32)


def fit_reranker(features: np.ndarray, labels: np.ndarray, *, seed: int, fast: bool = False) -> Reranker | None:
    """None when the inner split holds too few positives to learn from. `fast`: fewer, bolder trees,
    for data large enough that scoring every customer's candidates dominates the training time."""
    if labels.sum() < MIN_POSITIVES or labels.all():
        return None
    # Small trees and large leaves: the inner split of a small shop (or of MovieLens) holds a few
    # thousand positives, and deeper trees chase its noise.
    model = HistGradientBoostingClassifier(
        max_iter=100 if fast else 150,
        learning_rate=0.08 if fast else 0.05,
        max_leaf_nodes=7,
        min_samples_leaf=100,
        l2_regularization=1.0,
        random_state=seed,
    )
    model.fit(features, labels)
    return Reranker(model=model)
