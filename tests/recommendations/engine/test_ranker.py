import numpy as np
import pytest

from recommendations.engine.dataset import TrainingParams
from recommendations.engine.ranker import (
    BlendConfig,
    RevoptRanker,
    Tuned,
    blend,
    checked_reranker,
    fit_revopt,
    history_age_days,
    history_matrix,
    recent_popularity,
    rerank_inputs,
    standardise,
    tune,
)
from recommendations.engine.rerank import fit_reranker
from tests.recommendations.engine.data import clustered_shop, make_data


def test_history_keeps_each_pair_s_strongest_kind_scaled_to_the_strongest_weight():
    # given: ten views and a cart of item 0, one view of item 1
    events = [(0, 0, "view", day) for day in range(10)] + [(0, 0, "cart", 3), (0, 1, "view", 1)]
    data = make_data(events, items=2, users=1)

    # when
    history = history_matrix(data, TrainingParams())

    # then: cart 4 and view 1 over purchase 8
    assert history.toarray().tolist() == [[0.5, 0.125]]


def test_history_ages_count_days_back_from_the_user_s_latest_interaction():
    # given
    data = make_data([(0, 0, "purchase", 10), (0, 1, "purchase", 3), (0, 0, "view", 2)], items=2, users=1)

    # when
    ages = history_age_days(data, history_matrix(data, TrainingParams()))

    # then: item 0 last touched on day 2 (the latest), item 1 on day 3
    assert ages.toarray() == pytest.approx(np.array([[0.0, 1.0]]))


def test_recent_popularity_counts_only_the_window_before_the_user_s_latest_interaction():
    # given: item 0 is popular long ago, item 1 recently; user 2 was last active long ago
    events = [(0, 0, "purchase", 100 + day) for day in range(20)]
    events += [(1, 1, "purchase", day) for day in range(20)]
    events += [(2, 0, "view", 100)]
    data = make_data(events, items=2, users=3)

    # when
    recent = recent_popularity(data).scores(np.array([1, 2]), window_bins=8)

    # then
    assert recent[0, 1] > recent[0, 0]
    assert recent[1, 0] > recent[1, 1] == 0.0


def test_the_blend_adds_weighted_standardised_signals():
    # given
    first = np.array([[1.0, 2.0, 3.0]])
    second = np.array([[3.0, 2.0, 1.0]])

    # when
    result = blend({"a": standardise(first), "b": standardise(second)}, {"a": 1.0, "b": 0.5})

    # then
    assert np.argmax(result[0]) == 2
    assert result[0] == pytest.approx(0.5 * standardise(first)[0])


def test_tuning_on_a_too_small_shop_keeps_the_default_blend_and_no_reranker():
    # given
    data = make_data([(0, 0, "purchase", 1), (1, 1, "purchase", 1)], items=3, users=2)

    # when
    tuned = tune(data, TrainingParams())

    # then
    assert tuned.config == BlendConfig()
    assert tuned.reranker is None


def test_the_tuned_ranker_prefers_each_customer_s_own_taste():
    # given: 200 customers, two tastes, eight purchases each
    data = clustered_shop(users=200, items=40, purchases=8)

    # when
    ranker = fit_revopt(data, TrainingParams(), seed=0, threads=1)

    # then: the blend was chosen on an inner split
    assert ranker.config.weights["ease"] == 1.0
    scores = ranker.scores(np.arange(200))
    seen = ranker.parts.seen.toarray() > 0
    scores[seen] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :5]
    own_taste = (top >= 20) == (np.arange(200)[:, None] % 2 == 1)
    assert own_taste.mean() > 0.9


def _with_reranker(ranker: RevoptRanker, users: np.ndarray) -> RevoptRanker:
    """The same ranker with a re-ranker that learnt to favour odd item indexes."""
    _, _, candidates, features = rerank_inputs(ranker.parts, users, ranker.ease, ranker.config)
    reranker = fit_reranker(features, (candidates % 2 == 1).ravel(), seed=0)
    return RevoptRanker(tuned=Tuned(config=ranker.config, reranker=reranker), parts=ranker.parts, ease=ranker.ease)


def test_top_follows_the_order_of_scores_over_unseen_items():
    # given
    data = clustered_shop(users=200, items=80, purchases=8)
    ranker = _with_reranker(fit_revopt(data, TrainingParams(), seed=0, threads=1), np.arange(200))
    users = np.arange(10)

    # when
    items, scores = ranker.top(users, 30)

    # then: the re-ranked head (odd items first) and the blend's tail agree with the dense scores
    dense = ranker.scores(users)
    dense[ranker.parts.seen[users].toarray() > 0] = -np.inf
    for row in range(len(users)):
        finite = np.isfinite(scores[row])
        assert np.all(np.diff(scores[row][finite]) <= 0)
        listed = items[row][finite]
        unlisted = np.setdiff1d(np.flatnonzero(np.isfinite(dense[row])), listed)
        assert dense[row, listed].min() >= dense[row, unlisted].max(initial=-np.inf)
        assert scores[row][finite] == pytest.approx(dense[row, listed])
        assert (listed[:5] % 2 == 1).all()


def test_a_reranker_is_kept_only_when_it_beats_the_blend_order_out_of_sample():
    # given: 400 customers × 20 candidates in the blend's order; feature 0 flags the relevant ones
    generator = np.random.default_rng(0)
    scattered = generator.random((400, 20)) < 0.15
    informative = np.column_stack(
        [scattered.ravel() + 0.1 * generator.normal(size=8_000), generator.normal(size=8_000)]
    )
    # the blend already puts every relevant candidate first, and the features are noise
    ordered = np.zeros((400, 20), dtype=bool)
    ordered[:, :3] = True
    noise = generator.normal(size=(8_000, 2))
    ideal = np.full(400, 1 + 1 / np.log2(3) + 1 / np.log2(4))

    # when
    kept = checked_reranker(informative.astype(np.float32), scattered, ideal=ideal, seed=0, fast=False)
    dropped = checked_reranker(noise.astype(np.float32), ordered, ideal=ideal, seed=0, fast=False)

    # then
    assert kept is not None
    assert dropped is None
