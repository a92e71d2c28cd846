import pytest

from recommendations.engine.dataset import TrainingParams
from recommendations.engine.popularity import (
    new_arrivals,
    popularity_scores,
    ranked,
    ranked_by_category,
    trending_scores,
)
from tests.recommendations.engine.data import NOW, make_data, make_items


def test_popularity_weighs_feedback_kinds_and_halves_every_half_life():
    # given: a purchase today, a purchase one half-life ago, a view today
    data = make_data([(0, 0, "purchase", 0), (1, 1, "purchase", 30), (2, 2, "view", 0)], items=4, users=3)
    params = TrainingParams(half_life_days=30.0)

    # when
    scores = popularity_scores(data=data, params=params)

    # then
    assert scores.tolist() == pytest.approx([8.0, 4.0, 1.0, 0.0])
    assert ranked(scores=scores, items=data.items, k=10) == [(100, 8.0), (101, 4.0), (102, 1.0)]


def test_a_recent_burst_trends_and_a_steady_item_does_not():
    # given: item 0 viewed once a day for 120 days; item 1 viewed five times a day in the last 3 days
    events = [(0, 0, "view", day + 0.5) for day in range(120)]
    events += [(1, 1, "view", day + 0.1 * repeat) for day in range(3) for repeat in range(5)]
    data = make_data(events, items=2, users=2)

    # when
    trending = trending_scores(data=data, params=TrainingParams(half_life_days=30.0))

    # then
    assert trending[1] > 1.0
    assert abs(trending[0]) < 0.5 * trending[1]
    assert [product for product, _ in ranked(scores=trending, items=data.items, k=5)][0] == 101


def test_popular_by_category_keeps_each_category_s_items_apart():
    # given
    items = make_items(4, categories=[1, 1, 2, -1])
    data = make_data(
        [(0, 0, "purchase", 1), (0, 1, "view", 1), (0, 2, "cart", 1), (0, 3, "purchase", 1)], items=items, users=1
    )

    # when
    by_category = ranked_by_category(scores=popularity_scores(data=data, params=TrainingParams()), items=items, k=5)

    # then
    assert {category: [product for product, _ in lines] for category, lines in by_category.items()} == {
        1: [100, 101],
        2: [102],
    }


def test_new_arrivals_are_the_products_created_within_the_window_newest_first():
    # given
    items = make_items(4, created_days_ago=[3, 20, 1, -2])

    # when
    fresh = new_arrivals(items=items, now=NOW, new_arrival_days=14)

    # then: item 3 is created in the future (a scheduled launch) and is not new yet
    assert fresh == [102, 100]
