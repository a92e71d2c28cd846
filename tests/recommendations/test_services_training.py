from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.utils import timezone

from events.models import OrderLine
from recommendations.cache import active_key
from recommendations.engine.precomputed import Candidate, Precomputed, precomputed_from_bytes, precomputed_to_bytes
from recommendations.engine.training import train as real_train
from recommendations.models import RecommenderSettings, RecommenderVersion, VersionStatus
from recommendations.services import training
from recommendations.services.training import recommender_train
from recommendations.services.versions import TrainingAlreadyRunning, recommender_version_create
from revopt.tenancy.models import AuditLogEntry
from tests.factories.events import DataQualityReportFactory
from tests.factories.recommendations import RecommenderVersionFactory
from tests.recommendations.training_shop import build_training_shop, shop_customer_ids

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(merchant):
    return build_training_shop(merchant)


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def _active(merchant) -> RecommenderVersion | None:
    return RecommenderVersion.objects.for_merchant(merchant).filter(status=VersionStatus.ACTIVE).first()


def test_a_first_training_on_a_real_shop_is_activated_and_published(shop, django_capture_on_commit_callbacks):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        version = recommender_train(merchant=shop, trigger="manual")

    # then
    version.refresh_from_db()
    assert version.status == VersionStatus.ACTIVE, version.status_reason
    assert version.number == 1 and version.trigger == "manual" and version.progress == 1.0
    assert version.interaction_count == 12 * 7 * 2 and version.customer_count == 12 and version.product_count == 30
    assert version.data_window_end - version.data_window_start == timedelta(days=180)
    metrics = version.metrics
    assert metrics["holdout_users"] == 12 and metrics["ndcg@10"] >= metrics["popularity_on_same_holdout"]["ndcg@10"]
    assert "active_on_same_holdout" not in metrics
    assert "popularity" in version.status_reason
    precomputed = precomputed_from_bytes(version.artifact)
    assert precomputed.version == 1
    assert set(precomputed.for_customer) <= set(shop_customer_ids(shop)) and precomputed.for_customer
    assert cache.get(active_key(shop.pk)) == (1, version.pk)
    assert AuditLogEntry.objects.for_merchant(shop).filter(action="recommender_version.promoted").count() == 1
    assert RecommenderSettings.objects.for_merchant(shop).count() == 1


def test_a_retraining_with_nothing_new_is_judged_on_each_versions_own_holdout(shop):
    # given
    first = recommender_train(merchant=shop, trigger="manual")

    # when: nothing happened since the first training, so no held-out item is new to it
    second = recommender_train(merchant=shop, trigger="manual")

    # then: the same data and seed give the same model, which matches the active one and replaces it
    first.refresh_from_db()
    assert second.metrics["active_on_same_holdout"]["version"] == first.number
    assert second.metrics["active_on_same_holdout"]["users"] == 0
    assert second.metrics["ndcg@10"] == pytest.approx(first.metrics["ndcg@10"], abs=0.02)
    assert second.status == VersionStatus.ACTIVE, second.status_reason
    assert "own holdout" in second.status_reason
    assert first.status == VersionStatus.RETIRED


def _perfect_lists(merchant) -> Precomputed:
    """Lists holding exactly what each customer bought: the best possible score on any holdout."""
    return Precomputed(
        version=1,
        for_customer={
            customer_id: [
                Candidate(product_id=product_id, score=1.0, reason="for_you")
                for product_id in OrderLine.objects.for_merchant(merchant)
                .filter(order__customer_id=customer_id)
                .order_by("-order__placed_at")
                .values_list("product_id", flat=True)
            ]
            for customer_id in shop_customer_ids(merchant)
        },
    )


def test_the_active_version_is_judged_on_the_items_it_never_saw(shop):
    # given: an active model trained 8 days ago (before every customer's last order) with perfect lists
    active = RecommenderVersionFactory(
        merchant=shop,
        number=1,
        status=VersionStatus.ACTIVE,
        artifact=precomputed_to_bytes(_perfect_lists(shop)),
        data_window_end=timezone.now() - timedelta(days=8),
    )

    # when
    version = recommender_train(merchant=shop, trigger="schedule")

    # then
    champion, challenger = version.metrics["active_on_same_holdout"], version.metrics["candidate_on_same_holdout"]
    assert champion["users"] == challenger["users"] == 12
    assert champion["ndcg@10"] == 1.0 and challenger["ndcg@10"] < 1.0
    assert version.status == VersionStatus.REJECTED
    assert "items that v1 never saw" in version.status_reason
    assert _active(shop) == active


