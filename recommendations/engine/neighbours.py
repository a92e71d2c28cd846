"""Item-to-item neighbours from co-occurrence: viewed in the same session, bought by the same customer."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommendations.engine.dataset import KIND_INDEX, TrainingData
from recommendations.engine.signals import basket_matrix, binary, top_k_per_row

# Pairs seen together fewer times than this are shrunk towards zero (cosine × c / (c + shrinkage)).
SHRINKAGE = 2.0


def cooccurrence_neighbours(
    groups_by_items: sp.csr_matrix, *, k: int, min_count: int = 1
) -> dict[int, list[tuple[int, float]]]:
    """Item index -> its k nearest items by shrunk cosine of the groups (sessions, customers) they share.

    `groups_by_items` is groups × items; a pair counts once per group holding both.
    """
    occurrence = binary(groups_by_items).tocsc()
    counts = np.asarray(occurrence.sum(axis=0)).ravel()
    together = (occurrence.T @ occurrence).tocsr()
    together.setdiag(0.0)
    together.eliminate_zeros()
    if min_count > 1:
        together.data[together.data < min_count] = 0.0
        together.eliminate_zeros()
    rows = np.repeat(np.arange(together.shape[0]), np.diff(together.indptr))
    pair_counts = together.data.copy()
    cosine = pair_counts / np.sqrt(counts[rows] * counts[together.indices])
    together.data = cosine * pair_counts / (pair_counts + SHRINKAGE)
    return top_k_per_row(together, k=k)


def session_item_matrix(data: TrainingData) -> sp.csr_matrix:
    """Sessions × items of every interaction with a known session."""
    known = data.interactions.session >= 0
    sessions, session_index = np.unique(data.interactions.session[known], return_inverse=True)
    return sp.csr_matrix(
        (np.ones(int(known.sum())), (session_index, data.interactions.item[known])),
        shape=(len(sessions), len(data.items)),
    )


def customer_purchase_matrix(data: TrainingData) -> sp.csr_matrix:
    """Customers × items they ordered (orders and purchase interactions together)."""
    purchases = data.interactions.kind == KIND_INDEX["purchase"]
    from_interactions = sp.csr_matrix(
        (np.ones(int(purchases.sum())), (data.interactions.user[purchases], data.interactions.item[purchases])),
        shape=(len(data.users), len(data.items)),
    )
    orders = basket_matrix(baskets=data.baskets, item_count=len(data.items))
    order_owner = sp.csr_matrix(
        (np.ones(len(data.baskets)), (data.baskets.user, np.arange(len(data.baskets)))),
        shape=(len(data.users), len(data.baskets)),
    )
    return binary(from_interactions + order_owner @ orders)


def viewed_together(data: TrainingData, *, k: int) -> dict[int, list[tuple[int, float]]]:
    return cooccurrence_neighbours(session_item_matrix(data), k=k)


def purchased_together(data: TrainingData, *, k: int) -> dict[int, list[tuple[int, float]]]:
    return cooccurrence_neighbours(customer_purchase_matrix(data), k=k)
