import math
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from experiments.models import AnalysisSnapshot, ExperimentStatus
from experiments.results import Verdict
from experiments.services.lifecycle import experiment_start
from revopt.tenancy.models import AuditLogEntry
from tests.factories.experiments import (
    AnalysisSnapshotFactory,
    ExposureFactory,
    experiment_analysis,
    experiment_with_variants,
    metric_result,
)

pytestmark = pytest.mark.django_db

LIST = reverse("experiments:list")
PLAN = reverse("experiments:plan")


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _running(merchant, **fields):
    fields.setdefault("status", ExperimentStatus.RUNNING)
    fields.setdefault("key", "free-shipping")
    fields.setdefault("name", "Free shipping")
    return experiment_with_variants(merchant=merchant, **fields)


def _results(experiment) -> str:
    return reverse("experiments:results", args=[experiment.key])


def test_anonymous_visitor_is_sent_to_the_login_page(merchant):
    # given
    experiment = _running(merchant)

    # when
    responses = [Client().get(LIST), Client().get(_results(experiment)), Client().post(_results(experiment) + "stop")]

    # then
    assert all(response.status_code == 302 for response in responses)
    assert all(response["Location"].startswith(reverse("login")) for response in responses)


def test_manager_sees_their_experiments_with_progress_and_verdict(merchant, other_merchant, merchant_manager):
    # given
    experiment = _running(merchant, planned_sample_size=10, hypothesis="Free shipping over $50 lifts revenue.")
    for _ in range(5):
        ExposureFactory(variant=experiment.variants.first())
    AnalysisSnapshotFactory(experiment=experiment)
    _running(other_merchant, key="their-secret", name="Their secret test")

    # when
    response = _login(merchant_manager).get(LIST)

    # then
    html = response.content.decode()
    assert response.status_code == 200
    row = re.search(r'<tr data-experiment="free-shipping">.*?</tr>', html, re.S).group(0)
    assert "Free shipping" in row and "Variant 1 wins +4.2%" in row
    assert 'data-units="5"' in row and "5 of 20" in row and 'aria-valuenow="25"' in row
    assert "Revenue per active user" in row
    assert "their-secret" not in html and "Their secret test" not in html


def test_the_nav_links_the_experiments_screen_for_managers_only(merchant_manager, support_agent):
    # when
    manager_home = _login(merchant_manager).get(reverse("dashboard:home")).content.decode()
    agent_home = _login(support_agent).get(reverse("dashboard:home")).content.decode()

    # then
    assert f'href="{LIST}"' in manager_home
    assert f'href="{LIST}"' not in agent_home


def test_results_page_shows_verdict_forest_plot_tables_guardrails_and_history(merchant, merchant_manager):
    # given
    experiment = _running(merchant, planned_sample_size=1000)
    experiment_stop_time = timezone.now()
    AnalysisSnapshotFactory(experiment=experiment, computed_at=experiment_stop_time)
    AuditLogEntry.objects.create(
        merchant=merchant,
        actor=merchant_manager,
        action="experiment.start",
        target_type="Experiment",
        target_id=str(experiment.pk),
    )

    # when
    response = _login(merchant_manager).get(_results(experiment))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Free shipping over" not in html  # no hypothesis given
    assert 'data-verdict="winner"' in html and "Variant 1 wins +4.2%" in html
    assert "raises revenue per active user by 4.2%" in html
    assert 'id="forest-plot"' in html
    assert html.count('class="interval interval-') == 2
    assert 'data-row="revenue_per_user:variant-1"' in html and 'data-tone="positive"' in html
    assert 'data-threshold="0.1"' in html  # the refund-rate guardrail's limit
    table = re.search(r'data-table="metric-revenue_per_user".*?</table>', html, re.S).group(0)
    for figure, text in (
        ("lift", "+4.2%"),
        ("p", "0.004"),
        ("adjusted-p", "0.008"),
        ("sequential-p", "0.012"),
        ("cuped", "31%"),
        ("p-beat", "99.1%"),
    ):
        assert re.search(rf'data-figure="{figure}">{re.escape(text)}<', table), figure
    assert 'data-guardrail="refund_rate:variant-1"' in html and 'data-status="ok"' in html
    assert 'id="lift-over-time-variant-1"' in html
    assert 'data-action="experiment.start"' in html
    assert 'data-action="roll-out-winner"' in html and "Roll out Variant 1" in html
    assert 'data-section="srm"' not in html


