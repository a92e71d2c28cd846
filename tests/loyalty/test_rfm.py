import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from loyalty.models import Segment
from loyalty.rfm import (
    SEGMENT_GRID,
    CustomerSummary,
    behaviour_clusters,
    quintile_scores,
    rfm_scores,
    segment_for,
)


def _summary(*, days_since_last: list[float], orders: list[int], revenue: list[float]) -> CustomerSummary:
    size = len(orders)
    orders_array = np.array(orders, dtype=np.int64)
    return CustomerSummary(
        customer_id=np.arange(1, size + 1, dtype=np.int64),
        frequency=(orders_array - 1).astype(np.float64),
        recency=np.zeros(size),
        age=np.full(size, 52.0),
        monetary=np.zeros(size),
        orders=orders_array,
        revenue=np.array(revenue, dtype=np.float64),
        days_since_last=np.array(days_since_last, dtype=np.float64),
    )


def test_rfm_scores_and_segments_of_ten_hand_checked_customers():
    # given ten customers (score = 1 + floor(5 · customers strictly worse / 10), ties share one score)
    summary = _summary(
        days_since_last=[5, 10, 20, 30, 45, 60, 90, 120, 200, 365],
        orders=[1, 12, 8, 1, 6, 3, 9, 2, 1, 7],
        revenue=[30, 900, 400, 25, 250, 90, 500, 60, 20, 300],
    )
    # R: customer 1 (5 days) has 9 less recent customers → 1 + floor(4.5) = 5; customer 2: 8 → 5;
    #    3: 7 → 4; 4: 6 → 4; 5: 5 → 3; 6: 4 → 3; 7: 3 → 2; 8: 2 → 2; 9: 1 → 1; 10: 0 → 1.
    # F: the three one-order customers (1, 4, 9) have nobody below → 1; 2 orders (8): 3 below → 2;
    #    3 orders (6): 4 → 3; 6 orders (5): 5 → 3; 7 orders (10): 6 → 4; 8 orders (3): 7 → 4;
    #    9 orders (7): 8 → 5; 12 orders (2): 9 → 5.
    # M: 20 (9) → 1, 25 (4) → 1, 30 (1) → 2, 60 (8) → 2, 90 (6) → 3, 250 (5) → 3, 300 (10) → 4,
    #    400 (3) → 4, 500 (7) → 5, 900 (2) → 5.
    # Segments by (R, F): 1 (5,1) new, 2 (5,5) champions, 3 (4,4) champions, 4 (4,1) promising,
    #    5 (3,3) needs attention, 6 (3,3) needs attention, 7 (2,5) can't lose, 8 (2,2) hibernating,
    #    9 (1,1) lost, 10 (1,4) can't lose.

    # when
    scores = rfm_scores(summary)

    # then
    assert scores.r_score.tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert scores.f_score.tolist() == [1, 5, 4, 1, 3, 3, 5, 2, 1, 4]
    assert scores.m_score.tolist() == [2, 5, 4, 1, 3, 3, 5, 2, 1, 4]
    assert scores.segment.tolist() == [
        Segment.NEW,
        Segment.CHAMPIONS,
        Segment.CHAMPIONS,
        Segment.PROMISING,
        Segment.NEEDS_ATTENTION,
        Segment.NEEDS_ATTENTION,
        Segment.CANNOT_LOSE,
        Segment.HIBERNATING,
        Segment.LOST,
        Segment.CANNOT_LOSE,
    ]


def test_quintile_scores_without_ties_are_plain_quintiles():
    # given / when
    scores = quintile_scores(np.array([10.0, 3.0, 7.0, 1.0, 9.0, 2.0, 8.0, 4.0, 6.0, 5.0]))

    # then values 1..10 score 1,1,2,2,3,3,4,4,5,5
    assert scores.tolist() == [5, 2, 4, 1, 5, 1, 4, 2, 3, 3]


