"""Association rules on orders ("frequently bought together") and bundles.

For a rule a → b over N orders: support = n(a, b) / N, confidence = n(a, b) / n(a), and
lift = confidence / (n(b) / N). Rules are ranked by confidence × lift; a rule needs a minimum
number of orders holding both items (and a minimum support) and a lift above 1, so that one
coincidental order is not a rule.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommendations.engine.dataset import Baskets
from recommendations.engine.signals import basket_matrix

MIN_PAIR_ORDERS = 2
MIN_SUPPORT = 1e-4
# Bundles are grown from an item's best rules: its top consequents, paired.
BUNDLE_SEEDS = 6
BUNDLES_PER_ITEM = 3


@dataclass(frozen=True)
class Rule:
    antecedent: int  # item index
    consequent: int  # item index
    support: float
    confidence: float
    lift: float

    @property
    def score(self) -> float:
        return self.confidence * self.lift


def min_pair_orders(order_count: int, *, min_count: int = MIN_PAIR_ORDERS, min_support: float = MIN_SUPPORT) -> int:
    return max(min_count, math.ceil(min_support * order_count))


def association_rules(
    *, baskets: Baskets, item_count: int, k: int, min_count: int = MIN_PAIR_ORDERS, min_support: float = MIN_SUPPORT
) -> dict[int, list[Rule]]:
    """Antecedent item index -> its k best rules by confidence × lift."""
    order_count = len(baskets)
    if order_count == 0:
        return {}
    orders = basket_matrix(baskets=baskets, item_count=item_count).tocsc()
    item_orders = np.asarray(orders.sum(axis=0)).ravel()
    pairs = (orders.T @ orders).tocsr()
    pairs.setdiag(0.0)
    pairs.eliminate_zeros()
    threshold = min_pair_orders(order_count, min_count=min_count, min_support=min_support)
    rules: dict[int, list[Rule]] = {}
    for antecedent in range(item_count):
        start, end = pairs.indptr[antecedent], pairs.indptr[antecedent + 1]
        together = pairs.data[start:end]
        consequents = pairs.indices[start:end]
        keep = together >= threshold
        if not keep.any():
            continue
        together, consequents = together[keep], consequents[keep]
        confidence = together / item_orders[antecedent]
        lift = confidence / (item_orders[consequents] / order_count)
        positive = lift > 1.0
        if not positive.any():
            continue
        together, consequents, confidence, lift = (
            together[positive],
            consequents[positive],
            confidence[positive],
            lift[positive],
        )
        order = np.lexsort((consequents, -together, -(confidence * lift)))[:k]
        rules[antecedent] = [
            Rule(
                antecedent=antecedent,
                consequent=int(consequents[i]),
                support=float(together[i] / order_count),
                confidence=float(confidence[i]),
                lift=float(lift[i]),
            )
            for i in order
        ]
    return rules


def bundles(
    *, baskets: Baskets, item_count: int, rules: dict[int, list[Rule]], min_count: int = MIN_PAIR_ORDERS
) -> dict[int, list[list[int]]]:
    """Item index -> up to three item sets (the item first) ordered together as a whole.

    Triples whose three items share at least `min_count` orders come first (most shared first), then
    the item's best rule as a pair when no triple qualifies.
    """
    if len(baskets) == 0:
        return {}
    orders_of_item = sp.csc_matrix(basket_matrix(baskets=baskets, item_count=item_count))
    threshold = min_pair_orders(len(baskets), min_count=min_count)

    def orders_holding(item: int) -> set[int]:
        return set(orders_of_item.indices[orders_of_item.indptr[item] : orders_of_item.indptr[item + 1]].tolist())

    result: dict[int, list[list[int]]] = {}
    for anchor, anchor_rules in rules.items():
        anchor_orders = orders_holding(anchor)
        seeds = [rule.consequent for rule in anchor_rules[:BUNDLE_SEEDS]]
        seed_orders = {seed: anchor_orders & orders_holding(seed) for seed in seeds}
        triples: list[tuple[int, list[int]]] = []
        for first, second in itertools.combinations(seeds, 2):
            shared = len(seed_orders[first] & seed_orders[second])
            if shared >= threshold:
                triples.append((shared, [anchor, first, second]))
        triples.sort(key=lambda entry: -entry[0])
        chosen = [items for _, items in triples[:BUNDLES_PER_ITEM]]
        if not chosen:
            chosen = [[anchor, anchor_rules[0].consequent]]
        result[anchor] = chosen
    return result
