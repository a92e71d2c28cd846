"""Uplift of incentives on checkout: P(order | cart, incentive) for each incentive kind, learned from
randomized decisions (T-learner and X-learner on gradient boosting). Pure: no Django.

Contract written by the lead; the body is being built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class IncentiveResponseModel:
    """Predicts P(order) under each incentive kind. `kinds[0]` is always "none" (the control)."""

    kinds: tuple[str, ...]
    method: str  # "t_learner" | "x_learner"
    feature_names: tuple[str, ...]
    estimators: dict = field(default_factory=dict)

    def order_probabilities(self, X: np.ndarray) -> np.ndarray:
        """Shape (n, len(kinds)): P(order | features, kind) for each kind."""
        raise NotImplementedError


@dataclass(frozen=True)
class UpliftMetrics:
    # Per kind (not "none"): {"estimate", "low", "high", "n"} average treatment effect on conversion from
    # the randomized data itself (difference in means with a 95% interval).
    ate: dict
    # Per kind: the Qini coefficient / AUUC of the model's ranking on held-out randomized rows.
    qini: dict
    # Held-out policy value (inverse propensity weighted margin per decision) of: the model's choice,
    # each blanket kind, and no offer.
    policy_value: dict
    train_rows: int
    test_rows: int


def uplift_fit(
    X: np.ndarray,
    kinds: Sequence[str],
    converted: np.ndarray,
    *,
    all_kinds: Sequence[str],
    feature_names: Sequence[str],
    method: str = "x_learner",
    margin: np.ndarray | None = None,
    cost: np.ndarray | None = None,
    propensity: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[IncentiveResponseModel, UpliftMetrics]:
    """Fit on randomized rows: X features, kinds[i] the incentive drawn, converted[i] 0/1. margin[i] the
    cart's margin before the incentive and cost[i] its cost if redeemed (for policy value)."""
    raise NotImplementedError