def test_quintile_scores_keep_ties_together_and_the_lowest_value_at_one():
    # given 60% of customers with one order, then 2, 2, 3 and 5 orders... (a typical shop)
    orders = np.array([1] * 6 + [2, 2, 3, 5])

    # when
    scores = quintile_scores(orders)

    # then all one-order customers score 1; 2 orders have 6 of 10 below → 4; 3 → 1 + floor(4) = 5
    assert scores.tolist() == [1] * 6 + [4, 4, 5, 5]


def test_quintile_scores_of_identical_values_are_all_one_and_of_nobody_empty():
    # given / when / then
    assert quintile_scores(np.full(7, 3.0)).tolist() == [1] * 7
    assert quintile_scores(np.array([])).tolist() == []


def test_segment_grid_names_every_r_f_pair_with_a_known_segment_and_uses_them_all():
    # given / when
    named = {segment_for(r, f) for r in range(1, 6) for f in range(1, 6)}

    # then
    assert sorted(SEGMENT_GRID) == [1, 2, 3, 4, 5]
    assert named == set(Segment.values)


@pytest.mark.parametrize(
    ("r_score", "f_score", "segment"),
    [
        (5, 5, Segment.CHAMPIONS),
        (4, 4, Segment.CHAMPIONS),
        (3, 5, Segment.LOYAL),
        (5, 1, Segment.NEW),
        (1, 1, Segment.LOST),
        (1, 5, Segment.CANNOT_LOSE),
        (2, 3, Segment.AT_RISK),
        (5, 2, Segment.POTENTIAL_LOYALISTS),
    ],
)
def test_segment_for_follows_the_grid(r_score, f_score, segment):
    # given / when / then
    assert segment_for(r_score, f_score) == segment


