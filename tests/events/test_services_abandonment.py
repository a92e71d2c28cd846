import pickle
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from sklearn.dummy import DummyClassifier

from events.abandonment import AbandonmentPredictor, feature_names
from events.models import AbandonmentModel, Event, ModelRunStatus, Session
from events.selectors.abandonment import abandonment_model_serving, abandonment_score, cart_snapshot_live
from events.services.abandonment import (
    AbandonmentRunRunning,
    InsufficientCarts,
    abandonment_model_train,
)
from revopt.simulator.services import simulation_run
from revopt.simulator.world import WorldConfig
from revopt.tenancy.models import AuditLogEntry
from tests.factories.events import OrderFactory, SessionFactory
from tests.factories.funnel import AbandonmentModelFactory

pytestmark = pytest.mark.django_db

# About 1,450 carts over 60 days, with the session signals that reveal a shopper's hesitation.
SIGNALS_WORLD = WorldConfig(
    seed=14,
    n_sessions=3_000,
    days=60,
    n_products=40,
    n_categories=4,
    n_shoppers=900,
    target_cart_rate=0.45,
    target_abandonment=0.6,
    session_signals=True,
)
# Measured on SIGNALS_WORLD with seeds 12, 13 and 14: test AUC 0.686, 0.700 and 0.767 against 0.645, 0.588 and
# 0.630 for cart value and device alone; mean predicted minus observed +0.03 to +0.08 (the newest quarter
# abandons a little less than the training carts). The floors hold for every seed measured, not the best one.
AUC_FLOOR = 0.65
BEHAVIOUR_GAIN_FLOOR = 0.03
CALIBRATION_TOLERANCE = 0.10


@pytest.mark.parametrize("seed", [12, 13, 14])
def test_training_on_the_simulator_ranks_and_calibrates_and_serves(merchant, seed):
    # given a simulated shop with session signals
    simulation_run(merchant=merchant, config=replace(SIGNALS_WORLD, seed=seed), progress=False)
    shares = []

    # when
    run = abandonment_model_train(merchant=merchant, progress=shares.append)

    # then the newest quarter of the carts is the test set, and the model beats cart value and device alone
    metrics = run.metrics
    assert run.status == ModelRunStatus.SUCCEEDED and run.error == "" and shares[-1] == 1.0
    assert run.test_carts == pytest.approx((run.train_carts + run.test_carts) / 4, abs=1)
    assert run.data_start < run.split_at < run.data_end
    assert metrics["auc"] >= AUC_FLOOR
    assert metrics["auc"] - metrics["auc_baseline"] >= BEHAVIOUR_GAIN_FLOOR
    assert abs(metrics["mean_predicted"] - metrics["base_rate"]) <= CALIBRATION_TOLERANCE
    assert len(metrics["reliability"]) == 10 and len(metrics["importances"]) == 10
    assert AuditLogEntry.objects.filter(merchant=merchant, action="abandonment_model.trained").count() == 1
    # and it serves: a hesitant shopper's cart scores higher than a decided one's
    assert abandonment_model_serving(merchant=merchant) == run
    hesitant, decided = (
        abandonment_score(merchant=merchant, snapshot=_live(merchant, signals=signals))
        for signals in (
            {"shipping_info_views": 3, "returns_info_views": 2, "price_sorted": 1, "seconds_on_cart": 240},
            {"seconds_on_cart": 5},
        )
    )
    assert 0 <= decided < hesitant <= 1


def test_the_split_is_temporal(merchant):
    # given 240 carts, one per hour, bought one in three
    _carts(merchant, count=240)

    # when
    run = abandonment_model_train(merchant=merchant)

    # then every training cart's moment (its cart view, a minute in) is before split_at, every test cart's not
    starts = sorted(Session.objects.filter(merchant=merchant).values_list("started_at", flat=True))
    moments = [start + timedelta(seconds=60) for start in starts]
    assert (run.train_carts, run.test_carts) == (180, 60)
    assert moments[179] < run.split_at <= moments[180]


