"""Celery entry points for experiments: each loads by id and calls one service."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)

# --- analysis (daily snapshots) ---------------------------------------------------------------
# Imported here, not at the top, so that this section stays apart from the bandits one below.
from django.db import OperationalError as _DatabaseUnavailable  # noqa: E402
from django.utils import timezone as _timezone  # noqa: E402
from django.utils.dateparse import parse_datetime as _parse_datetime  # noqa: E402

from experiments import models as _models  # noqa: E402
from experiments.services.analysis import experiment_analyze  # noqa: E402

# Contextual bandits choose per request, not by weights: a sample-ratio check or a comparison of arms
# means nothing there; their decisions are evaluated off-policy instead.
ANALYZED_KINDS = (_models.ExperimentKind.AB, _models.ExperimentKind.BANDIT)


# Time limits: CELERY_TASK_ANNOTATIONS in settings. `as_of` comes from the scheduler so that a retry
# rewrites the same snapshot rather than adding one.
@shared_task(bind=True, autoretry_for=(_DatabaseUnavailable,), max_retries=2, retry_backoff=True)
def experiment_analyze_task(self, experiment_id: int, as_of: str | None = None) -> str | None:
    experiment = _models.Experiment.objects.select_related("merchant").filter(pk=experiment_id).first()
    if experiment is None:
        logger.info("experiment %s no longer exists: nothing to analyse", experiment_id)
        return None
    moment = _parse_datetime(as_of) if as_of else None
    if as_of and (moment is None or moment.tzinfo is None):
        raise ValueError(f"not an aware ISO datetime: {as_of!r}")
    analysis = experiment_analyze(experiment=experiment, as_of=moment, save=True)
    logger.info("experiment %s of %s: %s", experiment.key, experiment.merchant.slug, analysis.verdict)
    return analysis.verdict


@shared_task
def experiments_analyze_running() -> int:
    """Daily (beat): one snapshot of every running A/B test and bandit, each in its own task."""
    as_of = _timezone.now().isoformat()
    experiment_ids = list(
        _models.Experiment.objects.filter(
            status=_models.ExperimentStatus.RUNNING, kind__in=ANALYZED_KINDS, merchant__is_active=True
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for experiment_id in experiment_ids:
        experiment_analyze_task.delay(experiment_id, as_of)
    return len(experiment_ids)


# --- bandits (scheduled reallocation, contextual model updates) -------------------------------
# Imported here, not at the top, so that this section stays apart from the analysis one above.
from datetime import datetime  # noqa: E402

from django.db import OperationalError  # noqa: E402
from django.utils import timezone  # noqa: E402
from django.utils.dateparse import parse_datetime  # noqa: E402

from experiments.models import Experiment, ExperimentKind, ExperimentStatus  # noqa: E402
from experiments.services import bandits as bandit_services  # noqa: E402


def _bandit_time(iso: str | None) -> datetime:
    """The time a scheduled bandit step runs "as of": given by the scheduler, else the start of this
    hour, so that a retried task repeats the same step (same seed, same windows) instead of a new one."""
    if iso is None:
        return timezone.now().replace(minute=0, second=0, microsecond=0)
    parsed = parse_datetime(iso)
    if parsed is None or timezone.is_naive(parsed):
        raise ValueError(f"not an aware ISO datetime: {iso!r}")
    return parsed


def _running(kind: str) -> list[int]:
    return list(
        Experiment.objects.filter(kind=kind, status=ExperimentStatus.RUNNING, merchant__is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def bandit_reallocate_task(self, experiment_id: int, now: str | None = None) -> int | None:
    experiment = Experiment.objects.filter(
        pk=experiment_id, kind=ExperimentKind.BANDIT, status=ExperimentStatus.RUNNING
    ).first()
    if experiment is None:
        logger.info("bandit %s is no longer running: nothing to reallocate", experiment_id)
        return None
    change = bandit_services.bandit_reallocate(experiment=experiment, now=_bandit_time(now))
    return change.pk


@shared_task
def bandits_reallocate_running() -> int:
    """Hourly (beat): every running bandit, each in its own task."""
    now = _bandit_time(None).isoformat()
    experiment_ids = _running(ExperimentKind.BANDIT)
    for experiment_id in experiment_ids:
        bandit_reallocate_task.delay(experiment_id, now)
    return len(experiment_ids)


@shared_task(bind=True, autoretry_for=(OperationalError,), max_retries=2, retry_backoff=True)
def contextual_bandit_update_task(self, experiment_id: int, now: str | None = None) -> int | None:
    experiment = Experiment.objects.filter(
        pk=experiment_id, kind=ExperimentKind.CONTEXTUAL_BANDIT, status=ExperimentStatus.RUNNING
    ).first()
    if experiment is None:
        logger.info("contextual bandit %s is no longer running: nothing to learn", experiment_id)
        return None
    state = bandit_services.contextual_bandit_learn(experiment=experiment, now=_bandit_time(now))
    return state.pk


@shared_task
def contextual_bandits_update_running() -> int:
    """Hourly (beat): reward the decisions whose window closed and update each contextual bandit's model."""
    now = _bandit_time(None).isoformat()
    experiment_ids = _running(ExperimentKind.CONTEXTUAL_BANDIT)
    for experiment_id in experiment_ids:
        contextual_bandit_update_task.delay(experiment_id, now)
    return len(experiment_ids)
