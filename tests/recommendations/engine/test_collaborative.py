import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine.collaborative import covered_items, fit_als, fit_ease


def _matrix(rows: list[list[int]], items: int) -> sp.csr_matrix:
    data = [(user, item) for user, row in enumerate(rows) for item in row]
    return sp.csr_matrix(
        (np.ones(len(data)), ([user for user, _ in data], [item for _, item in data])), shape=(len(rows), items)
    )


def test_ease_matches_its_closed_form_on_a_tiny_matrix():
    # given
    matrix = _matrix([[0, 1], [0, 1, 2], [1, 2], [2, 3], [0, 3]], items=4)
    l2 = 2.0

    # when
    model = fit_ease(matrix, l2=l2, min_users=1)

    # then: B = I - P / diag(P), P = (XᵀX + λI)⁻¹, with a zero diagonal
    gram = (matrix.T @ matrix).toarray() + l2 * np.eye(4)
    precision = np.linalg.inv(gram)
    expected = np.eye(4) - precision / np.diag(precision)
    assert model.weights == pytest.approx(expected.astype(np.float32), abs=1e-5)
    assert np.diag(model.weights).tolist() == [0.0] * 4


def test_ease_recommends_what_co_occurs_with_the_history():
    # given: items 0 and 1 always together; item 2 with 3
    matrix = _matrix([[0, 1]] * 5 + [[2, 3]] * 5 + [[0]], items=4)

    # when
    scores = fit_ease(matrix, l2=1.0).scores(matrix[[10]])

    # then
    assert np.argmax(scores[0]) == 1
    assert scores[0, 1] > scores[0, 2] and scores[0, 1] > scores[0, 3]


def test_ease_models_only_the_most_interacted_items_and_scores_the_rest_zero():
    # given: item 3 is the rarest
    matrix = _matrix([[0, 1, 2]] * 3 + [[0, 1, 3]], items=4)

    # when
    model = fit_ease(matrix, l2=1.0, max_items=3, min_users=1)

    # then
    assert covered_items(matrix, max_items=3, min_users=1).tolist() == [0, 1, 2]
    assert model.covered.tolist() == [0, 1, 2]
    assert model.scores(matrix[[3]])[0, 3] == 0.0


def test_ease_contributions_name_the_history_item_that_pulls_a_candidate_up():
    # given: 0 goes with 1, 2 goes with 3; a user holding 0 and 2
    matrix = _matrix([[0, 1]] * 5 + [[2, 3]] * 5 + [[0, 2]], items=4)
    model = fit_ease(matrix, l2=1.0)

    # when
    items_for_1, values_for_1 = model.contributions(matrix[10], 1)
    items_for_3, values_for_3 = model.contributions(matrix[10], 3)

    # then
    assert items_for_1[np.argmax(values_for_1)] == 0
    assert items_for_3[np.argmax(values_for_3)] == 2


def test_als_factors_rank_a_user_s_own_cluster_first():
    # given
    matrix = _matrix([[0, 1, 2]] * 6 + [[3, 4, 5]] * 6 + [[0, 1]], items=6)

    # when
    model = fit_als(matrix, factors=4, regularization=0.1, iterations=10, seed=0, threads=1)

    # then
    scores = model.scores(np.array([12]))[0]
    assert scores[2] > max(scores[3], scores[4], scores[5])