def test_a_sample_ratio_mismatch_is_shown_with_the_observed_and_expected_split(merchant, merchant_manager):
    # given
    experiment = _running(merchant)
    analysis = experiment_analysis(
        experiment,
        verdict=Verdict.SAMPLE_RATIO_MISMATCH,
        verdict_reason="The split is broken: no verdict until it is fixed.",
        winner=None,
        srm_flagged=True,
        srm_p_value=0.00001,
    )
    data = analysis.as_dict()
    data["variants"][0]["units"], data["variants"][1]["units"] = 101_000, 99_000
    data["units_total"] = 200_000
    AnalysisSnapshotFactory(experiment=experiment, analysis=data)

    # when
    html = _login(merchant_manager).get(_results(experiment)).content.decode()

    # then
    srm = re.search(r'data-section="srm".*?</section>', html, re.S).group(0)
    assert "Sample ratio mismatch" in html and "p = &lt; 0.001" in srm
    assert re.search(r'data-figure="observed">50.50%<', srm) and re.search(r'data-figure="expected">50.00%<', srm)
    assert 'data-action="roll-out-winner"' not in html


def test_a_draft_offers_start_and_the_planner_but_no_refresh(merchant, merchant_manager):
    # given
    experiment = experiment_with_variants(merchant=merchant, key="draft-one", name="Draft one")

    # when
    html = _login(merchant_manager).get(_results(experiment)).content.decode()

    # then
    assert 'data-action="start"' in html and 'data-action="refresh"' not in html
    assert f"{PLAN}?experiment=draft-one" in html
    assert 'data-section="roll-out"' not in html


def test_a_bandit_shows_its_allocation_history(merchant, merchant_manager):
    # given
    experiment = experiment_with_variants(merchant=merchant, kind="bandit")
    experiment_start(experiment=experiment, actor=merchant_manager)

    # when
    html = _login(merchant_manager).get(_results(experiment)).content.decode()

    # then
    assert 'id="allocation-history"' in html
    assert 'data-allocation="start"' in html


def test_another_merchants_manager_gets_404_and_cannot_roll_out(merchant, other_merchant_manager):
    # given
    experiment = _running(merchant)
    client = _login(other_merchant_manager)

    # when
    page = client.get(_results(experiment))
    roll_out = client.post(reverse("experiments:roll_out", args=[experiment.key]), {"variant": "variant-1"})
    stop = client.post(reverse("experiments:stop", args=[experiment.key]))

    # then
    assert (page.status_code, roll_out.status_code, stop.status_code) == (404, 404, 404)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING
    assert not AuditLogEntry.objects.filter(action="experiment.roll_out").exists()


def test_support_agent_is_refused(merchant, support_agent):
    # given
    experiment = _running(merchant)
    client = _login(support_agent)

    # when
    responses = [
        client.get(LIST),
        client.get(_results(experiment)),
        client.get(PLAN),
        client.post(reverse("experiments:roll_out", args=[experiment.key]), {"variant": "variant-1"}),
    ]

    # then
    assert [response.status_code for response in responses] == [403, 403, 403, 403]
    assert "for the shop's managers" in responses[0].content.decode()
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING


