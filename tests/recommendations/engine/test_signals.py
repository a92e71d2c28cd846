import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine.dataset import TrainingParams
from recommendations.engine.signals import interaction_weights, top_k_dense, top_k_per_row
from tests.recommendations.engine.data import make_data


def test_interaction_weights_are_feedback_weight_times_decay():
    # given: a view today, a purchase two half-lives ago
    data = make_data([(0, 0, "view", 0), (0, 1, "purchase", 60)], items=2, users=1)

    # when
    weights = interaction_weights(
        interactions=data.interactions,
        feedback_weights=TrainingParams().feedback_weights,
        now=data.now,
        half_life_days=30,
    )

    # then
    assert weights.tolist() == pytest.approx([1.0, 8.0 / 4])


def test_top_k_dense_is_best_first_with_ties_broken_by_column():
    # given
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [3.0, 2.0, 1.0, 0.0]])

    # when / then
    assert top_k_dense(scores, k=3).tolist() == [[1, 3, 2], [0, 1, 2]]
    assert top_k_dense(scores, k=10).shape == (2, 4)


def test_top_k_per_row_keeps_positive_scores_only():
    # given
    matrix = sp.csr_matrix(np.array([[0.0, 0.3, -1.0, 0.7], [0.0, 0.0, 0.0, 0.0]]))

    # when / then
    assert top_k_per_row(matrix, k=5) == {0: [(3, 0.7), (1, 0.3)]}