def test_items_the_active_version_trained_on_are_left_out_of_its_comparison(shop):
    # given: the same perfect model, trained 6 days ago: it saw every held-out order already
    RecommenderVersionFactory(
        merchant=shop,
        number=1,
        status=VersionStatus.ACTIVE,
        artifact=precomputed_to_bytes(_perfect_lists(shop)),
        data_window_end=timezone.now() - timedelta(days=6),
        metrics={"ndcg@10": 0.05},
    )

    # when
    version = recommender_train(merchant=shop, trigger="schedule")

    # then: no fair common holdout, so the candidate is held against v1's own holdout score (0.05)
    assert version.metrics["active_on_same_holdout"]["users"] == 0
    assert version.status == VersionStatus.ACTIVE, version.status_reason
    assert "vs the active v1's 0.0500 on each version's own holdout" in version.status_reason


def test_a_closed_data_quality_gate_fails_the_training_and_keeps_the_active_version(shop):
    # given
    active = RecommenderVersionFactory(merchant=shop, number=1, status=VersionStatus.ACTIVE)
    DataQualityReportFactory(
        merchant=shop, passed=False, checks=[{"name": "volume_drop", "status": "fail", "label": "Volume"}]
    )

    # when
    version = recommender_train(merchant=shop, trigger="schedule")

    # then
    assert version.status == VersionStatus.FAILED
    assert "data-quality gate closed" in version.status_reason and "volume_drop" in version.status_reason
    assert version.artifact is None
    assert _active(shop) == active


def test_an_engine_error_fails_the_training_and_keeps_the_active_version(shop, monkeypatch):
    # given
    active = RecommenderVersionFactory(merchant=shop, number=1, status=VersionStatus.ACTIVE)

    def broken(data, params, progress=None):
        raise RuntimeError("the solver diverged")

    monkeypatch.setattr(training, "train", broken)

    # when
    version = recommender_train(merchant=shop, trigger="schedule")

    # then
    version.refresh_from_db()
    assert version.status == VersionStatus.FAILED
    assert version.status_reason == "training failed: RuntimeError: the solver diverged"
    assert version.progress_message == "failed" and version.finished_at is not None
    assert _active(shop) == active


def test_too_little_data_fails_with_a_clear_reason(merchant):
    # given
    DataQualityReportFactory(merchant=merchant, passed=True)

    # when
    version = recommender_train(merchant=merchant, trigger="schedule")

    # then
    assert version.status == VersionStatus.FAILED
    assert version.status_reason.startswith("too little data: 0 customer(s) with interactions in the last 180 days")


def _score_as(monkeypatch, *, candidate: float, active: float, popularity: float) -> None:
    """The candidate's ranker scores `candidate` NDCG@10; the active artifact and popularity score as given.

    The models are not fitted: these tests are about the registry's decision, not the engine.
    """

    def score_scorer(scorer, *, train, holdout):
        return {"ndcg@10": candidate, "precision@10": 0.1, "users": float(len(holdout))}

    def evaluate_precomputed(precomputed, data_train, holdout):
        return {"ndcg@10": popularity if precomputed.version is None else active, "users": float(len(holdout))}

    monkeypatch.setattr(training, "score_scorer", score_scorer)
    monkeypatch.setattr(training, "evaluate_precomputed", evaluate_precomputed)
    # The models themselves do not matter here: skip fitting them.
    monkeypatch.setattr(training, "fit_revopt", lambda data, params, progress=None: SimpleNamespace(scores=None))
    monkeypatch.setattr(training, "train", lambda data, params, progress=None: Precomputed())


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (0.120, VersionStatus.ACTIVE),  # better
        (0.100, VersionStatus.ACTIVE),  # equal
        (0.0981, VersionStatus.ACTIVE),  # within the 2% tolerance (floor 0.098)
        (0.0979, VersionStatus.REJECTED),  # just beyond it
        (0.050, VersionStatus.REJECTED),  # much worse
    ],
)
def test_a_candidate_replaces_the_active_version_only_within_the_tolerance(shop, monkeypatch, candidate, expected):
    # given
    active = RecommenderVersionFactory(merchant=shop, number=1, status=VersionStatus.ACTIVE)
    RecommenderSettings.objects.create(merchant=shop, promotion_tolerance=0.02)
    _score_as(monkeypatch, candidate=candidate, active=0.100, popularity=0.010)

    # when
    version = recommender_train(merchant=shop, trigger="schedule")

    # then
    active.refresh_from_db()
    assert version.status == expected
    assert version.metrics["active_on_same_holdout"] == {"version": 1, "since": None, "ndcg@10": 0.1, "users": 12.0}
    assert version.metrics["promotion"] == {
        "against": "active v1",
        "candidate": candidate,
        "baseline": 0.1,
        "holdout": "unseen by the active version",
    }
    if expected == VersionStatus.ACTIVE:
        assert active.status == VersionStatus.RETIRED
    else:
        assert active.status == VersionStatus.ACTIVE
        assert version.status_reason == (
            f"NDCG@10 {candidate:.4f} is below the active v1's 0.1000 × (1 − 0.02) = 0.0980 on the 12 customers' items "
            "that v1 never saw; v1 stays active"
        )
        assert version.artifact is not None  # kept, so it can still be inspected or activated by hand


