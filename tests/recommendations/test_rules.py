import pytest

from recommendations.engine.precomputed import Candidate
from recommendations.rules import (
    ItemRule,
    PlacementPolicy,
    ProductFacts,
    RuleContext,
    apply_rules,
    cap_per_category,
    descendants,
    impression_counts,
    mmr,
    place_pins,
)

NOW = 1_000_000.0
DAY = 86400.0


def _facts(*rows):
    """(product, category[, active, in stock]) → facts."""
    facts = {}
    for row in rows:
        product_id, category_id, *flags = row
        active, in_stock = (flags + [True, True])[:2]
        facts[product_id] = ProductFacts(product_id, category_id, active, in_stock)
    return facts


def _candidates(*product_ids):
    return [Candidate(product_id, 1.0 - index * 0.1, "popular") for index, product_id in enumerate(product_ids)]


def _context(facts, **overrides):
    values = {"placement": "home", "policy": PlacementPolicy(), "facts": facts, "now": NOW, "k": 10}
    values.update(overrides)
    return RuleContext(**values)


def _ids(candidates):
    return [candidate.product_id for candidate in candidates]


def test_descendants_walk_the_tree():
    # given 1 > 2 > 3, and 4 alone
    parents = {1: None, 2: 1, 3: 2, 4: None}

    # when / then
    assert descendants(parents=parents, roots=[1]) == {1, 2, 3}
    assert descendants(parents=parents, roots=[2, 4]) == {2, 3, 4}
    assert descendants(parents=parents, roots=[99]) == frozenset()


def test_inactive_out_of_stock_and_unknown_products_are_dropped():
    # given 2 inactive, 3 out of stock, 4 not in the database answer
    facts = _facts((1, 1), (2, 1, False, True), (3, 1, True, False))

    # when
    result = apply_rules(_candidates(1, 2, 3, 4), _context(facts))

    # then
    assert _ids(result) == [1]


def test_the_products_in_play_are_excluded():
    # when
    result = apply_rules(_candidates(1, 2), _context(_facts((1, 1), (2, 1)), excluded=frozenset({1})))

    # then
    assert _ids(result) == [2]


def test_purchased_products_are_excluded_unless_repurchasable():
    # given 1 (category 5) and 2 (category 6) were bought; category 6 is repurchasable
    facts = _facts((1, 5), (2, 6), (3, 5))
    policy = PlacementPolicy(repurchasable_categories=frozenset({6}))

    # when
    result = apply_rules(_candidates(1, 2, 3), _context(facts, policy=policy, purchased=frozenset({1, 2})))
    unruled = apply_rules(
        _candidates(1, 2, 3),
        _context(facts, policy=PlacementPolicy(exclude_purchased=False), purchased=frozenset({1, 2})),
    )

    # then
    assert _ids(result) == [2, 3]
    assert _ids(unruled) == [1, 2, 3]


def test_category_filters_intersect():
    # given products in categories 5, 6 and 7; the placement allows 5 and 6; the request asks 6 and 7
    facts = _facts((1, 5), (2, 6), (3, 7))
    policy = PlacementPolicy(allowed_categories=frozenset({5, 6}))

    # when
    result = apply_rules(_candidates(1, 2, 3), _context(facts, policy=policy, requested_categories=frozenset({6, 7})))

    # then
    assert _ids(result) == [2]


def test_uncategorised_products_fail_a_category_filter():
    # when
    result = apply_rules(_candidates(1), _context(_facts((1, None)), requested_categories=frozenset({5})))

    # then
    assert result == []


def test_boosts_multiply_and_blocks_remove():
    # given
    rules = (ItemRule(3, "boost", boost=2.0), ItemRule(2, "block"))

    # when
    result = apply_rules(_candidates(1, 2, 3), _context(_facts((1, 1), (2, 1), (3, 1)), item_rules=rules))

    # then 3 (0.8 × 2) beats 1 (1.0)
    assert _ids(result) == [3, 1]
    assert result[0].score == pytest.approx(1.6)