def _blobs(*, per_blob: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    # (days since last order, orders, revenue): recent heavy buyers, one-timers, lapsed occasional buyers
    centres = [(3.0, 12.0, 900.0), (60.0, 1.0, 25.0), (250.0, 3.0, 90.0)]
    columns: dict[str, list[np.ndarray]] = {"days_since_last": [], "orders": [], "revenue": []}
    for days, orders, revenue in centres:
        columns["days_since_last"].append(rng.normal(days, 0.1 * days, per_blob).clip(0))
        columns["orders"].append(np.round(rng.normal(orders, 0.1 * orders, per_blob)).clip(1))
        columns["revenue"].append(rng.normal(revenue, 0.1 * revenue, per_blob).clip(1))
    truth = np.repeat(np.arange(len(centres)), per_blob)
    return {name: np.concatenate(parts) for name, parts in columns.items()}, truth


def test_behaviour_clusters_find_three_separated_groups_and_name_them():
    # given three well-separated groups of 200 customers
    features, truth = _blobs(per_blob=200, seed=3)

    # when
    clustering = behaviour_clusters(features, k_range=range(2, 7), seed=0)

    # then k = 3 wins, every k tried has a silhouette, the groups come back exactly, and the labels say
    # what each group is
    assert clustering.k == 3
    assert sorted(clustering.silhouette_by_k) == [2, 3, 4, 5, 6]
    assert clustering.silhouette_by_k[3] == max(clustering.silhouette_by_k.values())
    assert adjusted_rand_score(truth, clustering.labels) == pytest.approx(1.0)
    by_orders = sorted(clustering.profiles, key=lambda profile: profile.means["orders"])
    assert by_orders[0].label == "one-time low spenders"
    assert by_orders[-1].label == "recent frequent high spenders"
    assert by_orders[-1].means["revenue"] == pytest.approx(900.0, rel=0.05)
    assert sum(profile.customers for profile in clustering.profiles) == 600


def test_behaviour_clusters_are_numbered_by_size_and_reproducible():
    # given groups of 150, 60 and 30 customers
    features, _ = _blobs(per_blob=150, seed=4)
    keep = np.r_[0:150, 150:210, 300:330]
    features = {name: values[keep] for name, values in features.items()}

    # when
    first = behaviour_clusters(features, k_range=range(2, 5), seed=1)
    second = behaviour_clusters(features, k_range=range(2, 5), seed=1)

    # then
    assert [profile.customers for profile in first.profiles] == [150, 60, 30]
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.silhouette_by_k == second.silhouette_by_k


def test_behaviour_clusters_shrink_the_range_for_few_customers():
    # given 15 customers: at least 3 per cluster allows k up to 5
    features, _ = _blobs(per_blob=5, seed=5)

    # when
    clustering = behaviour_clusters(features, k_range=range(2, 9))

    # then
    assert sorted(clustering.silhouette_by_k) == [2, 3, 4, 5]


def test_behaviour_clusters_put_fewer_than_ten_customers_in_one_cluster():
    # given nine customers
    features, _ = _blobs(per_blob=3, seed=6)

    # when
    clustering = behaviour_clusters(features)

    # then
    assert clustering.k == 1
    assert clustering.silhouette_by_k == {}
    assert clustering.labels.tolist() == [0] * 9
    assert len(clustering.profiles) == 1 and clustering.profiles[0].customers == 9


def test_behaviour_clusters_of_identical_customers_are_one_cluster():
    # given 30 customers who all look the same
    features = {"orders": np.ones(30), "revenue": np.full(30, 20.0)}

    # when
    clustering = behaviour_clusters(features)

    # then
    assert clustering.k == 1
    assert clustering.profiles[0].label == "typical customers"


def test_behaviour_clusters_sample_the_silhouette_with_the_seed():
    # given 600 customers and a silhouette sample of 100
    features, _ = _blobs(per_blob=200, seed=7)

    # when
    sampled = behaviour_clusters(features, k_range=range(2, 5), sample=100, seed=2)
    again = behaviour_clusters(features, k_range=range(2, 5), sample=100, seed=2)

    # then the sampled score still picks k = 3, and the same seed gives the same numbers
    assert sampled.k == 3
    assert sampled.silhouette_by_k == again.silhouette_by_k


def test_behaviour_clusters_name_unknown_features_plainly():
    # given two groups that differ only in a feature without a word of its own
    rng = np.random.default_rng(8)
    features = {"reviews_written": np.r_[rng.normal(1.0, 0.1, 40), rng.normal(20.0, 1.0, 40)]}

    # when
    clustering = behaviour_clusters(features, k_range=range(2, 4))

    # then
    assert clustering.k == 2
    assert {profile.label for profile in clustering.profiles} == {
        "customers with high reviews written",
        "customers with low reviews written",
    }


def test_behaviour_clusters_label_each_idea_once_with_the_insights_feature_set():
    # given the features loyalty.services.insights clusters on, where orders and frequency (repeat
    # purchases) both measure frequency, and monetary is 0 for every one-time buyer
    features, _ = _blobs(per_blob=100, seed=9)
    orders = features["orders"]
    features = {
        "recency_days": features["days_since_last"],
        "frequency": orders - 1,
        "monetary": np.where(orders > 1, features["revenue"] / orders, 0.0),
        "orders": orders,
        "revenue": features["revenue"],
        "tenure_days": np.full(300, 400.0),
    }

    # when
    clustering = behaviour_clusters(features, k_range=range(2, 5))

    # then one word per idea, the spend named by revenue
    labels = {profile.label for profile in clustering.profiles}
    assert "recent frequent high spenders" in labels
    assert "one-time low spenders" in labels


def test_behaviour_clusters_reject_missing_values():
    # given / when / then
    with pytest.raises(ValueError):
        behaviour_clusters({"orders": np.array([1.0, np.nan] * 10)})


def test_rfm_module_imports_no_django():
    # given / when a fresh interpreter imports the module
    result = subprocess.run(
        [sys.executable, "-c", "import sys, loyalty.rfm; print('django' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )

    # then
    assert result.stdout.strip() == "False"
