import pytest
from django.test import Client

from events.models import AbandonmentModel, ModelRunStatus
from events.tasks import abandonment_models_train_all
from tests.factories.events import EventFactory
from tests.factories.funnel import AbandonmentModelFactory

pytestmark = pytest.mark.django_db

METRICS = {
    "auc": 0.7712,
    "auc_baseline": 0.6301,
    "brier": 0.1981,
    "base_rate": 0.54,
    "mean_predicted": 0.56,
    "calibration_method": "sigmoid",
    "reliability": [{"predicted": 0.21, "observed": 0.18, "count": 38}],
    "importances": {"signal_seconds_on_cart": 0.052},
}


@pytest.fixture
def manager_client(merchant_manager):
    client = Client()
    client.login(username=merchant_manager.username, password="pw-for-tests-1")
    return client


def test_a_manager_reads_their_models_metrics_and_cannot_change_them(manager_client, merchant, other_merchant):
    # given a model of each merchant
    ours = AbandonmentModelFactory(merchant=merchant, metrics=METRICS, train_carts=900, test_carts=300)
    theirs = AbandonmentModelFactory(merchant=other_merchant, metrics=METRICS)

    # when
    listing = manager_client.get("/admin/events/abandonmentmodel/")
    detail = manager_client.get(f"/admin/events/abandonmentmodel/{ours.pk}/change/")
    foreign = manager_client.get(f"/admin/events/abandonmentmodel/{theirs.pk}/change/")
    add = manager_client.get("/admin/events/abandonmentmodel/add/")

    # then
    assert listing.status_code == 200 and listing.context["cl"].result_count == 1
    assert detail.status_code == 200
    assert "900 / 300" in listing.content.decode()
    for text in ("0.771", "0.630", "signal_seconds_on_cart", "sigmoid"):
        assert text in detail.content.decode()
    assert foreign.status_code in (302, 404)
    assert add.status_code == 403


def test_nightly_training_runs_for_merchants_with_carts_and_logs_a_thin_history(merchant, other_merchant):
    # given a cart at one merchant only (too few to train)
    EventFactory(merchant=merchant, name="Product Added")

    # when the beat task runs (eagerly in tests)
    count = abandonment_models_train_all()

    # then one training ran and failed for lack of carts, without raising
    assert count == 1
    runs = list(AbandonmentModel.objects.filter(merchant=merchant))
    assert len(runs) == 1 and runs[0].status == ModelRunStatus.FAILED and "carts" in runs[0].error
    assert not AbandonmentModel.objects.filter(merchant=other_merchant).exists()
