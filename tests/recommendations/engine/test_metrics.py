import math

import numpy as np
import pytest

from recommendations.engine.metrics import (
    average_precision_at_k,
    catalog_coverage,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)


def test_metrics_of_a_two_user_example_match_the_hand_computation():
    # given: user 0 finds one of two held-out items at rank 2; user 1 finds its only item at rank 1
    lists = {0: [1, 2, 3], 1: [5, 6, 7]}
    holdout = {0: {2, 9}, 1: {5}}
    share = np.full(10, 0.5)
    share[5] = 0.25

    # when
    metrics = ranking_metrics(lists, holdout, k=3, catalog_size=10, popularity_share=share)

    # then
    ndcg_user_0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert metrics["precision@3"] == pytest.approx(1 / 3)
    assert metrics["recall@3"] == pytest.approx((1 / 2 + 1) / 2)
    assert metrics["ndcg@3"] == pytest.approx((ndcg_user_0 + 1) / 2)
    assert metrics["map@3"] == pytest.approx(((1 / 2) / 2 + 1) / 2)
    assert metrics["coverage"] == pytest.approx(6 / 10)
    assert metrics["novelty"] == pytest.approx((5 * 1 + 2) / 6)
    assert metrics["users"] == 2


def test_a_user_without_a_list_scores_zero_and_still_counts():
    # given
    holdout = {0: {1}, 1: {2}}

    # when
    metrics = ranking_metrics({0: [1]}, holdout, k=10, catalog_size=5, popularity_share=np.full(5, 0.2))

    # then
    assert metrics["ndcg@10"] == pytest.approx(0.5)
    assert metrics["precision@10"] == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("ranked", "relevant", "expected"),
    [([1, 2], {1, 2}, 1.0), ([3, 1], {1}, 1 / math.log2(3)), ([3, 4], {1}, 0.0), ([1], set(), 0.0)],
)
def test_ndcg_at_k(ranked, relevant, expected):
    # when / then
    assert ndcg_at_k(ranked, relevant, 2) == pytest.approx(expected)


def test_precision_recall_and_average_precision_count_only_the_first_k():
    # given
    ranked, relevant = [9, 1, 2, 3], {1, 3}

    # when / then
    assert precision_at_k(ranked, relevant, 2) == pytest.approx(1 / 2)
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 2)
    assert average_precision_at_k(ranked, relevant, 4) == pytest.approx((1 / 2 + 2 / 4) / 2)


def test_coverage_and_novelty_of_lists():
    # given
    share = np.array([0.5, 0.125, 0.0])

    # when / then
    assert catalog_coverage([[0, 1], [1]], catalog_size=4) == pytest.approx(0.5)
    assert novelty([[0, 1]], popularity_share=share) == pytest.approx((1 + 3) / 2)
    # an item nobody touched counts as the rarest seen item, not as infinitely novel
    assert novelty([[2]], popularity_share=share) == pytest.approx(3.0)