def test_roll_out_asks_for_confirmation_then_rolls_out_and_is_audited(merchant, merchant_manager):
    # given
    experiment = _running(merchant)
    AnalysisSnapshotFactory(experiment=experiment)
    client = _login(merchant_manager)
    url = reverse("experiments:roll_out", args=[experiment.key])

    # when: the button's link
    confirm = client.get(url, {"variant": "variant-1"})

    # then: nothing changed yet
    assert confirm.status_code == 200
    assert "Roll out Variant 1 to every shopper?" in confirm.content.decode()
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING

    # when: confirmed
    response = client.post(url, {"variant": "variant-1"}, follow=True)

    # then
    assert response.redirect_chain == [(_results(experiment), 302)]
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.ROLLED_OUT
    assert experiment.rolled_out_variant.key == "variant-1"
    entry = AuditLogEntry.objects.get(action="experiment.roll_out")
    assert (entry.actor, entry.target_id, entry.detail["variant"]) == (
        merchant_manager,
        str(experiment.pk),
        "variant-1",
    )
    html = response.content.decode()
    assert "Variant 1 is rolled out" in html
    assert 'data-status="rolled_out"' in html and 'data-section="roll-out"' not in html


def test_rolling_out_a_draft_is_refused_with_a_message(merchant, merchant_manager):
    # given
    experiment = experiment_with_variants(merchant=merchant, key="draft-one")

    # when
    response = _login(merchant_manager).post(
        reverse("experiments:roll_out", args=[experiment.key]), {"variant": "variant-1"}, follow=True
    )

    # then
    assert response.status_code == 200
    assert 'data-message="error"' in response.content.decode()
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT


def test_rolling_out_an_unknown_variant_changes_nothing(merchant, merchant_manager):
    # given
    experiment = _running(merchant)

    # when
    response = _login(merchant_manager).post(
        reverse("experiments:roll_out", args=[experiment.key]), {"variant": "nope"}, follow=True
    )

    # then
    assert "Choose the variant to roll out." in response.content.decode()
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING


def test_posts_need_a_csrf_token(merchant, merchant_manager):
    # given
    experiment = _running(merchant)
    client = Client(enforce_csrf_checks=True)
    client.force_login(merchant_manager)

    # when
    response = client.post(reverse("experiments:stop", args=[experiment.key]))

    # then
    assert response.status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING


def test_start_and_stop_go_through_the_lifecycle(merchant, merchant_manager):
    # given
    experiment = experiment_with_variants(merchant=merchant, key="draft-one")
    client = _login(merchant_manager)

    # when
    client.post(reverse("experiments:start", args=[experiment.key]))
    experiment.refresh_from_db()
    started = experiment.status
    client.post(reverse("experiments:stop", args=[experiment.key]))
    experiment.refresh_from_db()

    # then
    assert (started, experiment.status) == (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED)
    assert list(
        AuditLogEntry.objects.filter(target_type="Experiment", target_id=str(experiment.pk))
        .order_by("created_at")
        .values_list("action", flat=True)
    ) == ["experiment.start", "experiment.stop"]


def test_the_pages_only_read(merchant, merchant_manager):
    # given
    experiment = _running(merchant)

    # when
    response = _login(merchant_manager).get(reverse("experiments:stop", args=[experiment.key]))

    # then
    assert response.status_code == 405


def test_refresh_runs_the_analysis_and_stores_a_snapshot(merchant, merchant_manager):
    # given
    experiment = _running(merchant, started_at=timezone.now() - timedelta(days=3))
    for variant in experiment.variants.all():
        for _ in range(3):
            ExposureFactory(variant=variant, exposed_at=timezone.now() - timedelta(days=2))

    # when
    response = _login(merchant_manager).post(reverse("experiments:refresh", args=[experiment.key]), follow=True)

    # then
    snapshot = AnalysisSnapshot.objects.get(experiment=experiment)
    assert snapshot.analysis["verdict"] == Verdict.NOT_ENOUGH_DATA
    html = response.content.decode()
    assert "Analysis refreshed." in html and 'data-verdict="not_enough_data"' in html


