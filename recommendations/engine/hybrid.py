"""The LightFM hybrid: WARP on interactions, items described by category, brand and price band,
customers by segment and device, each beside its own identity feature.

A user's or item's embedding is the sum of its features' embeddings, so items that share a category
or brand share signal, and an item with few interactions still lands near its kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM
from sklearn.preprocessing import normalize

from recommendations.engine.dataset import Items, Users

PRICE_BANDS = 5
# WARP's cost grows with interactions × epochs × negatives sampled: 30 epochs for small data, fewer
# as data grows (at least 3); up to SMALL_DATA interactions (MovieLens' 41k, a young shop) it also
# affords more components and negatives.
EPOCH_BUDGET = 1_500_000
MAX_EPOCHS = 30
MIN_EPOCHS = 3
SMALL_DATA = 60_000
# Metadata features share an item's representation with its identity at this relative weight.
FEATURE_WEIGHT = 0.5


@dataclass(frozen=True)
class HybridModel:
    user_embeddings: np.ndarray  # users × components (float32)
    item_embeddings: np.ndarray  # items × components (float32)
    item_biases: np.ndarray  # items (float32)

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.user_embeddings[users] @ self.item_embeddings.T + self.item_biases


def price_bands(price: np.ndarray, *, bands: int = PRICE_BANDS) -> np.ndarray:
    """Quantile band of each price (0 = cheapest); -1 for a missing or zero price."""
    result = np.full(len(price), -1, dtype=np.int64)
    priced = price > 0
    if priced.sum() < bands:
        return result
    edges = np.quantile(price[priced], np.linspace(0.0, 1.0, bands + 1)[1:-1])
    result[priced] = np.searchsorted(edges, price[priced], side="right")
    return result


def _feature_matrix(identity_count: int, tokens_per_row: list[list[str]], *, identity: bool) -> sp.csr_matrix:
    """Rows × (identities + distinct tokens); the tokens of a row share FEATURE_WEIGHT, rows sum to 1."""
    vocabulary: dict[str, int] = {}
    rows: list[int] = []
    columns: list[int] = []
    values: list[float] = []
    offset = identity_count if identity else 0
    for row, tokens in enumerate(tokens_per_row):
        distinct = sorted(set(tokens))
        share = (FEATURE_WEIGHT if identity else 1.0) / max(len(distinct), 1)
        for token in distinct:
            rows.append(row)
            columns.append(offset + vocabulary.setdefault(token, len(vocabulary)))
            values.append(share)
        if identity:
            rows.append(row)
            columns.append(row)
            values.append(1.0 - FEATURE_WEIGHT if distinct else 1.0)
    matrix = sp.csr_matrix(
        (values, (rows, columns)), shape=(len(tokens_per_row), offset + len(vocabulary)), dtype=np.float32
    )
    return normalize(matrix, norm="l1", axis=1)


def item_tokens(items: Items, *, attributes: bool = False) -> list[list[str]]:
    bands = price_bands(items.price)
    tokens: list[list[str]] = []
    for index in range(len(items)):
        row = []
        if items.category[index] >= 0:
            row.append(f"category:{int(items.category[index])}")
        if items.brand[index].strip():
            row.append(f"brand:{items.brand[index].strip().lower()}")
        if bands[index] >= 0:
            row.append(f"price_band:{int(bands[index])}")
        if attributes:
            for key, value in (items.attributes[index] or {}).items():
                for entry in value if isinstance(value, list | tuple) else [value]:
                    row.append(f"{key}={entry}")
        tokens.append(row)
    return tokens


def user_tokens(users: Users) -> list[list[str]]:
    return [
        [f"{name}:{value}" for name, value in (("device", device), ("segment", segment)) if value]
        for device, segment in zip(users.device, users.segment, strict=True)
    ]


def item_features(items: Items, *, attributes: bool = False) -> sp.csr_matrix:
    return _feature_matrix(len(items), item_tokens(items, attributes=attributes), identity=True)


def user_features(users: Users) -> sp.csr_matrix:
    return _feature_matrix(len(users), user_tokens(users), identity=True)


def fit_lightfm(
    matrix: sp.csr_matrix,
    *,
    item_feature_matrix: sp.csr_matrix | None = None,
    user_feature_matrix: sp.csr_matrix | None = None,
    components: int = 64,
    epochs: int = 30,
    learning_rate: float = 0.05,
    item_alpha: float = 1e-6,
    user_alpha: float = 1e-6,
    max_sampled: int = 30,
    seed: int = 0,
    threads: int = 2,
) -> HybridModel:
    """WARP on the users × items matrix; interaction strengths become sample weights."""
    interactions = sp.coo_matrix(matrix, dtype=np.float32)
    model = LightFM(
        no_components=components,
        loss="warp",
        learning_rate=learning_rate,
        item_alpha=item_alpha,
        user_alpha=user_alpha,
        max_sampled=max_sampled,
        random_state=np.random.RandomState(seed),
    )
    model.fit(
        sp.coo_matrix((np.ones_like(interactions.data), (interactions.row, interactions.col)), shape=matrix.shape),
        user_features=user_feature_matrix,
        item_features=item_feature_matrix,
        sample_weight=interactions,
        epochs=epochs,
        num_threads=threads,
    )
    item_biases, item_embeddings = model.get_item_representations(item_feature_matrix)
    _, user_embeddings = model.get_user_representations(user_feature_matrix)
    return HybridModel(
        user_embeddings=user_embeddings.astype(np.float32),
        item_embeddings=item_embeddings.astype(np.float32),
        item_biases=item_biases.astype(np.float32),
    )


def epochs_for(interaction_count: int) -> int:
    return int(np.clip(EPOCH_BUDGET // max(interaction_count, 1), MIN_EPOCHS, MAX_EPOCHS))


def fit_hybrid(
    matrix: sp.csr_matrix,
    *,
    items: Items,
    users: Users,
    item_attributes: bool = False,
    seed: int = 0,
    threads: int = 2,
) -> HybridModel:
    """The hybrid on a users × items matrix of strengths, sized to the data (see EPOCH_BUDGET)."""
    small = matrix.nnz <= SMALL_DATA
    return fit_lightfm(
        matrix,
        item_feature_matrix=item_features(items, attributes=item_attributes),
        user_feature_matrix=user_features(users),
        components=64 if small else 32,
        max_sampled=30 if small else 10,
        epochs=epochs_for(matrix.nnz),
        seed=seed,
        threads=threads,
    )
