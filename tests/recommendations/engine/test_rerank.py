import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine.rerank import RECENT_WINDOWS, build_context, candidate_features, fit_reranker
from tests.recommendations.engine.data import make_data, make_items


def _features(data, users, candidates):
    history = sp.csr_matrix(
        (np.ones(len(data.interactions)), (data.interactions.user, data.interactions.item)),
        shape=(len(data.users), len(data.items)),
    )
    zeros = np.zeros((len(users), len(data.items)), dtype=np.float32)
    return candidate_features(
        context=build_context(data),
        history=history,
        users=users,
        candidates=candidates,
        standardised={"ease": zeros + 1.0, "hybrid": zeros},
        blended=zeros + 2.0,
        recent={window: np.zeros(candidates.shape, dtype=np.float32) for window in RECENT_WINDOWS},
    )


def test_candidate_features_measure_taste_and_time_at_the_customer_s_latest_activity():
    # given: user 0 bought three category-1 items and one category-2 item, the latest 1 day ago
    items = make_items(
        6,
        categories=[1, 1, 1, 2, 1, 2],
        brands=["Acme", "Acme", "", "", "Acme", ""],
        prices=[10.0, 10.0, 10.0, 10.0, 20.0, 10.0],
        created_days_ago=[400, 400, 400, 400, 31, 400],
    )
    events = [(0, item, "purchase", 4 - item) for item in range(4)] + [(1, 5, "view", 11)]
    data = make_data(events, items=items, users=2)

    # when
    features = _features(data, np.array([0]), np.array([[4, 5]]))

    # then: columns are ease, hybrid, blend, rank, 3 recent windows, history, item age, first seen,
    # user span, category share, brand share, relative price
    candidate_4, candidate_5 = features
    assert candidate_4[:4].tolist() == [1.0, 0.0, 2.0, 0.0]
    assert candidate_5[3] == 1.0
    assert candidate_4[7] == pytest.approx(np.log1p(4))
    assert candidate_4[8] == pytest.approx(30 / 365.25, rel=1e-4)
    assert np.isnan(candidate_4[9])  # nobody touched item 4
    assert candidate_5[9] == pytest.approx(10.0)  # first touched 10 days before the user's latest
    assert candidate_4[10] == pytest.approx(3.0)
    assert candidate_4[11] == pytest.approx(3 / 4) and candidate_5[11] == pytest.approx(1 / 4)
    assert candidate_4[12] == pytest.approx(2 / 4)
    assert candidate_4[13] == pytest.approx(np.log(20.0) - np.log(10.0))


def test_a_feature_the_data_cannot_express_is_constant_rather_than_missing():
    # given: no brands and no prices at all
    items = make_items(3, prices=[0.0, 0.0, 0.0])
    data = make_data([(0, 0, "purchase", 1)], items=items, users=1)

    # when
    features = _features(data, np.array([0]), np.array([[1, 2]]))

    # then
    assert features[:, 12].tolist() == [0.0, 0.0]
    assert features[:, 13].tolist() == [0.0, 0.0]


def test_the_reranker_needs_enough_positives_and_learns_which_feature_matters():
    # given: the label is "first feature above zero"
    generator = np.random.default_rng(0)
    features = generator.normal(size=(2_000, 3)).astype(np.float32)
    labels = features[:, 0] > 0

    # when
    reranker = fit_reranker(features, labels, seed=0)
    too_few = fit_reranker(features[:40], np.arange(40) == 0, seed=0)

    # then
    assert too_few is None
    probabilities = reranker.predict(np.array([[2.0, 0.0, 0.0], [-2.0, 0.0, 0.0]], dtype=np.float32))
    assert probabilities[0] > 0.9 > 0.1 > probabilities[1]