def test_a_wider_tolerance_lets_a_slightly_worse_candidate_through(shop, monkeypatch):
    # given
    RecommenderVersionFactory(merchant=shop, number=1, status=VersionStatus.ACTIVE)
    RecommenderSettings.objects.create(merchant=shop, promotion_tolerance=0.10)
    _score_as(monkeypatch, candidate=0.0950, active=0.100, popularity=0.010)

    # when
    version = recommender_train(merchant=shop, trigger="schedule")

    # then
    assert version.status == VersionStatus.ACTIVE


def test_a_first_version_worse_than_popularity_is_rejected(shop, monkeypatch):
    # given
    _score_as(monkeypatch, candidate=0.040, active=0.0, popularity=0.050)

    # when
    version = recommender_train(merchant=shop, trigger="schedule")

    # then
    assert version.status == VersionStatus.REJECTED
    assert version.status_reason == ("first version: NDCG@10 0.0400 is below popularity's 0.0500 on the same holdout")
    assert _active(shop) is None


def test_a_first_version_equal_to_popularity_is_activated(shop, monkeypatch):
    # given
    _score_as(monkeypatch, candidate=0.050, active=0.0, popularity=0.050)

    # when
    version = recommender_train(merchant=shop, trigger="schedule")

    # then
    assert version.status == VersionStatus.ACTIVE


def test_an_active_artifact_the_engine_cannot_read_is_replaced_if_the_candidate_beats_popularity(shop):
    # given
    RecommenderVersionFactory(merchant=shop, number=1, status=VersionStatus.ACTIVE, artifact=b"not a model")

    # when
    version = recommender_train(merchant=shop, trigger="schedule")

    # then
    assert "error" in version.metrics["active_on_same_holdout"]
    assert version.status == VersionStatus.ACTIVE, version.status_reason
    assert "could not be scored" in version.status_reason


def test_progress_is_written_while_training_runs(shop, monkeypatch):
    # given
    seen_in_database = []
    calls = []

    def spying_train(data, params, progress=None):
        progress(0.5, "halfway")
        row = RecommenderVersion.objects.for_merchant(shop).get(status=VersionStatus.TRAINING)
        seen_in_database.append((round(row.progress, 3), row.progress_message))
        return real_train(data, params, progress)

    monkeypatch.setattr(training, "train", spying_train)

    # when
    version = recommender_train(merchant=shop, trigger="manual", progress=lambda f, m: calls.append((f, m)))

    # then
    assert seen_in_database == [(0.725, "training on all data: halfway")]
    calls.remove((0.725, "training on all data: halfway"))
    fractions = [fraction for fraction, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert calls[0] == (0.01, "checking data quality")
    version.refresh_from_db()
    assert version.progress == 1.0 and version.progress_message == "active"


def test_the_evaluation_table_is_stored_on_the_version(shop):
    # given
    table = [{"ranker": "revopt", "ndcg@10": 0.2}, {"ranker": "popularity", "ndcg@10": 0.1}]

    # when
    version = recommender_train(merchant=shop, trigger="evaluation", evaluation=table)

    # then
    version.refresh_from_db()
    assert version.evaluation == table


def test_a_training_is_refused_while_another_runs(shop):
    # given
    running = recommender_version_create(merchant=shop, trigger="schedule", params={})

    # when / then
    with pytest.raises(TrainingAlreadyRunning):
        recommender_train(merchant=shop, trigger="manual")
    assert list(RecommenderVersion.objects.for_merchant(shop)) == [running]


def test_training_one_merchant_never_touches_another(shop, other_merchant):
    # given
    theirs = RecommenderVersionFactory(merchant=other_merchant, number=1, status=VersionStatus.ACTIVE)

    # when
    version = recommender_train(merchant=shop, trigger="manual")

    # then
    theirs.refresh_from_db()
    assert version.number == 1 and version.status == VersionStatus.ACTIVE
    assert theirs.status == VersionStatus.ACTIVE
