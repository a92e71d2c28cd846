import pytest

from experiments.models import Experiment, ExperimentSettings, ExperimentStatus, Variant
from experiments.results import Verdict
from revopt.tenancy.models import AuditLogEntry
from tests.factories.experiments import (
    AnalysisSnapshotFactory,
    ExposureFactory,
    experiment_analysis,
    experiment_with_variants,
)

pytestmark = pytest.mark.django_db

EXPERIMENTS_URL = "/admin/experiments/experiment/"


@pytest.fixture
def manager_client(client, merchant_manager):
    client.force_login(merchant_manager)
    return client


@pytest.fixture
def platform_client(client, platform_admin):
    client.force_login(platform_admin)
    return client


def _add_form(**overrides) -> dict:
    """The admin's add form for a 50/50 test of free shipping, with two variant rows."""
    data = {
        "key": "free-shipping",
        "name": "Free shipping",
        "hypothesis": "Free shipping over $50 raises revenue per shopper.",
        "surface": "storefront",
        "kind": "ab",
        "seed": "",
        "coverage": "1.0",
        "layer": "",
        "layer_start": "0.0",
        "layer_end": "1.0",
        "targeting": "{}",
        "primary_metric": "revenue_per_user",
        "secondary_metrics": '["conversion"]',
        "guardrails": '[{"metric": "refund_rate", "max_relative_change": 0.1}]',
        "alpha": "0.05",
        "power": "0.8",
        "minimum_detectable_effect": "",
        "planned_sample_size": "",
        "sequential": "on",
        "cuped": "on",
        "pre_period_days": "14",
        "winsorize_percentile": "0.99",
        "reward_metric": "conversion",
        "arm_floor": "0.05",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
        "variants-0-index": "0",
        "variants-0-key": "control",
        "variants-0-name": "Paid shipping",
        "variants-0-weight": "0.5",
        "variants-0-config": '{"free_shipping": false}',
        "variants-1-index": "1",
        "variants-1-key": "free",
        "variants-1-name": "Free shipping",
        "variants-1-weight": "0.5",
        "variants-1-config": '{"free_shipping": true}',
    }
    data.update(overrides)
    return data


def test_manager_sees_only_their_merchants_experiments_with_a_results_link(manager_client, merchant, other_merchant):
    # given
    ours = experiment_with_variants(merchant=merchant, key="ours", name="Our test")
    experiment_with_variants(merchant=other_merchant, key="theirs", name="Their test")

    # when
    response = manager_client.get(EXPERIMENTS_URL)

    # then
    content = response.content.decode()
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    assert "Our test" in content and "Their test" not in content
    assert f"/experiments/{ours.key}/?merchant={merchant.slug}" in content


def test_manager_cannot_open_another_merchants_experiment(manager_client, other_merchant):
    # given
    theirs = experiment_with_variants(merchant=other_merchant)

    # when
    response = manager_client.get(f"{EXPERIMENTS_URL}{theirs.pk}/change/")

    # then
    assert response.status_code == 302 and response.url == "/admin/"


def test_adding_an_experiment_goes_through_the_create_service(manager_client, merchant, merchant_manager):
    # when
    response = manager_client.post(f"{EXPERIMENTS_URL}add/", _add_form())

    # then
    assert response.status_code == 302, response.context["errors"] if response.context else response
    experiment = Experiment.objects.get(key="free-shipping")
    assert experiment.merchant == merchant and experiment.status == ExperimentStatus.DRAFT
    assert experiment.created_by == merchant_manager
    assert list(experiment.variants.order_by("index").values_list("key", "weight", "merchant_id")) == [
        ("control", 0.5, merchant.pk),
        ("free", 0.5, merchant.pk),
    ]
    assert experiment.secondary_metrics == ["conversion"]
    entry = AuditLogEntry.objects.get(action="experiment.create")
    assert entry.target_id == str(experiment.pk) and entry.actor == merchant_manager


def test_weights_that_do_not_add_up_are_refused_on_the_form(manager_client):
    # when
    response = manager_client.post(f"{EXPERIMENTS_URL}add/", _add_form(**{"variants-1-weight": "0.7"}))

    # then
    assert response.status_code == 200
    assert "The weights must add up to 1" in response.content.decode()
    assert not Experiment.objects.exists()


def test_the_services_refusal_is_shown_next_to_its_field(manager_client, merchant):
    # given: the key is taken
    experiment_with_variants(merchant=merchant, key="free-shipping")

    # when
    response = manager_client.post(f"{EXPERIMENTS_URL}add/", _add_form())

    # then
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["key"] == ["The shop already has an experiment with this key."]
    assert Experiment.objects.count() == 1
    assert not AuditLogEntry.objects.filter(action="experiment.create").exists()


