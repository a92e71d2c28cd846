import pytest

from recommendations.engine.blend import BlendInput, blend, normalized, session_affinity


def _ids(candidates):
    return [candidate.product_id for candidate in candidates]


def test_normalized_keeps_order_and_maps_onto_half_to_one():
    # when
    values = normalized([(1, 10.0), (2, 5.0), (3, 0.0)])

    # then
    assert values == [(1, 1.0), (2, 0.75), (3, 0.5)]


def test_normalized_handles_negative_and_equal_scores():
    # when / then
    assert normalized([(1, -1.0), (2, -3.0)]) == [(1, 1.0), (2, 0.5)]
    assert normalized([(1, 2.0), (2, 2.0)]) == [(1, 1.0), (2, 1.0)]
    assert normalized([]) == []


def test_home_with_history_keeps_the_personal_order_even_when_scores_disagree():
    # given a personal list whose fourth score is out of order
    personal = [
        (10, 0.9, "for_you", None),
        (11, 0.5, "viewed", 99),
        (12, 0.4, "for_you", None),
        (13, 0.45, "for_you", None),
    ]

    # when
    ranked = blend(BlendInput(placement="home", for_customer=personal, popular=[(13, 100.0), (20, 50.0)], limit=6))

    # then the personal list in its order, then the popular fill below it
    assert _ids(ranked) == [10, 11, 12, 13, 20]
    assert ranked[1].reason == "viewed" and ranked[1].because_of == 99
    assert ranked[4].reason == "popular"
    assert ranked[4].score < ranked[3].score


def test_home_without_history_blends_popular_trending_and_new_arrivals():
    # given an item that is both popular and trending
    blend_input = BlendInput(
        placement="home",
        popular=[(1, 100.0), (2, 90.0), (3, 10.0)],
        trending=[(3, 9.0), (4, 1.0)],
        new_arrivals=[5],
    )

    # when
    ranked = blend(blend_input)

    # then item 3 rises above 2: two lists agree on it
    assert _ids(ranked)[:2] == [3, 1]
    assert set(_ids(ranked)) == {1, 2, 3, 4, 5}
    assert {c.product_id: c.reason for c in ranked}[4] == "trending"
    assert {c.product_id: c.reason for c in ranked}[5] == "new_arrival"


def test_cold_start_uses_content_neighbours_of_the_sessions_views():
    # given a new visitor who viewed product 7, whose similar product is 8
    blend_input = BlendInput(
        placement="home",
        session_views=[7],
        item_lists={7: {"sc": [(8, 0.9)]}},
        popular=[(1, 100.0), (2, 50.0)],
    )

    # when
    ranked = blend(blend_input)

    # then
    assert ranked[0].product_id == 8
    assert ranked[0].reason == "viewed"
    assert ranked[0].because_of == 7


def test_the_newest_session_view_counts_most():
    # given two views, newest first, with different neighbours
    affinity = session_affinity(
        BlendInput(placement="home", session_views=[1, 2], item_lists={1: {"vt": [(10, 1.0)]}, 2: {"vt": [(20, 1.0)]}})
    )

    # then
    assert affinity[10] == (1.0, 1)
    assert affinity[20] == (0.5, 2)


def test_a_session_moves_related_personal_items_up():
    # given a personal list where 12 is last, and the session viewed 5, whose neighbour is 12
    personal = [(10, 0.9, "for_you", None), (11, 0.8, "for_you", None), (12, 0.1, "for_you", None)]
    without = blend(BlendInput(placement="home", for_customer=personal))

    # when
    with_session = blend(
        BlendInput(placement="home", for_customer=personal, session_views=[5], item_lists={5: {"vt": [(12, 1.0)]}})
    )

    # then
    assert _ids(without) == [10, 11, 12]
    assert _ids(with_session)[0] == 12
    assert with_session[0].reason == "viewed" and with_session[0].because_of == 5


def test_pdp_draws_on_the_products_lists_and_never_shows_it():
    # given
    blend_input = BlendInput(
        placement="pdp",
        context_products=[1],
        item_lists={1: {"vt": [(2, 0.9), (1, 0.8)], "sc": [(3, 0.7)], "bt": [(4, 0.5)]}},
        popular=[(1, 10.0), (9, 5.0)],
    )

    # when
    ranked = blend(blend_input)

    # then
    assert 1 not in _ids(ranked)
    assert _ids(ranked)[0] == 2
    assert {c.product_id: c.reason for c in ranked} == {
        2: "viewed_together",
        3: "similar",
        4: "bought_together",
        9: "popular",
    }
    assert all(c.because_of == 1 for c in ranked if c.reason != "popular")


def test_pdp_personal_re_rank_lifts_the_customers_candidates():
    # given two equally related products, the second on the customer's personal list
    lists = {1: {"vt": [(2, 0.5), (3, 0.5)]}}

    # when
    anonymous = blend(BlendInput(placement="pdp", context_products=[1], item_lists=lists))
    personal = blend(
        BlendInput(placement="pdp", context_products=[1], item_lists=lists, for_customer=[(3, 1.0, "for_you", None)])
    )
    opted_out = blend(
        BlendInput(
            placement="pdp",
            personal=False,
            context_products=[1],
            item_lists=lists,
            for_customer=[(3, 1.0, "for_you", None)],
        )
    )

    # then
    assert _ids(anonymous) == [2, 3]
    assert _ids(personal) == [3, 2]
    assert _ids(opted_out) == [2, 3]


@pytest.mark.parametrize("placement", ["cart", "post_purchase"])
def test_baskets_sum_bought_together_over_their_items_and_exclude_them(placement):
    # given a basket of 1 and 2; 3 goes with both, 4 with one, and 2 goes with 1
    lists = {1: {"bt": [(3, 0.5), (2, 0.9)]}, 2: {"bt": [(3, 0.5), (4, 0.9)]}}

    # when
    ranked = blend(BlendInput(placement=placement, context_products=[1, 2], item_lists=lists))

    # then
    assert _ids(ranked) == [3, 4]
    assert ranked[0].reason == "bought_together"


def test_opted_out_home_ignores_history_and_session():
    # given
    blend_input = BlendInput(
        placement="home",
        personal=False,
        for_customer=[(10, 1.0, "for_you", None)],
        session_views=[7],
        item_lists={7: {"sc": [(8, 0.9)]}},
        popular=[(1, 100.0)],
    )

    # when
    ranked = blend(blend_input)

    # then
    assert _ids(ranked) == [1]


def test_the_fill_prefers_the_requested_categories_popular_items():
    # given
    blend_input = BlendInput(
        placement="pdp", context_products=[1], popular=[(5, 100.0)], category_lists={3: ([(6, 1.0)], [])}
    )

    # when
    ranked = blend(blend_input)

    # then
    assert _ids(ranked) == [6, 5]


def test_limit_bounds_the_pool():
    # when
    ranked = blend(BlendInput(placement="home", popular=[(i, float(100 - i)) for i in range(50)], limit=10))

    # then
    assert _ids(ranked) == list(range(10))
