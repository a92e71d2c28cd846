"""EASE: a linear item-to-item model with a closed form (Steck, "Embarrassingly Shallow Autoencoders", 2019).

B = argmin ||X − X B||² + λ||B||² subject to diag(B) = 0 has the solution B = I − P / diag(P) with
P = (XᵀX + λI)⁻¹. A user's scores are x_u B, and x_uh · B_hj is how much history item h adds to
item j, which is what the explanations name.

Inverting an items × items matrix costs O(n³): only the `max_items` most interacted items are
modelled; the others get no EASE score (the hybrid model and the priors still rank them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import scipy.sparse as sp

# Inverting n items costs about n³ / 1.5 flops: 8,000 items take a few seconds on two cores; 20,000
# would take minutes. Beyond the cap the hybrid, ALS and the priors rank the remaining items.
MAX_ITEMS = 8_000
MIN_USERS_PER_ITEM = 2


@dataclass(frozen=True)
class EaseModel:
    item_count: int
    covered: np.ndarray  # item indexes the model covers, ascending
    weights: np.ndarray  # len(covered) × len(covered), float32, zero diagonal

    def scores(self, user_rows: sp.csr_matrix) -> np.ndarray:
        """Users × all items (float32); items the model does not cover score 0."""
        result = np.zeros((user_rows.shape[0], self.item_count), dtype=np.float32)
        if len(self.covered):
            result[:, self.covered] = sp.csr_matrix(user_rows[:, self.covered], dtype=np.float32) @ self.weights
        return result

    def contributions(self, history: sp.csr_matrix, item: int) -> tuple[np.ndarray, np.ndarray]:
        """For one user's history row: (history item indexes, their contribution to `item`'s score)."""
        position = np.searchsorted(self.covered, item)
        if position >= len(self.covered) or self.covered[position] != item:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        history_items = history.indices
        in_model = np.searchsorted(self.covered, history_items)
        in_model = np.minimum(in_model, len(self.covered) - 1)
        known = self.covered[in_model] == history_items
        values = history.data[known] * self.weights[in_model[known], position]
        return history_items[known], values


def covered_items(
    matrix: sp.csr_matrix, *, max_items: int = MAX_ITEMS, min_users: int = MIN_USERS_PER_ITEM
) -> np.ndarray:
    """The items EASE models: at least `min_users` users, the `max_items` most interacted at most."""
    users_per_item = np.asarray((matrix > 0).sum(axis=0)).ravel()
    eligible = np.flatnonzero(users_per_item >= min_users)
    if len(eligible) > max_items:
        order = np.lexsort((eligible, -users_per_item[eligible]))
        eligible = np.sort(eligible[order[:max_items]])
    return eligible


def gram_matrix(matrix: sp.csr_matrix, covered: np.ndarray) -> np.ndarray:
    columns = sp.csc_matrix(matrix[:, covered], dtype=np.float64)
    return (columns.T @ columns).toarray()


def _inverse_spd(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix through its Cholesky factor, in float32
    (about four times as fast as a float64 LU inverse; the ridge keeps it well conditioned)."""
    factor, info = scipy.linalg.lapack.spotrf(matrix.astype(np.float32), lower=False, overwrite_a=True)
    if info != 0:
        return scipy.linalg.inv(matrix, check_finite=False).astype(np.float32)
    inverse, info = scipy.linalg.lapack.spotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError("EASE: the regularised Gram matrix is not invertible")
    # spotri fills the upper triangle only.
    return np.triu(inverse) + np.triu(inverse, 1).T


def ease_from_gram(*, gram: np.ndarray, covered: np.ndarray, item_count: int, l2: float) -> EaseModel:
    if len(covered) == 0:
        return EaseModel(item_count=item_count, covered=covered, weights=np.zeros((0, 0), dtype=np.float32))
    regularised = gram.copy()
    regularised[np.diag_indices_from(regularised)] += l2
    precision = _inverse_spd(regularised)
    weights = precision / (-np.diag(precision))
    np.fill_diagonal(weights, 0.0)
    return EaseModel(item_count=item_count, covered=covered, weights=weights.astype(np.float32, copy=False))


def fit_ease(
    matrix: sp.csr_matrix, *, l2: float = 300.0, max_items: int = MAX_ITEMS, min_users: int = MIN_USERS_PER_ITEM
) -> EaseModel:
    """Fit EASE on a users × items matrix of interaction strengths."""
    covered = covered_items(matrix, max_items=max_items, min_users=min_users)
    return ease_from_gram(gram=gram_matrix(matrix, covered), covered=covered, item_count=matrix.shape[1], l2=l2)


@dataclass(frozen=True)
class FactorModel:
    """Matrix factorisation: a user's scores are user_factors[u] · item_factors."""

    user_factors: np.ndarray  # users × factors (float32)
    item_factors: np.ndarray  # items × factors (float32)

    def scores(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors[users] @ self.item_factors.T


def als_available() -> bool:
    try:
        import implicit  # noqa: F401
    except ImportError:
        return False
    return True


def fit_als(
    matrix: sp.csr_matrix,
    *,
    factors: int = 64,
    regularization: float = 5.0,
    alpha: float = 1.0,
    iterations: int = 15,
    seed: int = 0,
    threads: int = 2,
) -> FactorModel:
    """implicit's ALS (Hu, Koren & Volinsky 2008) on a users × items matrix of strengths.

    implicit asks for single-threaded BLAS (its own threads do the work), hence the limit.
    """
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit checks the BLAS threads when the model is built, so build it inside the limit too.
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=seed,
            num_threads=threads,
        )
        model.fit(sp.csr_matrix(matrix, dtype=np.float32), show_progress=False)
    return FactorModel(
        user_factors=np.asarray(model.user_factors, dtype=np.float32),
        item_factors=np.asarray(model.item_factors, dtype=np.float32),
    )
