"""Training the cart-abandonment predictor: one run per merchant at a time, on the last 90 days of carts split
in time, and the model in service changes only when a run succeeds."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta

import numpy as np
from django.db import transaction
from django.utils import timezone

from revopt.runs import Progress, RunProgress, run_failed
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write, merchant_lock

from ..abandonment import abandonment_fit, feature_names, snapshot_features
from ..models import AbandonmentModel, ModelRunStatus
from ..selectors.abandonment import abandonment_serving_forget, cart_snapshots

WINDOW = timedelta(days=90)
TRAIN_SHARE = 0.75
MIN_CARTS = 200
MIN_PER_OUTCOME = 10  # abandoned and bought carts, in the training and in the test carts each
RUNNING_STALE_AFTER = timedelta(hours=2)


class AbandonmentRunRunning(Exception):
    """Another training of the merchant's predictor is under way."""


class InsufficientCarts(Exception):
    """Too few carts, or too few of one outcome, to train and test a predictor."""


def abandonment_model_running(*, merchant: Merchant, now: datetime) -> AbandonmentModel | None:
    """The merchant's training under way, if any (one started more than RUNNING_STALE_AFTER ago has stalled)."""
    return (
        AbandonmentModel.objects.for_merchant(merchant)
        .filter(status=ModelRunStatus.RUNNING, started_at__gte=now - RUNNING_STALE_AFTER)
        .defer("artifact")
        .order_by("-started_at", "-pk")
        .first()
    )


def abandonment_run_start(*, merchant: Merchant) -> AbandonmentModel:
    """The RUNNING row of a new training, committed at once; refused while another is under way."""
    started_at = timezone.now()
    with transaction.atomic():
        merchant_lock(merchant=merchant)
        running = abandonment_model_running(merchant=merchant, now=started_at)
        if running is not None:
            raise AbandonmentRunRunning(f"abandonment model #{running.pk} is still training")
        return AbandonmentModel.objects.create(merchant=merchant, status=ModelRunStatus.RUNNING, started_at=started_at)


def abandonment_model_train(
    *, merchant: Merchant, now: datetime | None = None, progress: Progress | None = None
) -> AbandonmentModel:
    """Train on the carts of the 90 days before `now`: the oldest 75% train, the newest 25% test. A run without
    enough carts (MIN_CARTS, and MIN_PER_OUTCOME of each outcome on both sides of the split) fails with the
    reason and the previous model keeps serving; the error is raised after the failure is recorded."""
    data_end = now or timezone.now()
    data_start = data_end - WINDOW
    run = abandonment_run_start(merchant=merchant)
    report = RunProgress(run, progress)
    try:
        report(0.0)
        snapshots, labels, moments = cart_snapshots(merchant=merchant, start=data_start, end=data_end)
        report(0.3)
        split = _split_index(labels)
        matrix = snapshot_features(snapshots)
        predictor, metrics = abandonment_fit(
            matrix[:split],
            labels[:split],
            matrix[split:],
            labels[split:],
            feature_names=feature_names(),
            seed=merchant.pk,
        )
        report(0.9)
        _succeed(
            run=run,
            artifact=pickle.dumps(predictor, protocol=pickle.HIGHEST_PROTOCOL),
            metrics=metrics,
            data_start=data_start,
            split_at=moments[split],
            data_end=data_end,
            train_carts=split,
            test_carts=len(labels) - split,
        )
    except Exception as error:
        run_failed(run=run, error=error, action="abandonment_model.failed")
        raise
    report(1.0)
    return run


def _split_index(labels: np.ndarray) -> int:
    """Where the newest quarter of the carts (sorted by their moment) begins, once the carts are known to be
    enough."""
    total = len(labels)
    if total < MIN_CARTS:
        raise InsufficientCarts(f"{total} carts in the last {WINDOW.days} days, at least {MIN_CARTS} are needed")
    split = int(total * TRAIN_SHARE)
    for name, part in (("training", labels[:split]), ("test", labels[split:])):
        abandoned = int(part.sum())
        bought = len(part) - abandoned
        if min(abandoned, bought) < MIN_PER_OUTCOME:
            raise InsufficientCarts(
                f"the {name} carts have {abandoned} abandoned and {bought} bought, "
                f"at least {MIN_PER_OUTCOME} of each are needed"
            )
    return split


def _succeed(
    *,
    run: AbandonmentModel,
    artifact: bytes,
    metrics: dict,
    data_start: datetime,
    split_at: datetime,
    data_end: datetime,
    train_carts: int,
    test_carts: int,
) -> None:
    """Model, metrics and SUCCEEDED in one transaction: the run serves whole or not at all."""
    with transaction.atomic():
        run.artifact = artifact
        run.metrics = metrics
        run.data_start, run.split_at, run.data_end = data_start, split_at, data_end
        run.train_carts, run.test_carts = train_carts, test_carts
        run.status = ModelRunStatus.SUCCEEDED
        run.progress = 1.0
        run.finished_at = timezone.now()
        run.save()
        audit_log_write(
            merchant=run.merchant,
            actor=None,
            action="abandonment_model.trained",
            target=run,
            detail={
                "auc": round(metrics["auc"], 4),
                "auc_baseline": metrics.get("auc_baseline"),
                "brier": round(metrics["brier"], 4),
                "train_carts": train_carts,
                "test_carts": test_carts,
            },
        )
        merchant_id = run.merchant_id
        transaction.on_commit(lambda: abandonment_serving_forget(merchant_id=merchant_id))
    abandonment_serving_forget(merchant_id=run.merchant_id)
