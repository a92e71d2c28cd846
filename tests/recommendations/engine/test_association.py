import pytest

from recommendations.engine.association import association_rules, bundles
from recommendations.engine.dataset import Baskets
from tests.recommendations.engine.data import make_data


def _baskets(orders: list[list[int]]) -> Baskets:
    return make_data([], items=6, users=1, orders=[(0, order, 1) for order in orders]).baskets


def test_rule_support_confidence_and_lift_match_the_hand_computation():
    # given: 10 orders; items 0 and 1 together in 4, item 0 alone in 1, item 1 with 2 once, item 2 alone in 4
    orders = [[0, 1]] * 4 + [[0]] + [[1, 2]] + [[2]] * 4

    # when
    rules = association_rules(baskets=_baskets(orders), item_count=6, k=5)

    # then: n(0)=5, n(1)=5, n(0,1)=4 over 10 orders
    rule = rules[0][0]
    assert rule.consequent == 1
    assert rule.support == pytest.approx(0.4)
    assert rule.confidence == pytest.approx(0.8)
    assert rule.lift == pytest.approx(0.8 / 0.5)
    assert rule.score == pytest.approx(0.8 * 1.6)


def test_a_pair_seen_in_one_order_or_with_lift_below_one_is_not_a_rule():
    # given: 1 and 2 together once; 3 is in every order, so it lifts nothing
    orders = [[0, 1, 3]] * 4 + [[1, 2, 3]] + [[2, 3]] * 4

    # when
    rules = association_rules(baskets=_baskets(orders), item_count=6, k=5)

    # then
    assert [rule.consequent for rule in rules[1]] == [0]
    assert 3 not in rules
    assert all(rule.consequent != 3 for item_rules in rules.values() for rule in item_rules)


def test_rules_rank_by_confidence_times_lift():
    # given: 0 → 1 has higher confidence; 0 → 2 has a rarer consequent, hence higher lift
    orders = [[0, 1]] * 6 + [[0, 2]] * 3 + [[1]] * 10 + [[3]] * 10

    # when
    rules = association_rules(baskets=_baskets(orders), item_count=6, k=5)

    # then: 0→1: conf 6/9, lift (6/9)/(16/29); 0→2: conf 3/9, lift (3/9)/(3/29)
    assert [rule.consequent for rule in rules[0]] == [2, 1]
    assert rules[0][0].score > rules[0][1].score


def test_bundles_are_triples_ordered_together_and_fall_back_to_the_best_pair():
    # given: 0, 1, 2 ordered together three times; 4 and 5 together twice
    orders = [[0, 1, 2]] * 3 + [[0, 3]] + [[4, 5]] * 2 + [[3]] * 2
    baskets = _baskets(orders)
    rules = association_rules(baskets=baskets, item_count=6, k=5)

    # when
    found = bundles(baskets=baskets, item_count=6, rules=rules)

    # then
    assert found[0] == [[0, 1, 2]]
    assert found[4] == [[4, 5]]
