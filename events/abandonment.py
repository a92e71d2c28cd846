"""Cart-abandonment prediction: the features of a live cart and the gradient-boosted model that scores it.

Pure: no Django. A `CartSnapshot` is what is known about a session at the moment its cart is looked at
(the storefront's "Cart Viewed", or a call to `POST /api/v1/offers/decide`). Training builds one snapshot per
past cart from the event log (`events.selectors.abandonment`), counting only events up to that moment, and
labels it with whether the session then placed an order; serving builds it from the request (the storefront
counts the session's signals itself) merged with what the event log already holds. The same
`snapshot_features` turns both into the model's matrix, so training and serving cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from revopt.classifiers import calibrated_fit, one_thread

# Behaviour the storefront may count for the live session and send with a decide request ("signals").
# The event log gives the same counts for past sessions:
#   product_views        "Product Viewed" events
#   list_views           "Product List Viewed" events
#   searches             "Products Searched" events
#   cart_adds            "Product Added" events
#   cart_removals        "Product Removed" events
#   shipping_info_views  "Page Viewed" whose properties.path contains "shipping" or "delivery"
#   returns_info_views   "Page Viewed" whose properties.path contains "return" or "refund"
#   price_sorted         1 if a "Product List Filtered" has a sort of type "price" (either direction)
#   coupon_attempts      "Coupon Entered" + "Coupon Denied" events
#   seconds_on_site      seconds from the session's first event to the snapshot
#   seconds_on_cart      seconds from the last "Product Added" to the snapshot
SIGNAL_NAMES: tuple[str, ...] = (
    "product_views",
    "list_views",
    "searches",
    "cart_adds",
    "cart_removals",
    "shipping_info_views",
    "returns_info_views",
    "price_sorted",
    "coupon_attempts",
    "seconds_on_site",
    "seconds_on_cart",
)
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet", "other")


@dataclass(frozen=True)
class CartSnapshot:
    cart_value: float  # the cart's subtotal in the shop's currency
    items: int  # units in the cart
    distinct_products: int
    device: str  # one of DEVICES
    source: str  # utm_source, "" for direct traffic
    hour_of_day: int  # in the shop's time zone, 0..23
    weekday: int  # Monday = 0
    logged_in: bool
    # The customer's history before this session.
    prior_orders: int = 0
    prior_sessions: int = 0
    days_since_last_order: float | None = None
    prior_revenue: float = 0.0
    # The session's behaviour so far, keyed by SIGNAL_NAMES (missing = 0).
    signals: dict[str, float] | None = None
    # Amount still needed for free shipping (0 when it is already free or the shop has no threshold).
    free_shipping_gap: float = 0.0


# Where the session came from, from the words of its utm_source ("" is direct traffic).
SOURCE_KINDS: tuple[str, ...] = ("direct", "search", "social", "email", "other")
_SOURCE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("email", ("email", "e-mail", "mail", "newsletter", "klaviyo", "mailchimp", "crm")),
    ("search", ("google", "bing", "yahoo", "duckduckgo", "ecosia", "baidu", "yandex", "search", "sem", "cpc")),
    (
        "social",
        (
            "facebook",
            "instagram",
            "tiktok",
            "twitter",
            "pinterest",
            "youtube",
            "snapchat",
            "reddit",
            "linkedin",
            "social",
            "meta",
            "fb",
            "ig",
            "x.com",
        ),
    ),
)
# Columns of the baseline the merchant compares against: what is known without watching behaviour.
BASELINE_FEATURES: tuple[str, ...] = ("log_cart_value", *(f"device_{device}" for device in DEVICES))

NEVER_ORDERED = -1.0
_SHIPPING_WORDS = ("shipping", "delivery")
_RETURNS_WORDS = ("return", "refund")


def source_kind(source: str) -> str:
    """One of SOURCE_KINDS for a utm_source."""
    text = (source or "").strip().lower()
    if not text:
        return "direct"
    words = set(text.replace("_", " ").replace("-", " ").replace(".", " ").split()) | {text}
    for kind, markers in _SOURCE_WORDS:
        if any(marker in words or (len(marker) > 3 and marker in text) for marker in markers):
            return kind
    return "other"


def feature_names() -> tuple[str, ...]:
    """Column names of `snapshot_features`, in order."""
    return (
        "log_cart_value",
        "items",
        "distinct_products",
        *(f"device_{device}" for device in DEVICES),
        *(f"source_{kind}" for kind in SOURCE_KINDS),
        "hour_of_day",
        "weekday",
        "logged_in",
        "prior_orders",
        "prior_sessions",
        "days_since_last_order",
        "log_prior_revenue",
        "free_shipping_gap",
        *(f"signal_{name}" for name in SIGNAL_NAMES),
    )


def snapshot_features(snapshots: Sequence[CartSnapshot]) -> np.ndarray:
    """The model matrix, shape (len(snapshots), len(feature_names())), float64. A customer who never ordered
    has -1 days since the last order (a value of its own for the trees; NaN would break binning when no cart
    in a shop's window has a previous order)."""
    width = len(feature_names())
    matrix = np.zeros((len(snapshots), width), dtype=np.float64)
    device_offset = 3
    source_offset = device_offset + len(DEVICES)
    rest_offset = source_offset + len(SOURCE_KINDS)
    signal_offset = rest_offset + 8
    for row, snapshot in enumerate(snapshots):
        values = matrix[row]
        values[0] = math.log1p(max(float(snapshot.cart_value), 0.0))
        values[1] = float(snapshot.items)
        values[2] = float(snapshot.distinct_products)
        device = snapshot.device if snapshot.device in DEVICES else "other"
        values[device_offset + DEVICES.index(device)] = 1.0
        values[source_offset + SOURCE_KINDS.index(source_kind(snapshot.source))] = 1.0
        values[rest_offset] = float(snapshot.hour_of_day)
        values[rest_offset + 1] = float(snapshot.weekday)
        values[rest_offset + 2] = 1.0 if snapshot.logged_in else 0.0
        values[rest_offset + 3] = float(snapshot.prior_orders)
        values[rest_offset + 4] = float(snapshot.prior_sessions)
        values[rest_offset + 5] = (
            NEVER_ORDERED if snapshot.days_since_last_order is None else snapshot.days_since_last_order
        )
        values[rest_offset + 6] = math.log1p(max(float(snapshot.prior_revenue), 0.0))
        values[rest_offset + 7] = max(float(snapshot.free_shipping_gap), 0.0)
        signals = snapshot.signals or {}
        for index, name in enumerate(SIGNAL_NAMES):
            values[signal_offset + index] = float(signals.get(name, 0.0) or 0.0)
    return matrix


def session_signals(events: Iterable[tuple[str, datetime, Mapping | None]], *, at: datetime) -> dict[str, float]:
    """The SIGNAL_NAMES counts of a session from its events (name, timestamp, properties) as of `at`. The caller
    passes only the events it means to count (training: strictly before the snapshot moment)."""
    counts = dict.fromkeys(SIGNAL_NAMES, 0.0)
    first_seen: datetime | None = None
    last_add: datetime | None = None
    for name, timestamp, properties in events:
        properties = properties or {}
        if first_seen is None or timestamp < first_seen:
            first_seen = timestamp
        if name == "Product Viewed":
            counts["product_views"] += 1
        elif name == "Product List Viewed":
            counts["list_views"] += 1
        elif name == "Products Searched":
            counts["searches"] += 1
        elif name == "Product Added":
            counts["cart_adds"] += 1
            if last_add is None or timestamp > last_add:
                last_add = timestamp
        elif name == "Product Removed":
            counts["cart_removals"] += 1
        elif name == "Page Viewed":
            path = str(properties.get("path") or "").lower()
            if any(word in path for word in _SHIPPING_WORDS):
                counts["shipping_info_views"] += 1
            if any(word in path for word in _RETURNS_WORDS):
                counts["returns_info_views"] += 1
        elif name == "Product List Filtered":
            if _sorts_by_price(properties):
                counts["price_sorted"] = 1.0
        elif name in ("Coupon Entered", "Coupon Denied"):
            counts["coupon_attempts"] += 1
    if first_seen is not None:
        counts["seconds_on_site"] = max((at - first_seen).total_seconds(), 0.0)
    if last_add is not None:
        counts["seconds_on_cart"] = max((at - last_add).total_seconds(), 0.0)
    return counts


def _sorts_by_price(properties: Mapping) -> bool:
    sorts = properties.get("sorts", properties.get("sort"))
    if isinstance(sorts, Mapping):
        sorts = [sorts]
    if isinstance(sorts, str):
        return "price" in sorts.lower()
    if isinstance(sorts, list):
        return any(
            (isinstance(sort, Mapping) and "price" in str(sort.get("type", "")).lower())
            or (isinstance(sort, str) and "price" in sort.lower())
            for sort in sorts
        )
    return False


# --- The model -----------------------------------------------------------------------------------------------

MIN_ROWS = 20
MIN_PER_CLASS = 5
FOLDS = 5
IMPORTANCE_REPEATS = 3
TOP_IMPORTANCES = 10


@dataclass
class AbandonmentPredictor:
    """A fitted classifier of P(abandon) on `snapshot_features` columns; what the model run pickles."""

    estimator: object  # a fitted scikit-learn classifier with predict_proba, class 1 = abandoned
    feature_names: tuple[str, ...]
    calibration_method: str = "none"

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(abandon) per row of X."""
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ValueError(f"expected {len(self.feature_names)} feature columns, got shape {matrix.shape}")
        if len(matrix) == 0:
            return np.zeros(0)
        with one_thread():
            return np.asarray(self.estimator.predict_proba(matrix)[:, 1], dtype=np.float64)

    def predict_snapshots(self, snapshots: Sequence[CartSnapshot]) -> np.ndarray:
        if tuple(self.feature_names) != feature_names():
            raise ValueError("the model was trained on other features; train it again")
        return self.predict(snapshot_features(snapshots))


def abandonment_fit(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    feature_names: Sequence[str],
    seed: int = 0,
) -> tuple[AbandonmentPredictor, dict]:
    """Fit on the older carts, evaluate on the newer ones (a temporal split made by the caller). Calibration
    (isotonic or sigmoid) only when it lowers the out-of-fold Brier score on the training carts. The metrics
    compare against a logistic regression on cart value and device alone (`auc_baseline`), so the merchant sees
    what watching behaviour adds."""
    # One OpenMP/BLAS thread: on a shop's carts more threads cost more than they save on a busy 2-core worker
    # (see loyalty.churn).
    with one_thread():
        return _fit(X_train, y_train, X_test, y_test, feature_names=tuple(feature_names), seed=seed)


def reliability_deciles(labels: np.ndarray, probability: np.ndarray, *, bins: int = 10) -> list[dict]:
    """[{"predicted", "observed", "count"}] per equal-count group of carts in predicted order."""
    order = np.argsort(probability, kind="stable")
    return [
        {"predicted": float(probability[group].mean()), "observed": float(labels[group].mean()), "count": len(group)}
        for group in np.array_split(order, min(bins, len(order)))
        if len(group)
    ]


def _fit(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    feature_names: tuple[str, ...],
    seed: int,
) -> tuple[AbandonmentPredictor, dict]:

    x_train, labels_train = _checked(X_train, y_train, feature_names, "training")
    x_test, labels_test = _checked(X_test, y_test, feature_names, "test")
    folds = StratifiedKFold(n_splits=min(FOLDS, int(np.bincount(labels_train).min())), shuffle=True, random_state=seed)
    fit = calibrated_fit(lambda: _classifier(seed), x_train, labels_train, folds=folds)
    estimator, chosen, brier_by_method = fit.estimator, fit.method, fit.brier_out_of_fold
    predictor = AbandonmentPredictor(estimator=estimator, feature_names=feature_names, calibration_method=chosen)

    probability = predictor.predict(x_test)
    importance = permutation_importance(
        estimator, x_test, labels_test, scoring="roc_auc", n_repeats=IMPORTANCE_REPEATS, random_state=seed
    )
    ranked = sorted(zip(feature_names, importance.importances_mean, strict=True), key=lambda item: -item[1])
    metrics = {
        "auc": float(roc_auc_score(labels_test, probability)),
        "auc_baseline": _baseline_auc(x_train, labels_train, x_test, labels_test, feature_names=feature_names),
        "brier": float(brier_score_loss(labels_test, probability)),
        "log_loss": float(log_loss(labels_test, np.clip(probability, 1e-6, 1 - 1e-6), labels=[0, 1])),
        "base_rate": float(labels_test.mean()),
        "mean_predicted": float(probability.mean()),
        "train_base_rate": float(labels_train.mean()),
        "calibrated": chosen != "none",
        "calibration_method": chosen,
        "brier_out_of_fold": brier_by_method,
        "reliability": reliability_deciles(labels_test, probability),
        "importances": {name: float(value) for name, value in ranked[:TOP_IMPORTANCES]},
        "train_rows": len(labels_train),
        "test_rows": len(labels_test),
    }
    return predictor, metrics


def _baseline_auc(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    feature_names: tuple[str, ...],
) -> float | None:

    if not set(BASELINE_FEATURES) <= set(feature_names):
        return None
    columns = [feature_names.index(name) for name in BASELINE_FEATURES]
    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    baseline.fit(x_train[:, columns], y_train)
    return float(roc_auc_score(y_test, baseline.predict_proba(x_test[:, columns])[:, 1]))


def _classifier(seed: int) -> object:

    # Small regularised trees with early stopping off (deterministic whatever the number of carts).
    return HistGradientBoostingClassifier(
        learning_rate=0.06,
        max_iter=200,
        max_leaf_nodes=15,
        min_samples_leaf=30,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )


def _checked(X: np.ndarray, y: np.ndarray, names: tuple[str, ...], which: str) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.asarray(X, dtype=np.float64)
    labels = np.asarray(y, dtype=int)
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise ValueError(f"the {which} matrix has shape {matrix.shape}, expected {len(names)} columns")
    if len(labels) != len(matrix):
        raise ValueError(f"the {which} set has {len(labels)} labels for {len(matrix)} carts")
    if len(labels) < MIN_ROWS:
        raise ValueError(f"the {which} set has {len(labels)} carts, at least {MIN_ROWS} are needed")
    counts = np.bincount(labels, minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise ValueError(
            f"the {which} set needs at least {MIN_PER_CLASS} abandoned and {MIN_PER_CLASS} bought carts, "
            f"it has {counts[1]} abandoned and {counts[0]} bought"
        )
    return matrix, labels