def test_a_running_experiments_variants_and_bucketing_are_read_only(manager_client, merchant):
    # given
    experiment = experiment_with_variants(merchant=merchant, status=ExperimentStatus.RUNNING)

    # when
    response = manager_client.get(f"{EXPERIMENTS_URL}{experiment.pk}/change/")

    # then
    content = response.content.decode()
    form = response.context["adminform"].form
    assert "name" in form.fields and "hypothesis" in form.fields
    assert "key" not in form.fields and "primary_metric" not in form.fields and "seed" not in form.fields
    assert 'name="variants-0-weight"' not in content


def test_a_drafts_variants_are_editable(manager_client, merchant):
    # given
    experiment = experiment_with_variants(merchant=merchant)

    # when
    response = manager_client.get(f"{EXPERIMENTS_URL}{experiment.pk}/change/")

    # then
    assert 'name="variants-0-weight"' in response.content.decode()


def test_start_and_stop_actions_call_the_lifecycle(manager_client, merchant, merchant_manager):
    # given
    draft = experiment_with_variants(merchant=merchant)

    # when
    manager_client.post(EXPERIMENTS_URL, {"action": "start", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    started = draft.status
    manager_client.post(EXPERIMENTS_URL, {"action": "stop", "_selected_action": [draft.pk]})
    draft.refresh_from_db()

    # then
    assert (started, draft.status) == (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED)
    assert set(AuditLogEntry.objects.filter(actor=merchant_manager).values_list("action", flat=True)) == {
        "experiment.start",
        "experiment.stop",
    }


def test_an_invalid_transition_is_a_message_not_an_error_page(manager_client, merchant):
    # given
    draft = experiment_with_variants(merchant=merchant)

    # when
    response = manager_client.post(EXPERIMENTS_URL, {"action": "stop", "_selected_action": [draft.pk]}, follow=True)

    # then
    assert response.status_code == 200
    assert "Only a running experiment can stop" in response.content.decode()


def test_roll_out_winner_rolls_out_the_latest_analysis_winner(manager_client, merchant):
    # given
    experiment = experiment_with_variants(merchant=merchant, status=ExperimentStatus.RUNNING)
    AnalysisSnapshotFactory(experiment=experiment)

    # when
    manager_client.post(EXPERIMENTS_URL, {"action": "roll_out_winner", "_selected_action": [experiment.pk]})

    # then
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.ROLLED_OUT
    assert experiment.rolled_out_variant.key == "variant-1"


def test_roll_out_winner_without_a_winner_changes_nothing(manager_client, merchant):
    # given
    experiment = experiment_with_variants(merchant=merchant, status=ExperimentStatus.RUNNING)
    AnalysisSnapshotFactory(
        experiment=experiment, analysis=experiment_analysis(experiment, verdict=Verdict.KEEP_RUNNING).as_dict()
    )

    # when
    response = manager_client.post(
        EXPERIMENTS_URL, {"action": "roll_out_winner", "_selected_action": [experiment.pk]}, follow=True
    )

    # then
    assert "names no winner" in response.content.decode()
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING


def test_actions_cannot_reach_another_merchants_experiment(manager_client, other_merchant):
    # given
    theirs = experiment_with_variants(merchant=other_merchant)

    # when
    manager_client.post(EXPERIMENTS_URL, {"action": "start", "_selected_action": [theirs.pk]})

    # then
    theirs.refresh_from_db()
    assert theirs.status == ExperimentStatus.DRAFT


@pytest.mark.parametrize("model", ["exposure", "allocationchange", "contextualdecision", "analysissnapshot"])
def test_service_written_rows_are_read_only(manager_client, model):
    # when
    response = manager_client.get(f"/admin/experiments/{model}/add/")

    # then
    assert response.status_code == 403


def test_exposures_are_listed_for_the_managers_merchant_only(manager_client, merchant, other_merchant):
    # given
    ExposureFactory(variant=experiment_with_variants(merchant=merchant).variants.first(), unit_id="our-shopper")
    ExposureFactory(variant=experiment_with_variants(merchant=other_merchant).variants.first(), unit_id="their-one")

    # when
    content = manager_client.get("/admin/experiments/exposure/").content.decode()

    # then
    assert "our-shopper" in content and "their-one" not in content


def test_one_settings_row_per_merchant(manager_client, merchant):
    # given
    ExperimentSettings.objects.create(merchant=merchant, holdout_share=0.05)

    # when
    response = manager_client.get("/admin/experiments/experimentsettings/add/")

    # then
    assert response.status_code == 403


def test_a_platform_admin_creates_an_experiment_for_the_chosen_merchant(platform_client, other_merchant):
    # when
    response = platform_client.post(f"{EXPERIMENTS_URL}add/", _add_form(merchant=str(other_merchant.pk)))

    # then
    assert response.status_code == 302
    experiment = Experiment.objects.get(key="free-shipping")
    assert experiment.merchant == other_merchant
    assert set(Variant.objects.filter(experiment=experiment).values_list("merchant_id", flat=True)) == {
        other_merchant.pk
    }