def test_a_platform_admin_picks_the_merchant_and_keeps_it_through_a_post(merchant, platform_admin):
    # given
    experiment = _running(merchant)
    client = _login(platform_admin)

    # when
    chooser = client.get(LIST)
    page = client.get(_results(experiment), {"merchant": merchant.slug})
    stop = client.post(reverse("experiments:stop", args=[experiment.key]) + f"?merchant={merchant.slug}")

    # then
    assert "Choose a merchant" in chooser.content.decode()
    assert page.status_code == 200
    assert stop["Location"] == _results(experiment) + f"?merchant={merchant.slug}"
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.STOPPED


# --- the planner ------------------------------------------------------------------------------


def test_the_planner_sizes_a_conversion_test(merchant_manager):
    # when: 5% conversion, +10% relative, 5% significance, 80% power, 1,000 shoppers a day
    response = _login(merchant_manager).get(
        PLAN,
        {
            "metric_kind": "proportion",
            "solve_for": "sample_size",
            "baseline_rate": "5",
            "mde": "10",
            "alpha": "5",
            "power": "80",
            "variants": "2",
            "daily_traffic": "1000",
        },
    )

    # then: statsmodels' power_proportions_2indep reaches 80% at 31,233.4 per arm for 0.05 -> 0.055
    html = response.content.decode()
    units = int(re.search(r'data-figure="units-per-variant">([\d,]+)<', html).group(1).replace(",", ""))
    assert units == 31_234
    days = int(re.search(r'data-figure="days">([\d,]+)<', html).group(1))
    assert days == -(-units * 2 // 1000)


def test_the_planner_gives_the_detectable_effect_of_a_sample(merchant_manager):
    # when: revenue per shopper 2.0 with sd 10, 50,000 per variant
    response = _login(merchant_manager).get(
        PLAN,
        {
            "metric_kind": "mean",
            "solve_for": "mde",
            "baseline_mean": "2",
            "baseline_sd": "10",
            "units_per_variant": "50000",
            "alpha": "5",
            "power": "80",
            "variants": "2",
        },
    )

    # then: (1.96 + 0.8416) × sqrt(2 / 50,000) × 10 / 2 = 8.86%
    html = response.content.decode()
    assert re.search(r'data-figure="mde">\+8.86%<', html)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"baseline_rate": "", "mde": "5"}, "baseline_rate", "Required for this calculation."),
        ({"baseline_rate": "150", "mde": "5"}, "baseline_rate", "between 0% and 100%"),
        ({"baseline_rate": "60", "mde": "80"}, "mde", "it would pass 100%"),
        ({"baseline_rate": "5", "mde": "abc"}, "mde", "Enter a number."),
        ({"baseline_rate": "5", "mde": "0.0000001"}, "mde", "Too small to detect"),
        ({"baseline_rate": "5", "mde": "5", "alpha": "50"}, "alpha", "less than or equal to 20"),
        ({"baseline_rate": "5", "mde": "5", "variants": "1"}, "variants", "greater than or equal to 2"),
        ({"baseline_rate": "5", "mde": "5", "metric_kind": "median"}, "metric_kind", "Select a valid choice"),
        ({"baseline_rate": "5", "mde": "nan"}, "mde", "Enter a"),
    ],
)
def test_bad_planner_input_is_shown_next_to_its_field(merchant_manager, params, field, message):
    # given
    query = {"metric_kind": "proportion", "solve_for": "sample_size", "alpha": "5", "power": "80", "variants": "2"}
    query.update(params)

    # when
    response = _login(merchant_manager).get(PLAN, query)

    # then
    assert response.status_code == 200
    html = response.content.decode()
    block = re.search(rf'data-field="{field}".*?</(div|fieldset)>', html, re.S).group(0)
    assert 'class="field-error"' in block and message in block, block
    assert 'data-figure="units-per-variant"' not in html


