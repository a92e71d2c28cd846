import math
import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from events.abandonment import (
    BASELINE_FEATURES,
    DEVICES,
    SIGNAL_NAMES,
    AbandonmentPredictor,
    CartSnapshot,
    abandonment_fit,
    feature_names,
    reliability_deciles,
    session_signals,
    snapshot_features,
    source_kind,
)

AT = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _snapshot(**overrides) -> CartSnapshot:
    values = {
        "cart_value": 50.0,
        "items": 2,
        "distinct_products": 1,
        "device": "desktop",
        "source": "",
        "hour_of_day": 14,
        "weekday": 2,
        "logged_in": False,
    }
    values.update(overrides)
    return CartSnapshot(**values)


def _column(name: str) -> int:
    return feature_names().index(name)


def test_feature_matrix_has_one_named_column_per_feature():
    # given two snapshots
    snapshots = [_snapshot(), _snapshot(device="mobile", source="newsletter")]

    # when
    matrix = snapshot_features(snapshots)

    # then
    assert matrix.shape == (2, len(feature_names()))
    assert matrix.dtype == np.float64
    assert len(set(feature_names())) == len(feature_names())
    assert set(BASELINE_FEATURES) <= set(feature_names())


def test_features_encode_cart_device_source_history_and_signals():
    # given a returning logged-in mobile shopper from Instagram with behaviour counted
    snapshot = _snapshot(
        cart_value=99.0,
        items=3,
        device="mobile",
        source="instagram_story",
        logged_in=True,
        prior_orders=4,
        days_since_last_order=12.5,
        prior_revenue=240.0,
        signals={"shipping_info_views": 2, "seconds_on_cart": 75},
        free_shipping_gap=6.0,
    )

    # when
    row = snapshot_features([snapshot])[0]

    # then
    assert row[_column("log_cart_value")] == pytest.approx(math.log1p(99.0))
    assert row[_column("items")] == 3
    assert [row[_column(f"device_{device}")] for device in DEVICES] == [1.0, 0.0, 0.0, 0.0]
    assert row[_column("source_social")] == 1.0 and row[_column("source_direct")] == 0.0
    assert row[_column("logged_in")] == 1.0
    assert row[_column("prior_orders")] == 4
    assert row[_column("days_since_last_order")] == 12.5
    assert row[_column("log_prior_revenue")] == pytest.approx(math.log1p(240.0))
    assert row[_column("signal_shipping_info_views")] == 2
    assert row[_column("signal_seconds_on_cart")] == 75
    assert row[_column("signal_product_views")] == 0
    assert row[_column("free_shipping_gap")] == 6.0


def test_a_customer_who_never_ordered_has_no_days_since_last_order_and_unknown_devices_are_other():
    # given
    snapshot = _snapshot(device="smart-fridge", days_since_last_order=None)

    # when
    row = snapshot_features([snapshot])[0]

    # then
    assert row[_column("days_since_last_order")] == -1.0
    assert row[_column("device_other")] == 1.0


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("", "direct"),
        ("google", "search"),
        ("bing-ads", "search"),
        ("facebook", "social"),
        ("TikTok", "social"),
        ("weekly_newsletter", "email"),
        ("klaviyo", "email"),
        ("partner-blog", "other"),
    ],
)
def test_source_kind_from_utm_source_words(source, kind):
    # when / then
    assert source_kind(source) == kind


def test_session_signals_count_the_event_log():
    # given a session's events
    events = [
        ("Page Viewed", AT, {"path": "/"}),
        ("Products Searched", AT + timedelta(seconds=10), {"query": "shoes"}),
        ("Product List Viewed", AT + timedelta(seconds=20), {}),
        ("Product List Filtered", AT + timedelta(seconds=25), {"sorts": [{"type": "price", "value": "desc"}]}),
        ("Product Viewed", AT + timedelta(seconds=30), {}),
        ("Product Added", AT + timedelta(seconds=40), {}),
        ("Product Added", AT + timedelta(seconds=60), {}),
        ("Product Removed", AT + timedelta(seconds=70), {}),
        ("Page Viewed", AT + timedelta(seconds=80), {"path": "/pages/Delivery-times"}),
        ("Page Viewed", AT + timedelta(seconds=85), {"path": "/pages/returns"}),
        ("Coupon Entered", AT + timedelta(seconds=90), {}),
        ("Coupon Denied", AT + timedelta(seconds=91), {}),
    ]

    # when
    signals = session_signals(events, at=AT + timedelta(seconds=100))

    # then
    assert set(signals) == set(SIGNAL_NAMES)
    assert signals == {
        "product_views": 1,
        "list_views": 1,
        "searches": 1,
        "cart_adds": 2,
        "cart_removals": 1,
        "shipping_info_views": 1,
        "returns_info_views": 1,
        "price_sorted": 1,
        "coupon_attempts": 2,
        "seconds_on_site": 100,
        "seconds_on_cart": 40,
    }


