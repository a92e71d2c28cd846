"""Training runs: read the data, fit, score champion and challenger on one holdout, promote or reject.

`recommender_train` is not one transaction: the version row is committed first and its progress is
written as training goes, so the admin shows a running training. Whatever happens, the active version
changes only through the registry's atomic activation, and only for a candidate that earned it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from events.selectors import DataQualityGateClosed, data_quality_gate_check, data_quality_gate_is_open
from recommendations.engine.dataset import TrainingData, TrainingParams
from recommendations.engine.evaluation import evaluate_precomputed, score_scorer, temporal_split
from recommendations.engine.popularity import popularity_scores, ranked
from recommendations.engine.precomputed import Candidate, Precomputed, precomputed_from_bytes, precomputed_to_bytes
from recommendations.engine.ranker import fit_revopt
from recommendations.engine.training import train
from recommendations.models import RecommenderSettings, RecommenderVersion, VersionStatus
from recommendations.services.versions import (
    VersionNotActivatable,
    recommender_version_create,
    recommender_version_fail,
    recommender_version_progress,
    recommender_version_promote,
    recommender_version_reject,
)
from recommendations.training_data import training_data_for
from revopt.tenancy.models import Merchant

logger = logging.getLogger(__name__)

Progress = Callable[[float, str], None]

# Fewer customers than this and there is nothing to learn from (nor a holdout to judge on).
MIN_CUSTOMERS = 2
RANKING_METRIC = "ndcg@10"
# Fewer customers than this in the champion/challenger holdout is too noisy to judge a 2% difference on.
MIN_COMPARISON_USERS = 10
# Equal metrics are equal even when the floating-point sums differ in the last bits.
EPSILON = 1e-12
# The version row is written when the fraction moves this much, or the message changes after this long.
PROGRESS_STEP = 0.02
PROGRESS_MESSAGE_SECONDS = 1.0


def recommender_settings_get_or_create(*, merchant: Merchant) -> RecommenderSettings:
    settings, _ = RecommenderSettings.objects.get_or_create(merchant=merchant)
    return settings


def training_params_from(settings: RecommenderSettings) -> TrainingParams:
    return TrainingParams(
        feedback_weights={str(kind): float(weight) for kind, weight in settings.feedback_weights.items()},
        half_life_days=settings.half_life_days,
        new_arrival_days=settings.new_arrival_days,
    )


@dataclass
class _ProgressReporter:
    """Passes every step to the caller's callback; writes the version row only on visible change."""

    version: RecommenderVersion
    callback: Progress | None
    written_fraction: float = -1.0
    written_message: str = ""
    written_at: float = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        if self.callback is not None:
            self.callback(fraction, message)
        moved = fraction - self.written_fraction >= PROGRESS_STEP or fraction >= 1.0
        renamed = message != self.written_message and time.monotonic() - self.written_at >= PROGRESS_MESSAGE_SECONDS
        if moved or renamed:
            recommender_version_progress(version=self.version, fraction=fraction, message=message)
            self.written_fraction, self.written_message, self.written_at = fraction, message, time.monotonic()

    def stage(self, start: float, end: float, prefix: str) -> Progress:
        """A callback for one stage that maps its 0..1 onto start..end of the whole training."""

        def staged(fraction: float, message: str) -> None:
            self(start + (end - start) * min(max(fraction, 0.0), 1.0), f"{prefix}: {message}")

        return staged


def recommender_train(
    *,
    merchant: Merchant,
    trigger: str,
    created_by: AbstractBaseUser | None = None,
    progress: Progress | None = None,
    evaluation: list[dict] | None = None,
    now: datetime | None = None,
) -> RecommenderVersion:
    """Trains a new version of the merchant's recommenders and activates it if it is at least as good.

    `evaluation`, when given, is the comparison table with the baselines, stored on the version.
    Raises TrainingAlreadyRunning (from the registry) while another training of the merchant runs;
    every other failure ends in a `failed` version and leaves the active one serving.
    """
    settings = recommender_settings_get_or_create(merchant=merchant)
    params = training_params_from(settings)
    version = recommender_version_create(
        merchant=merchant, trigger=trigger, params=params.to_dict(), created_by=created_by
    )
    report = _ProgressReporter(version=version, callback=progress)
    if evaluation is not None:
        version.evaluation = evaluation
        version.save(update_fields=["evaluation"])
    try:
        report(0.01, "checking data quality")
        data_quality_gate_check(merchant=merchant)
    except DataQualityGateClosed as closed:
        return recommender_version_fail(version=version, reason=f"data-quality gate closed: {closed}")
    try:
        return _train_and_promote(
            version=version, settings=settings, params=params, report=report, now=now or timezone.now()
        )
    except Exception as error:
        logger.exception("training %s of %s failed", version, merchant)
        return recommender_version_fail(version=version, reason=f"training failed: {type(error).__name__}: {error}")