def test_the_planner_saves_a_plan_on_a_draft_and_audits_it(merchant, merchant_manager):
    # given
    experiment = experiment_with_variants(merchant=merchant, key="draft-one", primary_metric="conversion")
    client = _login(merchant_manager)
    inputs = {
        "experiment": "draft-one",
        "metric_kind": "proportion",
        "solve_for": "sample_size",
        "baseline_rate": "5",
        "mde": "10",
        "alpha": "5",
        "power": "80",
        "variants": "2",
    }

    # when: the planner opened from the draft prefills it and offers to save
    prefilled = client.get(PLAN, {"experiment": "draft-one"}).content.decode()
    computed = client.get(PLAN, inputs).content.decode()
    response = client.post(PLAN, inputs)

    # then
    assert re.search(r'<input[^>]*value="proportion"[^>]*checked', prefilled)
    assert re.search(r'<input[^>]*name="alpha"[^>]*value="5.0"', prefilled)
    assert 'data-action="save-plan"' in computed
    assert response.status_code == 302 and response["Location"] == _results(experiment)
    experiment.refresh_from_db()
    assert experiment.planned_sample_size == pytest.approx(31_234, abs=5)
    assert experiment.minimum_detectable_effect == pytest.approx(0.10)
    assert (experiment.alpha, experiment.power) == (pytest.approx(0.05), pytest.approx(0.8))
    entry = AuditLogEntry.objects.get(action="experiment.plan_save")
    assert entry.target_id == str(experiment.pk) and entry.actor == merchant_manager


def test_the_plan_of_a_running_experiment_cannot_be_saved(merchant, merchant_manager):
    # given
    experiment = _running(merchant, planned_sample_size=500)
    inputs = {
        "experiment": experiment.key,
        "metric_kind": "proportion",
        "solve_for": "sample_size",
        "baseline_rate": "5",
        "mde": "10",
        "alpha": "5",
        "power": "80",
        "variants": "2",
    }
    client = _login(merchant_manager)

    # when
    page = client.get(PLAN, inputs).content.decode()
    response = client.post(PLAN, inputs, follow=True)

    # then
    assert 'data-action="save-plan"' not in page
    assert 'data-message="error"' in response.content.decode()
    experiment.refresh_from_db()
    assert experiment.planned_sample_size == 500


def test_the_planner_of_another_merchants_draft_is_not_found(merchant, other_merchant_manager):
    # given
    experiment_with_variants(merchant=merchant, key="draft-one")

    # when
    response = _login(other_merchant_manager).post(
        PLAN, {"experiment": "draft-one", "metric_kind": "proportion", "solve_for": "sample_size"}
    )

    # then
    assert response.status_code == 404


def test_an_invalid_plan_post_saves_nothing(merchant, merchant_manager):
    # given
    experiment = experiment_with_variants(merchant=merchant, key="draft-one")

    # when
    response = _login(merchant_manager).post(
        PLAN, {"experiment": "draft-one", "metric_kind": "proportion", "solve_for": "sample_size", "mde": "-3"}
    )

    # then
    assert response.status_code == 400
    experiment.refresh_from_db()
    assert experiment.planned_sample_size is None


def test_a_guardrail_whose_control_is_zero_is_tabled_but_not_plotted(merchant, merchant_manager):
    # given: no refunds in the control yet, so the refund rate has no relative lift (±inf after storage)
    experiment = _running(merchant)
    unbounded = math.inf
    refunds = metric_result(
        metric="refund_rate",
        role="guardrail",
        control_value=0.0,
        treatment_value=0.3,
        absolute_lift=0.3,
        relative_lift=unbounded,
        relative_low=-unbounded,
        relative_high=unbounded,
        sequential_low=-unbounded,
        sequential_high=unbounded,
        guardrail_threshold=0.1,
        guardrail_status="at_risk",
    )
    analysis = experiment_analysis(experiment, metrics=[metric_result(), refunds])
    AnalysisSnapshotFactory(experiment=experiment, analysis=analysis.as_dict())

    # when
    response = _login(merchant_manager).get(_results(experiment))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-row="revenue_per_user:variant-1"' in html
    assert 'data-row="refund_rate:variant-1"' not in html
    table = re.search(r'data-table="metric-refund_rate".*?</table>', html, re.S).group(0)
    assert "+∞" in table
