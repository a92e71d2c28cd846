"""Reads of the incentive uplift model: its training rows (randomized offer decisions whose outcome is known),
its runs, and the serving path that scores a live cart under each incentive.

Serving runs inside `POST /api/v1/offers/decide`, so it must cost about a millisecond: which run serves a
merchant is remembered by this process for a minute, and the unpickled model for as long as the process lives
(keyed by the run's id, which a new training never reuses). A merchant without a model costs one query a
minute. A model trained on other features than `events.abandonment.feature_names()` today does not serve, nor
one whose choices earned less than offering nothing on its held-out decisions beyond doubt
(`metrics["loses_to_no_offer"]`).
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings as django_settings

from events.abandonment import CartSnapshot, feature_names, snapshot_features
from loyalty.models import OfferDecision, OfferSettings, RunStatus, UpliftModel
from loyalty.uplift import IncentiveResponseModel
from revopt.tenancy.models import Merchant

logger = logging.getLogger(__name__)

# A run still RUNNING after this long has died with its worker: it no longer blocks a new one.
RUNNING_STALE_AFTER = timedelta(hours=2)
DEFAULT_SERVING_SECONDS = 60.0
MODEL_CACHE_LIMIT = 64
SERVING_MEMO_LIMIT = 10_000
DEFAULT_OFFER_VALID_HOURS = 24
_SNAPSHOT_FIELDS = frozenset(field.name for field in dataclasses.fields(CartSnapshot))

_serving_memo: dict[int, tuple[float, int | None]] = {}
_models: dict[int, IncentiveResponseModel] = {}


@dataclass(frozen=True)
class UpliftTrainingRows:
    """One row per randomized decision whose outcome is known, in decision order."""

    decision_ids: np.ndarray  # int64
    X: np.ndarray  # float64, (n, len(feature_names)): events.abandonment.snapshot_features
    kinds: np.ndarray  # object: the incentive drawn
    converted: np.ndarray  # 0/1: the decision's converted_order is set
    margin: np.ndarray  # the cart's margin before the incentive
    cost: np.ndarray  # the drawn incentive's cost (0 for none)
    cart_value: np.ndarray
    propensity: np.ndarray  # the drawn kind's probability (NaN where the row did not record it)
    feature_names: tuple[str, ...]
    decided_before: datetime  # outcomes are known for decisions before this
    skipped: int  # randomized decisions without a usable cart snapshot

    def __len__(self) -> int:
        return len(self.decision_ids)


def uplift_training_rows(*, merchant: Merchant, now: datetime) -> UpliftTrainingRows:
    """Randomized decisions of the merchant made before now − offer_valid_hours (so whether the session or the
    customer ordered within the offer's validity is settled), erased customers left out. The outcome is
    `converted_order` (set by `loyalty.services.offers.offer_outcomes_record` as orders are ingested)."""
    valid_hours = (
        OfferSettings.objects.for_merchant(merchant).values_list("offer_valid_hours", flat=True).first()
        or DEFAULT_OFFER_VALID_HOURS
    )
    decided_before = now - timedelta(hours=valid_hours)
    rows = (
        OfferDecision.objects.for_merchant(merchant)
        .filter(randomized=True, decided_at__lt=decided_before, customer__erased_at__isnull=True)
        .order_by("decided_at", "pk")
        .values_list("pk", "kind", "converted_order_id", "cart_margin", "cost", "cart_value", "propensity", "features")
    )
    ids, kinds, converted, margin, cost, cart_value, propensity, snapshots = [], [], [], [], [], [], [], []
    skipped = 0
    for pk, kind, order_id, row_margin, row_cost, row_value, row_propensity, features in rows.iterator(chunk_size=2000):
        snapshot = snapshot_from_features(features)
        if snapshot is None:
            skipped += 1
            continue
        ids.append(pk)
        kinds.append(kind)
        converted.append(1.0 if order_id is not None else 0.0)
        margin.append(float(row_margin))
        cost.append(float(row_cost))
        cart_value.append(float(row_value))
        propensity.append(float(row_propensity) if row_propensity is not None else np.nan)
        snapshots.append(snapshot)
    names = feature_names()
    return UpliftTrainingRows(
        decision_ids=np.asarray(ids, dtype=np.int64),
        X=snapshot_features(snapshots) if snapshots else np.zeros((0, len(names))),
        kinds=np.asarray(kinds, dtype=object),
        converted=np.asarray(converted, dtype=np.float64),
        margin=np.asarray(margin, dtype=np.float64),
        cost=np.asarray(cost, dtype=np.float64),
        cart_value=np.asarray(cart_value, dtype=np.float64),
        propensity=np.asarray(propensity, dtype=np.float64),
        feature_names=tuple(names),
        decided_before=decided_before,
        skipped=skipped,
    )


def snapshot_from_features(features: dict | None) -> CartSnapshot | None:
    """The CartSnapshot a decision logged (None when it logged none, e.g. an opted-out shopper)."""
    if not features:
        return None
    try:
        return CartSnapshot(**{name: value for name, value in features.items() if name in _SNAPSHOT_FIELDS})
    except TypeError:
        return None


def uplift_model_in_service(*, merchant: Merchant) -> UpliftModel | None:
    """The newest succeeded training: the one that serves."""
    return (
        UpliftModel.objects.for_merchant(merchant)
        .filter(status=RunStatus.SUCCEEDED)
        .defer("artifact")
        .order_by("-finished_at", "-pk")
        .first()
    )


def uplift_model_running(*, merchant: Merchant, now: datetime) -> UpliftModel | None:
    """The merchant's training under way now, if any (one stalled past RUNNING_STALE_AFTER excepted)."""
    return (
        UpliftModel.objects.for_merchant(merchant)
        .filter(status=RunStatus.RUNNING, started_at__gte=now - RUNNING_STALE_AFTER)
        .defer("artifact")
        .order_by("-started_at", "-pk")
        .first()
    )


def uplift_models(*, merchant: Merchant, limit: int = 20) -> list[UpliftModel]:
    """The latest trainings, newest first, without their artifacts."""
    return list(UpliftModel.objects.for_merchant(merchant).defer("artifact").order_by("-started_at", "-pk")[:limit])


# --- serving ------------------------------------------------------------------------------------------------


def incentive_order_probabilities(
    *, merchant: Merchant, snapshot: CartSnapshot, kinds: Sequence[str]
) -> dict[str, float] | None:
    """P(order | this cart, kind) for each of `kinds` the serving model was trained on; None when the merchant
    has no serving model (none trained, trained on other features, or the newest one did not beat offering
    nothing on its held-out decisions). Zero queries once the model is remembered."""
    model = _serving_model(merchant_id=merchant.pk)
    if model is None:
        return None
    probabilities = model.order_probabilities(snapshot_features([snapshot]))[0]
    known = dict(zip(model.kinds, probabilities.tolist(), strict=True))
    return {kind: known[kind] for kind in kinds if kind in known}


def uplift_serving_forget(*, merchant_id: int | None = None) -> None:
    """Forget which model serves (all merchants, or one): the next request reads it again."""
    if merchant_id is None:
        _serving_memo.clear()
        _models.clear()
    else:
        _serving_memo.pop(merchant_id, None)


def _serving_model(*, merchant_id: int) -> IncentiveResponseModel | None:
    now = time.monotonic()
    memo = _serving_memo.get(merchant_id)
    if memo is not None and memo[0] > now:
        model_id = memo[1]
    else:
        newest = (
            UpliftModel.objects.for_merchant(merchant_id)
            .filter(status=RunStatus.SUCCEEDED, artifact__isnull=False)
            .order_by("-finished_at", "-pk")
            .values_list("pk", "metrics")
            .first()
        )
        # The newest model serves unless its choices clearly lost to no offer on its held-out decisions.
        model_id = newest[0] if newest is not None and not (newest[1] or {}).get("loses_to_no_offer") else None
        seconds = float(getattr(django_settings, "REVOPT", {}).get("UPLIFT_SERVING_SECONDS", DEFAULT_SERVING_SECONDS))
        if seconds > 0:
            if len(_serving_memo) >= SERVING_MEMO_LIMIT:
                _serving_memo.clear()
            _serving_memo[merchant_id] = (now + seconds, model_id)
    if model_id is None:
        return None
    model = _models.get(model_id)
    if model is None:
        model = _load(merchant_id=merchant_id, model_id=model_id)
        if model is None:
            return None
        if len(_models) >= MODEL_CACHE_LIMIT:
            _models.clear()
        _models[model_id] = model
    if model.feature_names != feature_names():
        return None
    return model


def _load(*, merchant_id: int, model_id: int) -> IncentiveResponseModel | None:
    artifact = (
        UpliftModel.objects.for_merchant(merchant_id).filter(pk=model_id).values_list("artifact", flat=True).first()
    )
    if artifact is None:
        return None
    # Only revopt writes these bytes (loyalty.services.uplift), never a client.
    model = pickle.loads(bytes(artifact))
    if model.feature_names != feature_names():
        logger.warning(
            "uplift model %s of merchant %s was trained on other features: not serving", model_id, merchant_id
        )
    return model