def _train_and_promote(
    *,
    version: RecommenderVersion,
    settings: RecommenderSettings,
    params: TrainingParams,
    report: _ProgressReporter,
    now: datetime,
) -> RecommenderVersion:
    merchant = version.merchant
    report(0.03, "reading events and orders")
    data = training_data_for(merchant=merchant, now=now, settings=settings)
    version.data_window_start = now - timedelta(days=settings.training_window_days)
    version.data_window_end = now
    version.interaction_count = len(data.interactions)
    version.customer_count = len(data.users)
    version.product_count = len(np.unique(data.interactions.item))
    version.save(
        update_fields=["data_window_start", "data_window_end", "interaction_count", "customer_count", "product_count"]
    )
    if len(data.users) < MIN_CUSTOMERS:
        return recommender_version_fail(
            version=version,
            reason=(
                f"too little data: {len(data.users)} customer(s) with interactions in the last "
                f"{settings.training_window_days} days; at least {MIN_CUSTOMERS} are needed"
            ),
        )

    active = RecommenderVersion.objects.for_merchant(merchant).filter(status=VersionStatus.ACTIVE).first()
    version.metrics = _offline_metrics(data=data, params=params, active=active, report=report)
    version.save(update_fields=["metrics"])

    precomputed = train(data, params, report.stage(0.50, 0.95, "training on all data"))
    precomputed.version = version.number
    version.artifact = precomputed_to_bytes(precomputed)
    version.status = VersionStatus.CANDIDATE
    version.finished_at = timezone.now()
    version.save(update_fields=["artifact", "status", "finished_at"])

    report(0.97, "deciding on promotion")
    return _promote_or_reject(version=version, active=active, tolerance=settings.promotion_tolerance, report=report)


def _offline_metrics(
    *, data: TrainingData, params: TrainingParams, active: RecommenderVersion | None, report: _ProgressReporter
) -> dict:
    """The candidate's ranker fitted on a temporal split, beside popularity and the active version.

    The active version was trained on everything before its `data_window_end`, and its lists leave out
    what each customer had touched by then: judged on the whole holdout it would lose on every item it
    already knew about. So the champion and the challenger meet on the holdout items customers first
    touched after the active version was trained (`candidate_on_same_holdout` vs `active_on_same_holdout`).
    """
    report(0.05, "splitting off the temporal holdout")
    data_train, holdout = temporal_split(data)
    ranker = None
    if holdout:
        ranker = fit_revopt(data_train, params, progress=report.stage(0.05, 0.40, "fitting on the training part"))

    def candidate_on(target: dict[int, set[int]]) -> dict:
        if ranker is None or not target:
            return _floats(evaluate_precomputed(Precomputed(), data_train, {}))
        return _floats(score_scorer(ranker.scores, train=data_train, holdout=target))

    report(0.42, "scoring on the temporal holdout")
    metrics = {**candidate_on(holdout), "holdout_users": len(holdout)}
    metrics["popularity_on_same_holdout"] = _floats(
        evaluate_precomputed(_popularity_lists(data_train, params, holdout), data_train, holdout)
    )
    if active is None:
        return metrics
    report(0.46, f"scoring the active v{active.number} on the same holdout")
    unseen = _first_touched_after(data=data, holdout=holdout, moment=active.data_window_end)
    metrics["candidate_on_same_holdout"] = candidate_on(unseen)
    try:
        scored = _floats(evaluate_precomputed(precomputed_from_bytes(active.artifact), data_train, unseen))
    except Exception as error:
        # An artifact the engine can no longer read must not block every later training.
        logger.exception("could not score the active %s", active)
        scored = {"error": f"{type(error).__name__}: {error}"}
    since = active.data_window_end.isoformat() if active.data_window_end else None
    metrics["active_on_same_holdout"] = {"version": active.number, "since": since, **scored}
    return metrics


