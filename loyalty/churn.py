"""Churn: will a customer buy nothing in the next `horizon_days`? Gradient boosting (scikit-learn) on
behavioural features, trained on a temporal split. Pure: no Django; `loyalty.selectors.churn` builds the
feature tables from the shop's orders and events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.metrics import brier_score_loss, precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from revopt.classifiers import calibrated_fit, one_thread

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
COLUMN_INDEX = {name: index for index, name in enumerate(FEATURES)}

# The pure model's own floor; the service asks for more (loyalty.services.churn.MIN_LABELLED_CUSTOMERS).
MIN_CUSTOMERS = 20
MIN_PER_CLASS = 5
FOLDS = 5
IMPORTANCE_REPEATS = 5


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
    # "none", "isotonic" or "sigmoid": whichever scored the lowest Brier out of fold on the training table.
    calibration_method: str = "none"
    brier_out_of_fold: dict[str, float] = field(default_factory=dict)
    train_base_rate: float = 0.0


@dataclass(frozen=True)
class ChurnModel:
    model: object  # a fitted scikit-learn estimator with predict_proba
    evaluation: ChurnEvaluation
    features: tuple[str, ...] = FEATURES


def churn_train(train: FeatureTable, test: FeatureTable, *, seed: int = 0) -> ChurnModel:
    """Fit on `train` (features as of an earlier date, labelled by the following horizon), evaluate on `test`
    (a later as-of date, labelled the same way): a temporal split, never a random one. The threshold maximises
    F1 on the training labels (out of fold); calibration by isotonic or sigmoid if it improves the Brier score."""
    # One OpenMP thread: on a shop's few thousand rows more threads cost more than they save, and on a busy
    # worker they thrash (a 300-row fit took 7 s with the threads against 0.2 s without, on a loaded 2-core box).
    with one_thread():
        return _train(train, test, seed=seed)


def _train(train: FeatureTable, test: FeatureTable, *, seed: int) -> ChurnModel:
    x_train, y_train = _labelled(train, "train")
    x_test, y_test = _labelled(test, "test")
    folds = StratifiedKFold(n_splits=min(FOLDS, int(np.bincount(y_train).min())), shuffle=True, random_state=seed)
    fit = calibrated_fit(lambda: _classifier(seed), x_train, y_train, folds=folds)
    estimator, chosen, brier_by_method = fit.estimator, fit.method, fit.brier_out_of_fold
    threshold = best_f1_threshold(y_train, fit.out_of_fold)
    probability = estimator.predict_proba(x_test)[:, 1]
    flagged = probability >= threshold
    true_positives = int((flagged & (y_test == 1)).sum())
    importance = permutation_importance(
        estimator, x_test, y_test, scoring="roc_auc", n_repeats=IMPORTANCE_REPEATS, random_state=seed
    )
    evaluation = ChurnEvaluation(
        auc=float(roc_auc_score(y_test, probability)),
        threshold=float(threshold),
        precision=true_positives / int(flagged.sum()) if flagged.any() else 0.0,
        recall=true_positives / int((y_test == 1).sum()),
        flagged_share=float(flagged.mean()),
        base_rate=float(y_test.mean()),
        calibration=reliability_table(y_test, probability),
        brier=float(brier_score_loss(y_test, probability)),
        train_customers=len(y_train),
        test_customers=len(y_test),
        feature_importance={
            name: float(value) for name, value in zip(FEATURES, importance.importances_mean, strict=True)
        },
        calibration_method=chosen,
        brier_out_of_fold=brier_by_method,
        train_base_rate=float(y_train.mean()),
    )
    return ChurnModel(model=estimator, evaluation=evaluation)


def churn_score(model: ChurnModel, table: FeatureTable) -> np.ndarray:
    """P(no purchase in the horizon) per row of `table`."""
    if tuple(model.features) != FEATURES:
        raise ValueError(f"the model was trained on other features: {model.features}")
    if len(table.customer_id) == 0:
        return np.zeros(0)
    with one_thread():
        return np.asarray(model.model.predict_proba(_matrix(table))[:, 1], dtype=float)


def best_f1_threshold(labels: np.ndarray, probability: np.ndarray) -> float:
    """The probability cut-off with the highest F1 (flagged = probability ≥ cut-off)."""
    precision, recall, thresholds = precision_recall_curve(labels, probability)
    # precision/recall have one more entry than thresholds (the point where nobody is flagged).
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
    return float(thresholds[int(np.argmax(f1))])


def reliability_table(labels: np.ndarray, probability: np.ndarray, *, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, customers) per probability decile: equal-count groups in predicted order."""
    order = np.argsort(probability, kind="stable")
    return [
        (float(probability[group].mean()), float(labels[group].mean()), len(group))
        for group in np.array_split(order, min(bins, len(order)))
        if len(group)
    ]


def _classifier(seed: int) -> HistGradientBoostingClassifier:
    # Small, regularised trees: a shop has hundreds to a few hundred thousand customers; missing values
    # (a customer without any session) are handled natively.
    return HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=150,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        l2_regularization=1.0,
        random_state=seed,
    )


def _matrix(table: FeatureTable) -> np.ndarray:
    values = np.asarray(table.values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(FEATURES):
        raise ValueError(f"expected {len(FEATURES)} feature columns, got shape {values.shape}")
    return values


def _labelled(table: FeatureTable, name: str) -> tuple[np.ndarray, np.ndarray]:
    if table.churned is None:
        raise ValueError(f"the {name} table is not labelled")
    labels = np.asarray(table.churned, dtype=int)
    if len(labels) != len(table.customer_id):
        raise ValueError(f"the {name} table has {len(labels)} labels for {len(table.customer_id)} customers")
    if len(labels) < MIN_CUSTOMERS:
        raise ValueError(f"the {name} table has {len(labels)} customers, at least {MIN_CUSTOMERS} are needed")
    counts = np.bincount(labels, minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise ValueError(
            f"the {name} table needs at least {MIN_PER_CLASS} churned and {MIN_PER_CLASS} retained customers, "
            f"it has {counts[1]} churned and {counts[0]} retained"
        )
    return _matrix(table), labels
