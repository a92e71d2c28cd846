from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from recommendations.cache import active_key
from recommendations.models import RecommenderVersion, VersionStatus
from recommendations.services.versions import (
    TrainingAlreadyRunning,
    VersionNotActivatable,
    recommender_version_activate,
    recommender_version_create,
    recommender_version_fail,
    recommender_version_promote,
)
from revopt.tenancy.models import AuditLogEntry
from tests.factories.recommendations import RecommenderVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def _statuses(merchant) -> dict[int, str]:
    return dict(RecommenderVersion.objects.for_merchant(merchant).values_list("number", "status"))


def test_rollback_reactivates_a_retired_version_and_retires_the_active_one(
    merchant, merchant_manager, django_capture_on_commit_callbacks
):
    # given
    old = RecommenderVersionFactory(merchant=merchant, number=1, status=VersionStatus.RETIRED)
    RecommenderVersionFactory(merchant=merchant, number=2, status=VersionStatus.ACTIVE)

    # when
    with django_capture_on_commit_callbacks(execute=True):
        activated = recommender_version_activate(version=old, activated_by=merchant_manager, reason="v2 sells less")

    # then
    assert activated.status == VersionStatus.ACTIVE and activated.activated_at is not None
    assert _statuses(merchant) == {1: VersionStatus.ACTIVE, 2: VersionStatus.RETIRED}
    assert RecommenderVersion.objects.get(merchant=merchant, number=2).retired_at is not None
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="recommender_version.activated")
    assert entry.actor == merchant_manager and entry.target_id == str(old.pk)
    assert entry.detail == {"number": 1, "previous": 2, "reason": "v2 sells less"}
    assert cache.get(active_key(merchant.pk)) == (1, old.pk)


def test_activating_a_candidate_when_none_is_active(merchant, merchant_manager):
    # given
    candidate = RecommenderVersionFactory(merchant=merchant, number=1, status=VersionStatus.CANDIDATE)

    # when
    recommender_version_activate(version=candidate, activated_by=merchant_manager, reason="first")

    # then
    assert _statuses(merchant) == {1: VersionStatus.ACTIVE}


@pytest.mark.parametrize(
    "status", [VersionStatus.TRAINING, VersionStatus.FAILED, VersionStatus.REJECTED, VersionStatus.ACTIVE]
)
def test_only_candidate_or_retired_versions_can_be_activated(merchant, merchant_manager, status):
    # given
    version = RecommenderVersionFactory(merchant=merchant, number=1, status=status)

    # when / then
    with pytest.raises(VersionNotActivatable, match="only candidate or retired"):
        recommender_version_activate(version=version, activated_by=merchant_manager, reason="try")
    assert _statuses(merchant) == {1: status}
    assert not AuditLogEntry.objects.for_merchant(merchant).filter(action="recommender_version.activated").exists()


def test_a_version_without_an_artifact_cannot_be_activated(merchant, merchant_manager):
    # given
    active = RecommenderVersionFactory(merchant=merchant, number=1, status=VersionStatus.ACTIVE)
    empty = RecommenderVersionFactory(merchant=merchant, number=2, status=VersionStatus.RETIRED, artifact=None)

    # when / then
    with pytest.raises(VersionNotActivatable, match="no trained artifact"):
        recommender_version_activate(version=empty, activated_by=merchant_manager, reason="try")
    assert _statuses(merchant) == {1: VersionStatus.ACTIVE, 2: VersionStatus.RETIRED}
    assert active.pk == RecommenderVersion.objects.get(merchant=merchant, status=VersionStatus.ACTIVE).pk


def test_the_database_allows_one_active_version_per_merchant(merchant, other_merchant):
    # given
    RecommenderVersionFactory(merchant=merchant, number=1, status=VersionStatus.ACTIVE)
    RecommenderVersionFactory(merchant=other_merchant, number=1, status=VersionStatus.ACTIVE)

    # when / then
    with pytest.raises(IntegrityError), transaction.atomic():
        RecommenderVersionFactory(merchant=merchant, number=2, status=VersionStatus.ACTIVE)


