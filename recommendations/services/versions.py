"""The model registry: creating, failing, rejecting and activating recommender versions.

Every status change is one short transaction on the merchant's locked versions; an activation retires
the previous active version, writes an audit row and warms the cache once the transaction commits.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from recommendations.cache import publish_precomputed
from recommendations.engine.precomputed import precomputed_from_bytes
from recommendations.models import RecommenderVersion, VersionStatus
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

logger = logging.getLogger(__name__)

ACTIVATABLE_STATUSES = (VersionStatus.CANDIDATE, VersionStatus.RETIRED)
# Concurrent creations may pick the same number; the unique constraint catches it and we try again.
CREATE_ATTEMPTS = 3


class TrainingAlreadyRunning(Exception):
    """Another training of this merchant started less than the training time limit ago."""

    def __init__(self, version: RecommenderVersion):
        super().__init__(
            f"{version} of {version.merchant} is still training (started {version.created_at:%Y-%m-%d %H:%M})"
        )
        self.version = version


class VersionNotActivatable(Exception):
    pass


def training_time_limit() -> timedelta:
    """A training older than this is dead: the task's hard time limit killed it."""
    return timedelta(seconds=settings.REVOPT["RECOMMENDER_TRAIN_TIME_LIMIT"])


def _lock_versions(*, merchant: Merchant) -> list[RecommenderVersion]:
    """Locks the merchant's versions, always in pk order so two writers never wait on each other crosswise.

    Artifacts (megabytes each) are not read; `has_artifact` says whether there is one.
    """
    return list(
        RecommenderVersion.objects.for_merchant(merchant)
        .select_for_update()
        .order_by("pk")
        .defer("artifact", "metrics", "evaluation", "params")
        .annotate(has_artifact=Q(artifact__isnull=False))
    )


def recommender_version_create(
    *, merchant: Merchant, trigger: str, params: dict, created_by: AbstractBaseUser | None = None
) -> RecommenderVersion:
    """A new version in status training, numbered next for the merchant; committed at once so the UI shows it.

    Raises TrainingAlreadyRunning while another training of the merchant is younger than the time limit;
    an older one was killed without a chance to say so and is marked failed here.
    """
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return _create_version(merchant=merchant, trigger=trigger, params=params, created_by=created_by)
        except IntegrityError:
            if attempt == CREATE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@transaction.atomic
def _create_version(
    *, merchant: Merchant, trigger: str, params: dict, created_by: AbstractBaseUser | None
) -> RecommenderVersion:
    Merchant.objects.select_for_update().filter(pk=merchant.pk).first()
    now = timezone.now()
    running = RecommenderVersion.objects.for_merchant(merchant).filter(status=VersionStatus.TRAINING)
    for version in running.order_by("pk"):
        if now - version.created_at < training_time_limit():
            raise TrainingAlreadyRunning(version)
        RecommenderVersion.objects.filter(pk=version.pk).update(
            status=VersionStatus.FAILED,
            status_reason="abandoned: the training did not finish within the time limit",
            finished_at=now,
        )
    last = RecommenderVersion.objects.for_merchant(merchant).aggregate(last=Max("number"))["last"] or 0
    return RecommenderVersion.objects.create(
        merchant=merchant,
        number=last + 1,
        status=VersionStatus.TRAINING,
        params=params,
        trigger=trigger,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        progress_message="queued",
    )


def recommender_version_progress(*, version: RecommenderVersion, fraction: float, message: str) -> None:
    """Records how far a training is, in its own statement so the UI sees it while training runs."""
    version.progress = min(max(fraction, 0.0), 1.0)
    version.progress_message = message[:200]
    RecommenderVersion.objects.filter(pk=version.pk).update(
        progress=version.progress, progress_message=version.progress_message
    )


def _finish(*, version: RecommenderVersion, status: str, reason: str, fields: tuple[str, ...] = ()) -> None:
    version.status = status
    version.status_reason = reason
    version.finished_at = version.finished_at or timezone.now()
    version.save(update_fields=["status", "status_reason", "finished_at", *fields])


@transaction.atomic
def recommender_version_fail(*, version: RecommenderVersion, reason: str) -> RecommenderVersion:
    """Marks a training failed; a version that already serves (or served) keeps its status."""
    status = RecommenderVersion.objects.select_for_update().values_list("status", flat=True).get(pk=version.pk)
    if status not in (VersionStatus.TRAINING, VersionStatus.CANDIDATE):
        logger.error("%s of %s hit an error after it became %s: %s", version, version.merchant, status, reason)
        version.status = status
        return version
    version.progress_message = "failed"
    _finish(version=version, status=VersionStatus.FAILED, reason=reason, fields=("progress_message",))
    logger.warning("%s of %s failed: %s", version, version.merchant, reason)
    return version


