import numpy as np

from recommendations.engine.split import temporal_split
from tests.recommendations.engine.data import NOW, make_data


def test_each_user_s_last_fifth_is_held_out_and_train_holds_only_earlier_interactions():
    # given: user 0 buys items 0..9 on days 10..1 before now; user 1 buys three items
    events = [(0, item, "purchase", 10 - item) for item in range(10)]
    events += [(1, item, "purchase", 5 - item) for item in range(3)]
    data = make_data(events, items=10, users=2)

    # when
    train, holdout = temporal_split(data)

    # then
    assert holdout == {0: {8, 9}}
    user_0 = train.interactions.user == 0
    assert sorted(train.interactions.item[user_0].tolist()) == list(range(8))
    assert train.interactions.timestamp[user_0].max() < NOW - 2 * 86_400.0
    assert (train.interactions.user == 1).sum() == 3


def test_no_interaction_at_or_after_a_user_s_cut_stays_in_train():
    # given: views of a later item after the cut, and another user's later activity
    events = [(0, item, "purchase", 20 - item) for item in range(10)]
    events += [(0, 9, "view", 0.5), (1, 4, "purchase", 0.1)]
    events += [(1, item, "purchase", 30 - item) for item in range(5)]
    data = make_data(events, items=10, users=2)

    # when
    train, holdout = temporal_split(data)

    # then
    for user in (0, 1):
        held = holdout[user]
        first_held = min(
            data.interactions.timestamp[(data.interactions.user == user) & np.isin(data.interactions.item, list(held))]
        )
        assert (train.interactions.timestamp[train.interactions.user == user] < first_held).all()


def test_a_held_out_item_the_user_already_viewed_before_the_cut_is_dropped():
    # given: user 0 viewed item 9 long ago and buys it last
    events = [(0, item, "purchase", 20 - item) for item in range(10)] + [(0, 9, "view", 40)]
    data = make_data(events, items=10, users=1)

    # when: only purchases count as hits
    train, holdout = temporal_split(data, positive_kinds=("purchase",))

    # then
    assert holdout == {0: {8}}
    assert 9 in train.interactions.item.tolist()


def test_orders_after_the_cut_leave_train():
    # given
    events = [(0, item, "purchase", 10 - item) for item in range(10)]
    data = make_data(events, items=10, users=1, orders=[(0, [0, 1], 9.5), (0, [8, 9], 1.5)])

    # when
    train, _ = temporal_split(data)

    # then
    assert len(train.baskets) == 1
    assert train.baskets.item.tolist() == [0, 1]


def test_by_default_every_kind_of_engagement_is_a_hit():
    # given: a shopper who only views; five distinct products, one after the other
    events = [(0, item, "view", 10 - item) for item in range(5)] + [(0, 0, "purchase", 9.5)]
    data = make_data(events, items=5, users=1)

    # when
    train, holdout = temporal_split(data)

    # then: the last product viewed is held out, the earlier ones (and the purchase) stay in train
    assert holdout == {0: {4}}
    assert sorted(set(train.interactions.item.tolist())) == [0, 1, 2, 3]