def test_too_few_carts_fails_the_run_and_the_previous_model_keeps_serving(merchant):
    # given a model in service and 50 carts
    previous = AbandonmentModelFactory(
        merchant=merchant, finished_at=timezone.now() - timedelta(days=1), artifact=_constant_artifact(0.3)
    )
    _carts(merchant, count=50)

    # when
    with pytest.raises(InsufficientCarts, match="50 carts"):
        abandonment_model_train(merchant=merchant)

    # then
    failed = AbandonmentModel.objects.filter(merchant=merchant).exclude(pk=previous.pk).get()
    assert failed.status == ModelRunStatus.FAILED and "at least 200" in failed.error
    assert failed.artifact is None
    assert abandonment_model_serving(merchant=merchant) == previous
    assert abandonment_score(merchant=merchant, snapshot=_live(merchant)) == pytest.approx(0.3)


def test_a_test_quarter_with_one_outcome_fails_the_run(merchant):
    # given 240 carts where the newest quarter were all abandoned
    _carts(merchant, count=240, bought_until=170)

    # when / then
    with pytest.raises(InsufficientCarts, match="test carts have 60 abandoned and 0 bought"):
        abandonment_model_train(merchant=merchant)
    assert abandonment_model_serving(merchant=merchant) is None


def test_one_training_at_a_time_unless_the_other_has_stalled(merchant):
    # given a training under way for ten minutes
    running = AbandonmentModelFactory(
        merchant=merchant, status=ModelRunStatus.RUNNING, started_at=timezone.now() - timedelta(minutes=10)
    )

    # when / then
    with pytest.raises(AbandonmentRunRunning):
        abandonment_model_train(merchant=merchant)

    # given it stalled three hours ago
    AbandonmentModel.objects.filter(pk=running.pk).update(started_at=timezone.now() - timedelta(hours=3))

    # when / then the next one runs (and fails for lack of carts, not for the stalled run)
    with pytest.raises(InsufficientCarts):
        abandonment_model_train(merchant=merchant)


def _carts(merchant, *, count: int, bought_until: int | None = None) -> None:
    """`count` sessions an hour apart ending an hour ago, each with an add and a cart view; one in three
    (up to index `bought_until`) ordered."""
    start = timezone.now() - timedelta(hours=count + 1)
    sessions = [SessionFactory(merchant=merchant, started_at=start + timedelta(hours=index)) for index in range(count)]
    events = []
    for index, session in enumerate(sessions):
        for seconds, name in ((10, "Product Added"), (60, "Cart Viewed")):
            events.append(
                Event(
                    merchant=merchant,
                    message_id=f"{session.external_id}-{name}",
                    name=name,
                    customer=session.customer,
                    session=session,
                    timestamp=session.started_at + timedelta(seconds=seconds),
                    received_at=session.started_at,
                    price=20 + index % 7,
                    quantity=1,
                    properties={"sku": "A"},
                )
            )
        if index % 3 == 0 and (bought_until is None or index < bought_until):
            OrderFactory(
                merchant=merchant,
                customer=session.customer,
                session=session,
                placed_at=session.started_at + timedelta(minutes=5),
            )
    Event.objects.bulk_create(events)


def _live(merchant, *, signals=None):
    from decimal import Decimal

    return cart_snapshot_live(
        merchant=merchant,
        customer=None,
        session_external_id="",
        lines=[("A", 1, Decimal("40"))],
        device="desktop",
        source="",
        signals=signals or {},
        at=timezone.now(),
    )


def _constant_artifact(constant: float) -> bytes:
    labels = np.array([1] * round(constant * 100) + [0] * round((1 - constant) * 100))
    estimator = DummyClassifier(strategy="prior").fit(np.zeros((len(labels), len(feature_names()))), labels)
    return pickle.dumps(AbandonmentPredictor(estimator=estimator, feature_names=feature_names()))