def test_pins_take_their_position_with_the_displaced_score():
    # given 9 pinned at 2 though not a candidate; 2 pinned at 1
    rules = (ItemRule(9, "pin", position=2), ItemRule(2, "pin", position=1))
    facts = _facts((1, 1), (2, 1), (3, 1), (9, 1))

    # when
    result = apply_rules(_candidates(1, 2, 3), _context(facts, item_rules=rules, k=3))

    # then
    assert _ids(result) == [2, 9, 1]
    assert [c.reason for c in result] == ["pinned", "pinned", "popular"]
    assert result[1].score == result[2].score


def test_a_pin_of_an_out_of_stock_product_is_ignored():
    # when
    result = apply_rules(
        _candidates(1), _context(_facts((1, 1), (9, 1, True, False)), item_rules=(ItemRule(9, "pin", position=1),))
    )

    # then
    assert _ids(result) == [1]


def test_pins_beyond_the_list_go_last():
    # when
    result = place_pins(_candidates(1), pins={9: 5}, k=10)

    # then
    assert _ids(result) == [1, 9]


@pytest.mark.parametrize(
    ("rule", "applies"),
    [
        (ItemRule(1, "block"), True),
        (ItemRule(1, "block", placement="home"), True),
        (ItemRule(1, "block", placement="email"), False),
        (ItemRule(1, "block", starts_at=NOW + 1), False),
        (ItemRule(1, "block", starts_at=NOW - 1, ends_at=NOW + 1), True),
        (ItemRule(1, "block", ends_at=NOW), False),
    ],
)
def test_item_rules_apply_to_their_placement_and_window(rule, applies):
    # when
    result = apply_rules(_candidates(1), _context(_facts((1, 1)), item_rules=(rule,)))

    # then
    assert (result == []) is applies


def test_impressions_count_since_the_last_click_within_the_window():
    # given 1 shown 3 times (one outside the window), 2 shown twice and clicked after the first
    impressions = {1: [NOW - 8 * DAY, NOW - 2 * DAY, NOW - DAY], 2: [NOW - 3 * DAY, NOW - DAY]}

    # when
    counts = impression_counts(impressions=impressions, engaged={2: NOW - 2 * DAY}, now=NOW, window_seconds=7 * DAY)

    # then
    assert counts == {1: 2, 2: 1}


def test_impressions_discount_the_score():
    # given 1 shown twice, discount 0.5 → 0.25
    policy = PlacementPolicy(impression_discount=0.5)

    # when
    result = apply_rules(_candidates(1, 2), _context(_facts((1, 1), (2, 1)), policy=policy, impressions={1: 2}))

    # then
    assert _ids(result) == [2, 1]
    assert result[1].score == pytest.approx(0.25)


def test_cap_per_category():
    # given
    facts = _facts((1, 5), (2, 5), (3, 6), (4, 5))

    # when / then
    assert _ids(cap_per_category(_candidates(1, 2, 3, 4), facts=facts, limit=2)) == [1, 2, 3]
    assert _ids(cap_per_category(_candidates(1, 2, 3, 4), facts=facts, limit=None)) == [1, 2, 3, 4]


def test_mmr_trades_relevance_for_variety():
    # given 1 and 2 identical, 3 different and a little less relevant
    candidates = [Candidate(1, 1.0, "popular"), Candidate(2, 0.95, "popular"), Candidate(3, 0.9, "popular")]
    vectors = {1: [1.0, 0.0], 2: [1.0, 0.0], 3: [0.0, 1.0]}

    # when / then
    assert _ids(mmr(candidates, vectors=vectors, lambda_=0.5, k=3)) == [1, 3, 2]
    assert _ids(mmr(candidates, vectors=vectors, lambda_=1.0, k=3)) == [1, 2, 3]


def test_mmr_through_the_policy():
    # given
    facts = _facts((1, 5), (2, 5), (3, 5))
    vectors = {1: [1.0, 0.0], 2: [1.0, 0.0], 3: [0.0, 1.0]}

    # when
    result = apply_rules(
        _candidates(1, 2, 3), _context(facts, policy=PlacementPolicy(mmr_lambda=0.5), vectors=vectors, k=2)
    )

    # then
    assert _ids(result) == [1, 3]


def test_k_bounds_the_list_and_duplicates_are_dropped():
    # when
    result = apply_rules(_candidates(1, 1, 2, 3), _context(_facts((1, 1), (2, 1), (3, 1)), k=2))

    # then
    assert _ids(result) == [1, 2]
