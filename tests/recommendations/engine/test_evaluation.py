import numpy as np
import pytest

from recommendations.engine.dataset import TrainingParams
from recommendations.engine.evaluation import (
    compare,
    evaluate_precomputed,
    format_table,
    holdout_metrics,
    ranked_lists,
    temporal_split,
)
from recommendations.engine.precomputed import Candidate, Precomputed
from recommendations.engine.validation import seen_matrix
from tests.recommendations.engine.data import clustered_shop, make_data


def test_ranked_lists_never_hold_an_item_the_user_touched_in_train():
    # given
    data = make_data([(0, 0, "view", 1), (0, 1, "purchase", 1)], items=4, users=1)

    # when
    lists = ranked_lists(lambda users: np.array([[9.0, 8.0, 1.0, 2.0]]), users=[0], seen=seen_matrix(data), k=3)

    # then
    assert lists == {0: [3, 2]}


def test_a_precomputed_model_is_scored_on_its_for_customer_lists_minus_seen_items():
    # given: user 0 (id 1000) touched item 0 in train and holds out item 2
    data_train = make_data([(0, 0, "purchase", 5), (1, 1, "purchase", 5)], items=4, users=2)
    precomputed = Precomputed(
        for_customer={
            1000: [
                Candidate(product_id=100, score=3.0, reason="for_you"),
                Candidate(product_id=999, score=2.5, reason="for_you"),
                Candidate(product_id=102, score=2.0, reason="for_you"),
            ]
        }
    )

    # when
    metrics = evaluate_precomputed(precomputed, data_train, {0: {2}, 1: {3}})

    # then: user 0 finds item 2 first (seen and unknown products skipped); user 1 has no list
    assert metrics["ndcg@10"] == pytest.approx(0.5)
    assert metrics["users"] == 2


def test_holdout_metrics_score_revopt_s_ranker_on_a_temporal_split():
    # given
    data = clustered_shop(users=120, items=40, purchases=8)

    # when
    metrics = holdout_metrics(data, TrainingParams())

    # then: a taste-aware ranker beats chance (5 of 40 items, about 0.12) by far
    assert set(metrics) == {"precision@10", "recall@10", "ndcg@10", "map@10", "coverage", "novelty", "users"}
    assert metrics["users"] == 120
    assert metrics["recall@10"] > 0.4


def test_compare_gives_mean_and_sd_per_ranker_and_a_table():
    # given
    data = clustered_shop(users=80, items=30, purchases=8)

    # when
    rows = compare(data, TrainingParams(), rankers=["popularity", "random"], seeds=(0, 1))
    table = format_table(rows)

    # then: popularity is deterministic, random varies with the seed
    assert [row["ranker"] for row in rows] == ["popularity", "random"]
    assert rows[0]["ndcg@10_sd"] == 0.0
    assert rows[0]["ndcg@10"] > rows[1]["ndcg@10"]
    assert rows[1]["ndcg@10_sd"] > 0.0
    assert "popularity" in table and "±" in table and "ndcg@10" in table


def test_compare_refuses_an_unknown_ranker():
    # given
    data = clustered_shop()

    # when / then
    with pytest.raises(ValueError, match="unknown rankers: magic"):
        compare(data, TrainingParams(), rankers=["magic"], seeds=(0,))


def test_the_split_the_evaluation_uses_is_the_temporal_split():
    # given
    data = clustered_shop(users=10, purchases=6)

    # when
    train, holdout = temporal_split(data)

    # then: six items each, one held out
    assert all(len(items) == 1 for items in holdout.values()) and len(holdout) == 10
    assert len(train.interactions) == 50
