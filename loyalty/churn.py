"""Churn: will a customer buy nothing in the next `horizon_days`? Gradient boosting (scikit-learn) on
behavioural features, trained on a temporal split. Pure: no Django; `loyalty.selectors.churn` builds the
feature tables from the shop's orders and events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FEATURES = (
    "days_since_last_order",
    "orders",
    "revenue",
    "mean_order_value",
    "days_since_first_order",
    "orders_last_90d",
    "sessions_last_30d",
    "sessions_last_90d",
    "product_views_last_30d",
    "cart_adds_last_30d",
    "days_since_last_session",
    "refunds",
    "discount_share",
    "marketing_consent",
)


@dataclass(frozen=True)
class FeatureTable:
    """One row per customer as of `as_of` (an ISO date string), columns in FEATURES order."""

    customer_id: np.ndarray  # int64
    values: np.ndarray  # float64, shape (n, len(FEATURES))
    as_of: str
    # 1 = no order in the horizon after as_of (only known for training tables), else None.
    churned: np.ndarray | None = None


@dataclass(frozen=True)
class ChurnEvaluation:
    auc: float
    threshold: float  # the probability above which a customer is flagged
    precision: float  # at the threshold
    recall: float
    flagged_share: float
    base_rate: float  # share churned in the test set
    # Reliability: [(mean predicted, observed rate, customers)] per probability decile.
    calibration: list[tuple[float, float, int]] = field(default_factory=list)
    brier: float = 0.0
    train_customers: int = 0
    test_customers: int = 0
    feature_importance: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ChurnModel:
    model: object  # a fitted scikit-learn estimator with predict_proba
    evaluation: ChurnEvaluation
    features: tuple[str, ...] = FEATURES


def churn_train(train: FeatureTable, test: FeatureTable, *, seed: int = 0) -> ChurnModel:
    """Fit on `train` (features as of an earlier date, labelled by the following horizon), evaluate on `test`
    (a later as-of date, labelled the same way): a temporal split, never a random one. The threshold maximises
    F1 on the training labels (out of fold); calibration by isotonic or sigmoid if it improves the Brier score."""
    raise NotImplementedError


def churn_score(model: ChurnModel, table: FeatureTable) -> np.ndarray:
    raise NotImplementedError