def test_activation_touches_only_the_merchants_own_versions(merchant, other_merchant, merchant_manager):
    # given
    theirs = RecommenderVersionFactory(merchant=other_merchant, number=1, status=VersionStatus.ACTIVE)
    mine = RecommenderVersionFactory(merchant=merchant, number=1, status=VersionStatus.CANDIDATE)

    # when
    recommender_version_activate(version=mine, activated_by=merchant_manager, reason="mine")

    # then
    theirs.refresh_from_db()
    assert theirs.status == VersionStatus.ACTIVE
    assert _statuses(merchant) == {1: VersionStatus.ACTIVE}


def test_promotion_is_refused_when_the_active_version_changed_meanwhile(merchant):
    # given: the candidate was compared with v1, but someone rolled back to v0 while it trained
    compared_with = RecommenderVersionFactory(merchant=merchant, number=1, status=VersionStatus.RETIRED)
    RecommenderVersionFactory(merchant=merchant, number=2, status=VersionStatus.ACTIVE)
    candidate = RecommenderVersionFactory(merchant=merchant, number=3, status=VersionStatus.CANDIDATE)

    # when / then
    with pytest.raises(VersionNotActivatable, match="changed while"):
        recommender_version_promote(version=candidate, reason="better", expected_active=compared_with)
    assert _statuses(merchant)[3] == VersionStatus.CANDIDATE


def test_automatic_promotion_is_audited_without_an_actor(merchant):
    # given
    active = RecommenderVersionFactory(merchant=merchant, number=1, status=VersionStatus.ACTIVE)
    candidate = RecommenderVersionFactory(merchant=merchant, number=2, status=VersionStatus.CANDIDATE)

    # when
    recommender_version_promote(version=candidate, reason="NDCG@10 better", expected_active=active)

    # then
    assert _statuses(merchant) == {1: VersionStatus.RETIRED, 2: VersionStatus.ACTIVE}
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="recommender_version.promoted")
    assert entry.actor is None and entry.detail["reason"] == "NDCG@10 better"


def test_versions_are_numbered_per_merchant(merchant, other_merchant):
    # given
    RecommenderVersionFactory(merchant=other_merchant, number=7, status=VersionStatus.FAILED)
    RecommenderVersionFactory(merchant=merchant, number=3, status=VersionStatus.FAILED)

    # when
    version = recommender_version_create(merchant=merchant, trigger="manual", params={"seed": 0})

    # then
    assert version.number == 4 and version.status == VersionStatus.TRAINING
    assert version.params == {"seed": 0} and version.trigger == "manual"


def test_a_second_training_is_refused_while_one_runs(merchant):
    # given
    running = recommender_version_create(merchant=merchant, trigger="schedule", params={})

    # when / then
    with pytest.raises(TrainingAlreadyRunning) as refused:
        recommender_version_create(merchant=merchant, trigger="schedule", params={})
    assert refused.value.version == running
    assert RecommenderVersion.objects.for_merchant(merchant).count() == 1


def test_a_training_older_than_the_time_limit_is_marked_abandoned(merchant, settings):
    # given
    stale = recommender_version_create(merchant=merchant, trigger="schedule", params={})
    limit = settings.REVOPT["RECOMMENDER_TRAIN_TIME_LIMIT"]
    RecommenderVersion.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(seconds=limit + 1))

    # when
    fresh = recommender_version_create(merchant=merchant, trigger="schedule", params={})

    # then
    stale.refresh_from_db()
    assert stale.status == VersionStatus.FAILED and "abandoned" in stale.status_reason
    assert fresh.number == 2 and fresh.status == VersionStatus.TRAINING


def test_failing_a_version_that_already_serves_leaves_it_serving(merchant):
    # given: an error reported after the version was activated (say, writing its last progress row)
    active = RecommenderVersionFactory(merchant=merchant, number=1, status=VersionStatus.ACTIVE)

    # when
    returned = recommender_version_fail(version=active, reason="training failed: OperationalError")

    # then
    active.refresh_from_db()
    assert active.status == VersionStatus.ACTIVE and returned.status == VersionStatus.ACTIVE
    assert active.status_reason == ""
