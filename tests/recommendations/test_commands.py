import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from recommendations.engine.dataset import Baskets, Interactions, Items, TrainingData, Users
from recommendations.management.commands import evaluate_recommenders
from recommendations.models import RecommenderVersion, VersionStatus
from tests.factories.events import DataQualityReportFactory
from tests.recommendations.training_shop import build_training_shop

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(merchant):
    return build_training_shop(merchant)


def test_train_recommenders_prints_the_version_and_its_metrics(shop, capsys):
    # when
    call_command("train_recommenders", "--merchant", shop.slug, "--no-progress")

    # then
    out = capsys.readouterr().out
    version = RecommenderVersion.objects.for_merchant(shop).get()
    assert version.status == VersionStatus.ACTIVE and version.trigger == "command"
    assert f"Recommender v1 (Active) for {shop.slug}: active" in out
    assert "holdout of 12 customers" in out
    assert f"{version.metrics['ndcg@10']:.4f}" in out and "popularity" in out
    assert "NDCG@10 judged: " in out and "vs popularity" in out


def test_train_recommenders_fails_loudly_when_the_training_fails(merchant):
    # given: a failing data-quality report closes the gate
    DataQualityReportFactory(merchant=merchant, passed=False)

    # when / then
    with pytest.raises(CommandError, match="data-quality gate closed"):
        call_command("train_recommenders", "--merchant", merchant.slug, "--no-progress")
    assert RecommenderVersion.objects.for_merchant(merchant).get().status == VersionStatus.FAILED


def test_train_recommenders_needs_a_known_merchant(merchant):
    with pytest.raises(CommandError, match="no merchant"):
        call_command("train_recommenders", "--merchant", "no-such-shop", "--no-progress")


def _tiny_movielens() -> TrainingData:
    """Four users and six movies: enough for the per-user split to hold something out."""
    users, items, times = [], [], []
    for user in range(4):
        for step, item in enumerate([(user + offset) % 6 for offset in range(6)]):
            users.append(user)
            items.append(item)
            times.append(1_000_000.0 + user * 10 + step * 1000)
    count = len(users)
    return TrainingData(
        items=Items(
            ids=np.arange(1, 7, dtype=np.int64),
            category=np.array([1, 1, 2, 2, 3, 3], dtype=np.int64),
            category_path=["Drama", "Drama", "Comedy", "Comedy", "Action", "Action"],
            title=[f"Movie {i}" for i in range(6)],
            description=[""] * 6,
            brand=[""] * 6,
            attributes=[{}] * 6,
            price=np.ones(6),
            created_at=np.zeros(6),
        ),
        users=Users(ids=np.arange(1, 5, dtype=np.int64), device=["other"] * 4, segment=["new"] * 4),
        interactions=Interactions(
            user=np.array(users, dtype=np.int64),
            item=np.array(items, dtype=np.int64),
            kind=np.full(count, 4, dtype=np.int8),
            timestamp=np.array(times),
            session=np.full(count, -1, dtype=np.int64),
        ),
        baskets=Baskets.empty(),
        now=2_000_000.0,
    )


def test_evaluate_on_movielens_prints_and_stores_the_table(monkeypatch, settings, tmp_path, capsys):
    # given: the real loader reads 100k ratings; the command's plumbing is what is tested here
    monkeypatch.setattr(evaluate_recommenders, "load_movielens", _tiny_movielens)
    settings.VAR_DIR = tmp_path

    # when
    call_command(
        "evaluate_recommenders", "--dataset", "movielens", "--seeds", "2", "--rankers", "popularity,random",
        "--no-progress",
    )  # fmt: skip

    # then
    out = capsys.readouterr().out
    assert "ranker" in out and "ndcg@10" in out and "popularity" in out and "random" in out
    [written] = (tmp_path / "evaluations").glob("movielens-*.json")
    document = json.loads(written.read_text())
    assert document["dataset"] == "movielens" and document["seeds"] == [0, 1]
    assert [row["ranker"] for row in document["rows"]] == ["popularity", "random"]
    assert document["rows"][0]["seeds"] == 2 and "ndcg@10_sd" in document["rows"][0]


def test_evaluate_on_a_merchants_data_stores_the_table_on_a_new_version(shop, settings, tmp_path, capsys):
    # given
    settings.VAR_DIR = tmp_path

    # when
    call_command(
        "evaluate_recommenders", "--dataset", "simulator", "--merchant", shop.slug, "--seeds", "1",
        "--rankers", "revopt,popularity", "--no-progress",
    )  # fmt: skip

    # then
    out = capsys.readouterr().out
    version = RecommenderVersion.objects.for_merchant(shop).get()
    assert version.trigger == "evaluation"
    assert [row["ranker"] for row in version.evaluation] == ["revopt", "popularity"]
    assert "revopt" in out and "Recommender v1" in out
    assert list((tmp_path / "evaluations").glob(f"simulator-{shop.slug}-*.json"))


def test_evaluate_rejects_an_unknown_ranker(merchant):
    with pytest.raises(CommandError, match="unknown rankers"):
        call_command(
            "evaluate_recommenders", "--dataset", "simulator", "--merchant", merchant.slug, "--rankers", "magic",
            "--no-progress",
        )  # fmt: skip


@pytest.mark.slow
def test_evaluate_on_a_fresh_simulated_shop(settings, tmp_path, capsys):
    # given
    settings.VAR_DIR = tmp_path

    # when
    call_command(
        "evaluate_recommenders", "--dataset", "simulator", "--sessions", "400", "--days", "5", "--seed", "3",
        "--seeds", "1", "--rankers", "popularity", "--no-progress",
    )  # fmt: skip

    # then
    out = capsys.readouterr().out
    assert "simulated 400 sessions into sim-eval-3" in out
    version = RecommenderVersion.objects.get(merchant__slug="sim-eval-3")
    assert version.evaluation[0]["ranker"] == "popularity"
