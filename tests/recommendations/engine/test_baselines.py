import numpy as np
import pytest

from recommendations.engine.baselines import BASELINES, GRIDS, fit_baseline, fit_item_knn, tune_baseline
from recommendations.engine.dataset import TrainingParams
from tests.recommendations.engine.data import clustered_shop, make_data


def test_popularity_scores_every_user_by_how_many_customers_touched_the_item():
    # given
    data = make_data([(0, 0, "view", 1), (1, 0, "purchase", 1), (1, 1, "view", 1)], items=3, users=2)

    # when
    scores = BASELINES["popularity"](data, TrainingParams(), seed=0)(np.array([0, 1]))

    # then
    assert scores.tolist() == [[2.0, 1.0, 0.0], [2.0, 1.0, 0.0]]


def test_random_depends_on_the_seed_only():
    # given
    data = clustered_shop()

    # when
    first = BASELINES["random"](data, TrainingParams(), seed=1)(np.array([0, 1]))
    again = BASELINES["random"](data, TrainingParams(), seed=1)(np.array([0, 1]))
    other = BASELINES["random"](data, TrainingParams(), seed=2)(np.array([0, 1]))

    # then
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_item_knn_sums_the_similarity_of_the_history_s_neighbours():
    # given: items 0 and 1 always together, 2 with 3
    events = [(user, item, "purchase", 1) for user in range(4) for item in (0, 1)]
    events += [(user, item, "purchase", 1) for user in range(4, 8) for item in (2, 3)]
    events += [(8, 0, "purchase", 1)]
    data = make_data(events, items=4, users=9)

    # when
    scores = fit_item_knn(data, TrainingParams(), seed=0, neighbours=1)(np.array([8]))

    # then: cosine(0, 1) = 4 / sqrt(5 * 4)
    assert scores[0].tolist() == pytest.approx([0.0, 4 / np.sqrt(20), 0.0, 0.0])


@pytest.mark.parametrize("name", ["item-knn", "implicit-als"])
def test_a_baseline_chooses_its_hyperparameters_from_its_grid_on_an_inner_split(name):
    # given
    data = clustered_shop(users=120, items=40, purchases=8)

    # when
    chosen = tune_baseline(name, data, TrainingParams(), seed=0)
    scorer = fit_baseline(name, data, TrainingParams(), seed=0)

    # then
    assert chosen in GRIDS[name]
    scores = scorer(np.array([0, 1]))
    assert scores[0, :20].mean() > scores[0, 20:].mean()
    assert scores[1, 20:].mean() > scores[1, :20].mean()