def _first_touched_after(
    *, data: TrainingData, holdout: dict[int, set[int]], moment: datetime | None
) -> dict[int, set[int]]:
    """The held-out (user, item) pairs whose first interaction of any kind came after `moment`."""
    if moment is None or not holdout:
        return holdout
    item_count = len(data.items)
    held_keys = np.array(
        [user * item_count + item for user, items in holdout.items() for item in items], dtype=np.int64
    )
    keys = data.interactions.user * item_count + data.interactions.item
    touched = np.isin(keys, held_keys)
    keys, times = keys[touched], data.interactions.timestamp[touched]
    order = np.lexsort((times, keys))
    keys, first = np.unique(keys[order], return_index=True)
    new = keys[times[order][first] > moment.timestamp()]
    unseen: dict[int, set[int]] = {}
    for key in new.tolist():
        unseen.setdefault(key // item_count, set()).add(key % item_count)
    return unseen


def _floats(metrics: dict) -> dict:
    """Metrics as plain JSON numbers: numpy scalars become floats, NaN and infinities (invalid JSON) None."""
    plain: dict = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            plain[key] = _floats(value)
        else:
            number = float(value)
            plain[key] = number if np.isfinite(number) else None
    return plain


def _popularity_lists(data_train: TrainingData, params: TrainingParams, holdout: dict[int, set[int]]) -> Precomputed:
    """The popularity baseline as per-customer lists, so the same scorer judges it on the same holdout."""
    popular = ranked(
        scores=popularity_scores(data=data_train, params=params), items=data_train.items, k=params.candidates_per_user
    )
    candidates = [Candidate(product_id=product_id, score=score, reason="popular") for product_id, score in popular]
    users = data_train.users.ids
    return Precomputed(for_customer={int(users[user]): candidates for user in holdout})


@dataclass(frozen=True)
class _Decision:
    """Whether a candidate is activated (True), rejected as worse (False) or kept as a candidate (None), and why.

    `against`, `candidate`, `baseline` and `holdout` are the numbers the decision compared; they are
    stored as metrics["promotion"] so the admin and the command show exactly what was judged.
    """

    activate: bool | None
    reason: str
    against: str = ""
    candidate: float | None = None
    baseline: float | None = None
    holdout: str = ""

    def comparison(self) -> dict:
        return {
            "against": self.against,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "holdout": self.holdout,
        }


def _promote_or_reject(
    *, version: RecommenderVersion, active: RecommenderVersion | None, tolerance: float, report: _ProgressReporter
) -> RecommenderVersion:
    decision = _promotion_decision(metrics=version.metrics, active=active, tolerance=tolerance)
    version.metrics = {**version.metrics, "promotion": decision.comparison()}
    version.save(update_fields=["metrics"])
    if decision.activate is False:
        return recommender_version_reject(version=version, reason=decision.reason)
    if decision.activate is None or not data_quality_gate_is_open(merchant=version.merchant):
        why = decision.reason if decision.activate is None else "the data-quality gate closed while it was training"
        return _keep_as_candidate(version=version, reason=f"not activated: {why}", report=report)
    try:
        recommender_version_promote(version=version, reason=decision.reason, expected_active=active)
    except VersionNotActivatable as refused:
        return _keep_as_candidate(version=version, reason=f"not activated: {refused}", report=report)
    report(1.0, "active")
    return version


def _keep_as_candidate(*, version: RecommenderVersion, reason: str, report: _ProgressReporter) -> RecommenderVersion:
    """A candidate that may be activated by hand (admin) but did not earn it automatically."""
    version.status_reason = reason
    version.save(update_fields=["status_reason"])
    report(1.0, "candidate")
    return version


def _versus_popularity(*, metrics: dict, prefix: str) -> _Decision:
    score, popularity = metrics[RANKING_METRIC], metrics["popularity_on_same_holdout"][RANKING_METRIC]
    numbers = {"against": "popularity", "candidate": score, "baseline": popularity, "holdout": "same"}
    if score + EPSILON >= popularity:
        return _Decision(
            True, f"{prefix}NDCG@10 {score:.4f} ≥ popularity's {popularity:.4f} on the same holdout", **numbers
        )
    return _Decision(
        False, f"{prefix}NDCG@10 {score:.4f} is below popularity's {popularity:.4f} on the same holdout", **numbers
    )


def _promotion_decision(*, metrics: dict, active: RecommenderVersion | None, tolerance: float) -> _Decision:
    """A first version must match popularity on the holdout. A later one must match the active version.

    Against the active version: within the tolerance on the held-out items neither had seen; when fewer
    than MIN_COMPARISON_USERS customers touched anything new since it was trained, against the score
    it had on its own holdout when it was trained.
    """
    if metrics["holdout_users"] == 0:
        if active is None:
            return _Decision(True, "first version: too few customers for a holdout; activated without a comparison")
        return _Decision(None, f"too few customers for a holdout to compare with the active v{active.number}")
    if active is None:
        return _versus_popularity(metrics=metrics, prefix="first version: ")
    champion = metrics.get("active_on_same_holdout") or {}
    if "error" in champion:
        return _versus_popularity(
            metrics=metrics, prefix=f"the active v{active.number} could not be scored ({champion['error']}); "
        )
    if champion.get("users", 0.0) >= MIN_COMPARISON_USERS:
        ours, theirs = metrics["candidate_on_same_holdout"][RANKING_METRIC], champion[RANKING_METRIC]
        holdout = "unseen by the active version"
        where = f"on the {int(champion['users'])} customers' items that v{active.number} never saw"
    else:
        ours, theirs = metrics[RANKING_METRIC], (active.metrics or {}).get(RANKING_METRIC)
        if not isinstance(theirs, int | float):
            return _Decision(None, f"too few new interactions since v{active.number} was trained to compare with it")
        holdout = "each version's own"
        where = f"on each version's own holdout (too few customers touched new items since v{active.number})"
    numbers = {"against": f"active v{active.number}", "candidate": ours, "baseline": theirs, "holdout": holdout}
    floor = theirs * (1.0 - tolerance)
    if ours + EPSILON >= floor:
        return _Decision(True, f"NDCG@10 {ours:.4f} vs the active v{active.number}'s {theirs:.4f} {where}", **numbers)
    return _Decision(
        False,
        f"NDCG@10 {ours:.4f} is below the active v{active.number}'s {theirs:.4f} × (1 − {tolerance:g}) "
        f"= {floor:.4f} {where}; v{active.number} stays active",
        **numbers,
    )