def test_sorting_by_name_is_not_price_sorting():
    # given
    events = [("Product List Filtered", AT, {"sorts": [{"type": "name", "value": "asc"}]})]

    # when / then
    assert session_signals(events, at=AT)["price_sorted"] == 0


def _synthetic_carts(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Carts whose abandonment rises with shipping-page visits and dwell, and a little with cart value."""
    rng = np.random.default_rng(seed)
    hesitation = rng.normal(size=count)
    snapshots = [
        _snapshot(
            cart_value=float(rng.lognormal(4, 0.5)),
            device=DEVICES[int(rng.integers(0, 3))],
            signals={
                "shipping_info_views": float(rng.poisson(2.0 * np.exp(h))),
                "seconds_on_cart": float(20 * np.exp(0.8 * h + rng.normal(0, 0.3))),
            },
        )
        for h in hesitation
    ]
    labels = (rng.random(count) < 1 / (1 + np.exp(-(0.3 + 1.5 * hesitation)))).astype(int)
    return snapshot_features(snapshots), labels


def test_fit_learns_behaviour_beyond_the_cart_value_baseline_and_reports_metrics():
    # given carts where behaviour carries the signal
    x_train, y_train = _synthetic_carts(1_200, seed=1)
    x_test, y_test = _synthetic_carts(400, seed=2)

    # when
    predictor, metrics = abandonment_fit(x_train, y_train, x_test, y_test, feature_names=feature_names(), seed=0)

    # then the model beats the baseline and reports its calibration and importances
    assert metrics["auc"] > 0.72
    assert metrics["auc"] > metrics["auc_baseline"] + 0.1
    assert 0 < metrics["brier"] < 0.25 and metrics["log_loss"] > 0
    assert metrics["base_rate"] == pytest.approx(y_test.mean())
    assert abs(metrics["mean_predicted"] - metrics["base_rate"]) < 0.05
    assert sum(row["count"] for row in metrics["reliability"]) == len(y_test)
    assert len(metrics["importances"]) == 10
    assert set(list(metrics["importances"])[:2]) == {"signal_shipping_info_views", "signal_seconds_on_cart"}
    assert metrics["calibration_method"] in {"none", "isotonic", "sigmoid"}
    assert metrics["calibrated"] == (metrics["calibration_method"] != "none")
    assert metrics["brier_out_of_fold"][metrics["calibration_method"]] == min(metrics["brier_out_of_fold"].values())
    probability = pickle.loads(pickle.dumps(predictor)).predict(x_test)
    assert probability.shape == (400,) and ((probability >= 0) & (probability <= 1)).all()


def test_fit_refuses_a_test_set_with_one_outcome():
    # given test carts that were all abandoned
    x_train, y_train = _synthetic_carts(200, seed=3)
    x_test, _ = _synthetic_carts(50, seed=4)

    # when / then
    with pytest.raises(ValueError, match="abandoned"):
        abandonment_fit(x_train, y_train, x_test, np.ones(50, dtype=int), feature_names=feature_names())


def test_predict_refuses_a_matrix_of_other_columns():
    # given
    x_train, y_train = _synthetic_carts(100, seed=5)
    estimator = DummyClassifier(strategy="prior").fit(x_train, y_train)
    predictor = AbandonmentPredictor(estimator=estimator, feature_names=feature_names())

    # when / then
    with pytest.raises(ValueError, match="columns"):
        predictor.predict(np.zeros((1, 3)))


def test_reliability_deciles_are_equal_count_groups_in_predicted_order():
    # given
    probability = np.linspace(0.0, 1.0, 100)
    labels = (probability > 0.5).astype(int)

    # when
    deciles = reliability_deciles(labels, probability)

    # then
    assert [row["count"] for row in deciles] == [10] * 10
    assert deciles[0]["observed"] == 0.0 and deciles[-1]["observed"] == 1.0
    assert [row["predicted"] for row in deciles] == sorted(row["predicted"] for row in deciles)