@transaction.atomic
def recommender_version_reject(*, version: RecommenderVersion, reason: str) -> RecommenderVersion:
    version.progress, version.progress_message = 1.0, "rejected"
    _finish(version=version, status=VersionStatus.REJECTED, reason=reason, fields=("progress", "progress_message"))
    return version


def recommender_version_activate(
    *, version: RecommenderVersion, activated_by: AbstractBaseUser | None, reason: str
) -> RecommenderVersion:
    """Manual activation or rollback: a candidate or retired version with an artifact replaces the active one."""
    return _activate(version=version, actor=activated_by, reason=reason, action="recommender_version.activated")


def recommender_version_promote(
    *, version: RecommenderVersion, reason: str, expected_active: RecommenderVersion | None
) -> RecommenderVersion:
    """Automatic promotion of a candidate that beat `expected_active` offline.

    Refused (VersionNotActivatable) when the active version is no longer the one it was compared with.
    """
    return _activate(
        version=version,
        actor=None,
        reason=reason,
        action="recommender_version.promoted",
        expected_active_pk=expected_active.pk if expected_active is not None else None,
        check_expected_active=True,
    )


@transaction.atomic
def _activate(
    *,
    version: RecommenderVersion,
    actor: AbstractBaseUser | None,
    reason: str,
    action: str,
    expected_active_pk: int | None = None,
    check_expected_active: bool = False,
) -> RecommenderVersion:
    locked = {row.pk: row for row in _lock_versions(merchant=version.merchant)}
    current = locked.get(version.pk)
    if current is None:
        raise VersionNotActivatable(f"{version} no longer exists")
    if current.status not in ACTIVATABLE_STATUSES:
        raise VersionNotActivatable(
            f"{current} cannot be activated: only candidate or retired versions can (it is {current.status})"
        )
    if not current.has_artifact:
        raise VersionNotActivatable(f"{current} has no trained artifact to serve")
    previous = next((row for row in locked.values() if row.status == VersionStatus.ACTIVE), None)
    if check_expected_active and (previous.pk if previous else None) != expected_active_pk:
        raise VersionNotActivatable("the active version changed while this one was training")
    now = timezone.now()
    if previous is not None:
        previous.status, previous.retired_at = VersionStatus.RETIRED, now
        previous.save(update_fields=["status", "retired_at"])
    current.status, current.activated_at, current.retired_at = VersionStatus.ACTIVE, now, None
    current.status_reason = reason
    current.finished_at = current.finished_at or now
    current.save(update_fields=["status", "activated_at", "retired_at", "status_reason", "finished_at"])
    audit_log_write(
        merchant=current.merchant,
        actor=actor,
        action=action,
        target=current,
        detail={"number": current.number, "previous": previous.number if previous else None, "reason": reason},
    )
    # robust: a cache that is down must not undo an activation; serving falls back until the next warm-up.
    transaction.on_commit(lambda: _publish(version_pk=current.pk), robust=True)
    for field in ("status", "activated_at", "retired_at", "status_reason", "finished_at"):
        setattr(version, field, getattr(current, field))
    return version


def _publish(*, version_pk: int) -> None:
    version = RecommenderVersion.objects.select_related("merchant").get(pk=version_pk)
    if version.status != VersionStatus.ACTIVE:
        return
    publish_precomputed(version=version, precomputed=precomputed_from_bytes(version.artifact))


def metrics_columns(version: RecommenderVersion) -> list[tuple[str, dict]]:
    """The version's stored metrics as titled columns, as `_offline_metrics` laid them out (for display)."""
    metrics = version.metrics or {}
    if not metrics:
        return []
    columns = [(f"v{version.number}", metrics), ("popularity", metrics.get("popularity_on_same_holdout") or {})]
    champion = metrics.get("active_on_same_holdout") or {}
    if champion.get("users"):
        columns.append((f"v{version.number} on new items", metrics.get("candidate_on_same_holdout") or {}))
        columns.append((f"v{champion.get('version')} on new items", champion))
    return columns


def promotion_summary(version: RecommenderVersion) -> str:
    """What the promotion compared, e.g. "0.2103 vs active v3 0.2050 (+2.6%, on each version's own holdout)"."""
    promotion = (version.metrics or {}).get("promotion") or {}
    ours, theirs = promotion.get("candidate"), promotion.get("baseline")
    if not isinstance(ours, int | float) or not isinstance(theirs, int | float):
        return ""
    change = f"{ours / theirs - 1:+.1%}, " if theirs > 0 else ""
    return f"{ours:.4f} vs {promotion['against']} {theirs:.4f} ({change}{promotion['holdout']} holdout)"
