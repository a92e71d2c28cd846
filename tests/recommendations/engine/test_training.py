import numpy as np
import pytest

from recommendations.engine.dataset import TrainingParams
from recommendations.engine.precomputed import REASONS, Precomputed, precomputed_from_bytes, precomputed_to_bytes
from recommendations.engine.training import train
from tests.recommendations.engine.data import make_data, make_items


def _shop():
    """20 customers buy 0 with 1, 20 buy 5 with 6 (in orders and sessions); customer 40 bought 0 and
    5, and viewed 9; customer 41 never did anything."""
    events = []
    orders = []
    for user in range(40):
        pair = (0, 1) if user < 20 else (5, 6)
        session = user
        for position, item in enumerate(pair):
            events.append((user, item, "purchase", 10 + position, session))
        events.append((user, 2 + user % 3, "view", 12, session))
        orders.append((user, list(pair), 10))
    events += [(40, 0, "purchase", 3, 100), (40, 5, "purchase", 2, 101), (40, 9, "view", 1, 102)]
    items = make_items(
        10,
        categories=[1, 1, 1, 2, 2, 3, 3, 3, 4, 4],
        brands=["Acme", "Acme", "", "", "", "Zoom", "Zoom", "", "", ""],
        titles=["tent", "tent pegs", "mug", "cup", "bowl", "shoe", "shoe laces", "sock", "hat", "cap"],
        created_days_ago=[400, 400, 400, 400, 400, 400, 400, 400, 5, 2],
    )
    return make_data(events, items=items, users=42, orders=orders)


def test_train_fills_every_list_with_database_ids():
    # given
    data = _shop()
    fractions = []

    # when
    result = train(data, TrainingParams(), progress=lambda fraction, message: fractions.append(fraction))

    # then
    product_ids = set(data.items.ids.tolist())
    assert isinstance(result, Precomputed)
    assert set(result.for_customer) <= set(data.users.ids.tolist())
    assert result.popular[0][0] in product_ids
    assert {product for product, _ in result.trending} <= product_ids
    assert result.purchased_together[100][0][0] == 101
    assert result.viewed_together[100]
    assert result.bought_together[100][0].product_id == 101
    assert result.bought_together[100][0].lift == pytest.approx(2.0)
    assert result.bundles[100] == [[100, 101]]
    assert result.similar_content[105][0][0] == 106
    assert set(result.popular_by_category) <= {1, 2, 3, 4}
    assert result.new_arrivals == [109, 108]
    assert result.product_category[108] == 4
    assert set(result.item_vectors) == product_ids
    assert all(np.isclose(np.linalg.norm(vector), 1.0) for vector in result.item_vectors.values())
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert precomputed_from_bytes(precomputed_to_bytes(result)).for_customer == result.for_customer


def test_personal_candidates_exist_for_known_customers_only_and_skip_their_history():
    # given
    data = _shop()

    # when
    result = train(data, TrainingParams(candidates_per_user=5))

    # then
    assert 1041 not in result.for_customer
    candidates = result.for_customer[1040]
    assert len(candidates) == 5
    assert {candidate.product_id for candidate in candidates}.isdisjoint({100, 105, 109})
    assert all(candidate.reason in REASONS for candidate in candidates)
    scores = [candidate.score for candidate in candidates]
    assert scores == sorted(scores, reverse=True)


def test_explanations_point_at_the_history_item_that_brings_the_candidate():
    # given: customer 40 bought 0 (bought with 1) and 5 (bought with 6)
    data = _shop()

    # when
    result = train(data, TrainingParams())

    # then
    explained = {candidate.product_id: candidate for candidate in result.for_customer[1040]}
    assert explained[101].because_of == 100
    assert explained[101].reason == "purchased"
    assert explained[106].because_of == 105


def test_a_viewed_history_item_is_explained_as_viewed():
    # given: customer 40 only viewed item 0
    events = [(user, item, "purchase", 10) for user in range(20) for item in (0, 1)] + [(20, 0, "view", 1)]
    data = make_data(events, items=4, users=21)

    # when
    result = train(data, TrainingParams())

    # then
    first = next(candidate for candidate in result.for_customer[1020] if candidate.product_id == 101)
    assert (first.reason, first.because_of) == ("viewed", 100)


def test_a_shop_without_interactions_still_trains_its_non_personal_lists():
    # given
    data = make_data([], items=make_items(3, created_days_ago=[1, 30, 2]), users=2)

    # when
    result = train(data, TrainingParams())

    # then
    assert result.for_customer == {} and result.popular == []
    assert result.new_arrivals == [100, 102]
    assert len(result.item_vectors) == 3
