from recommendations.engine.neighbours import purchased_together, viewed_together
from tests.recommendations.engine.data import make_data


def test_items_bought_by_the_same_customers_are_co_purchase_neighbours():
    # given: customers 0-2 bought items 0 and 1 (one of them in an order); customer 3 bought 2 and 3
    events = [(user, item, "purchase", 5) for user in (0, 1) for item in (0, 1)]
    events += [(3, 2, "purchase", 5), (3, 3, "purchase", 5), (2, 0, "view", 5), (2, 2, "view", 5)]
    data = make_data(events, items=4, users=4, orders=[(2, [0, 1], 4)])

    # when
    neighbours = purchased_together(data, k=5)

    # then: views are not purchases, so items 0 and 2 are not neighbours
    assert [item for item, _ in neighbours[0]] == [1]
    assert [item for item, _ in neighbours[2]] == [3]


def test_items_viewed_in_the_same_session_are_co_view_neighbours_ranked_by_how_often():
    # given: item 0 is viewed with item 1 in three sessions and with item 2 in one
    events = [(0, 0, "view", 1, session) for session in (1, 2, 3)]
    events += [(0, 1, "view", 1, session) for session in (1, 2, 3)]
    events += [(1, 0, "view", 1, 4), (1, 2, "view", 1, 4), (1, 3, "view", 1, -1), (1, 0, "view", 2, -1)]
    data = make_data(events, items=4, users=2)

    # when
    neighbours = viewed_together(data, k=5)

    # then: interactions without a session never pair up
    assert [item for item, _ in neighbours[0]] == [1, 2]
    assert neighbours[0][0][1] > neighbours[0][1][1]
    assert 3 not in neighbours
