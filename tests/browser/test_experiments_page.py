"""A merchant manager reads an experiment's results and rolls its winner out, in a real browser.

Drives Debian's system Chromium through Playwright, like test_merchant_home.py. Screenshots land in
var/screenshots/. Rows are made in fixtures before the browser starts, and the tests check what was
written through the pages only: ORM calls from the test body while Playwright's loop runs open a
connection that outlives the test and blocks PostgreSQL's test-database teardown.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_start
from revopt.tenancy.models import Role
from revopt.tenancy.services import merchant_create, staff_member_create
from tests.browser.chromium import BROWSER_TEST, PASSWORD, SCREENSHOTS, logged_in_page
from tests.factories.experiments import AnalysisSnapshotFactory, experiment_analysis, metric_result

pytestmark = BROWSER_TEST


@pytest.fixture
def experiment(transactional_db):
    """A running free-shipping test whose latest analysis found a winner. Made before the browser
    starts (see test_merchant_home.py for why)."""
    merchant = merchant_create(name="Demo Outdoor Co.", slug="demo-outdoor")
    manager = staff_member_create(username="casey", password=PASSWORD, role=Role.MERCHANT_MANAGER, merchant=merchant)
    experiment = experiment_create(
        merchant=merchant,
        key="free-shipping",
        name="Free shipping over $50",
        hypothesis="Free shipping over $50 raises revenue per shopper without more returns.",
        variants=[
            VariantSpec(key="control", name="Paid shipping", weight=0.5, config={"free_shipping": False}),
            VariantSpec(key="free", name="Free shipping", weight=0.5, config={"free_shipping": True}),
        ],
        secondary_metrics=["conversion"],
        planned_sample_size=6000,
        actor=manager,
    )
    experiment_start(experiment=experiment, actor=manager, now=timezone.now() - timedelta(days=9))
    experiment.refresh_from_db()
    daily = [
        {"day": (timezone.now() - timedelta(days=9 - day)).date().isoformat(), "variant": "free",
         "units": 600 * day, "relative_lift": 0.042 + 0.04 / day, "low": 0.042 - 0.2 / day, "high": 0.042 + 0.25 / day}
        for day in range(1, 10)
    ]  # fmt: skip
    analysis = experiment_analysis(
        experiment,
        verdict_reason="Free shipping raises revenue per active user by 4.2% (95% CI +1.2% to +7.2%).",
        winner="free",
        metrics=[
            metric_result(variant="free", relative_lift=0.042),
            metric_result(
                metric="conversion",
                role="secondary",
                variant="free",
                control_value=0.031,
                relative_lift=0.021,
                half_width=0.035,
                p_value=0.21,
                significant=False,
            ),
            metric_result(
                metric="refund_rate",
                role="guardrail",
                variant="free",
                control_value=0.05,
                relative_lift=0.03,
                half_width=0.06,
                p_value=0.4,
                significant=False,
                guardrail_threshold=0.1,
                guardrail_status="ok",
            ),
        ],
    ).as_dict()
    analysis["daily"] = daily
    AnalysisSnapshotFactory(experiment=experiment, analysis=analysis)
    return experiment


@pytest.mark.django_db(transaction=True)
def test_manager_reads_the_forest_plot_and_rolls_out_the_winner(live_server, experiment, browser):
    # given
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = logged_in_page(browser, live_server.url)

    # when: the manager follows the nav link to the list
    page.click("nav.nav >> text=Experiments")
    page.wait_for_url(f"{live_server.url}/experiments/")

    # then: the list shows the verdict badge
    row = page.locator('tr[data-experiment="free-shipping"]')
    assert row.locator("[data-verdict]").inner_text() == "Free shipping wins +4.2%"
    page.screenshot(path=str(SCREENSHOTS / "experiments_list.png"), full_page=True)

    # when: the manager opens the results
    row.locator("a").first.click()
    page.wait_for_url(f"{live_server.url}/experiments/free-shipping/")

    # then: the verdict, and a forest plot with one interval per metric, the significant one coloured
    banner = page.locator('[data-section="verdict"]')
    assert "raises revenue per active user by 4.2%" in banner.inner_text()
    plot = page.locator("svg#forest-plot")
    plot.wait_for(state="visible")
    intervals = plot.locator("g.interval")
    assert intervals.count() == 3
    assert plot.locator('g.interval[data-tone="positive"]').count() == 1
    assert plot.locator("line.chart-threshold").count() == 1
    assert plot.locator("line.chart-zero").count() == 1
    primary = plot.locator('g.interval[data-row="revenue_per_user:free"] circle.interval-point')
    zero_x = plot.locator("line.chart-zero").bounding_box()["x"]
    assert primary.bounding_box()["x"] > zero_x  # a positive lift sits right of zero
    assert page.locator("svg#lift-over-time-free circle.point").count() == 9
    page.screenshot(path=str(SCREENSHOTS / "experiment_results.png"), full_page=True)

    # when: the manager rolls out the winner and confirms
    page.click('[data-action="roll-out-winner"]')
    page.wait_for_selector('[data-section="confirm-roll-out"]')
    assert "Roll out Free shipping to every shopper?" in page.inner_text("h1")
    page.click('[data-action="confirm-roll-out"]')
    page.wait_for_url(f"{live_server.url}/experiments/free-shipping/")

    # then: the experiment is rolled out, said so, and audited
    assert "Free shipping is rolled out" in page.locator('[data-message="success"]').inner_text()
    assert page.locator('.experiment-subtitle [data-status="rolled_out"]').inner_text() == "Rolled out: Free shipping"
    assert page.locator('[data-table="audit"] tr[data-action="experiment.roll_out"]').count() == 1
    assert page.locator('[data-table="allocation"] tr[data-allocation="rollout"]').count() == 1

    # and the narrow layout still holds together
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.locator("svg#forest-plot").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "experiment_results_mobile.png"), full_page=True)
    page.locator('[data-section="forest"]').screenshot(path=str(SCREENSHOTS / "experiment_forest_mobile.png"))


@pytest.fixture
def draft(transactional_db):
    """A draft to plan, made before the browser starts."""
    merchant = merchant_create(name="Demo Outdoor Co.", slug="demo-outdoor")
    staff_member_create(username="casey", password=PASSWORD, role=Role.MERCHANT_MANAGER, merchant=merchant)
    return experiment_create(
        merchant=merchant,
        key="bundle-offer",
        name="Bundle offer",
        primary_metric="conversion",
        variants=[
            VariantSpec(key="control", name="No bundle", weight=0.5),
            VariantSpec(key="bundle", name="Bundle", weight=0.5),
        ],
    )


@pytest.mark.django_db(transaction=True)
def test_manager_plans_a_draft_and_sees_bad_input_next_to_its_field(live_server, draft, browser):
    # given
    page = logged_in_page(browser, live_server.url)

    # when: the planner opens from the draft, with a rate above 100%
    page.goto(f"{live_server.url}/experiments/plan/?experiment=bundle-offer")
    assert not page.locator('[data-field="baseline_mean"]').is_visible()  # a rate needs no mean
    page.fill("#id_baseline_rate", "140")
    page.fill("#id_mde", "10")
    page.click('[data-action="calculate"]')

    # then: the error sits next to the rate
    error = page.locator('[data-field="baseline_rate"] .field-error')
    error.wait_for(state="visible")
    assert "between 0% and 100%" in error.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "experiment_plan_error.png"), full_page=True)

    # when: corrected, calculated and saved
    page.fill("#id_baseline_rate", "5")
    page.fill("#id_daily_traffic", "2000")
    page.click('[data-action="calculate"]')
    assert page.locator('[data-figure="units-per-variant"]').inner_text() == "31,234"
    assert page.locator('[data-figure="days"]').inner_text() == "32"
    page.screenshot(path=str(SCREENSHOTS / "experiment_plan.png"), full_page=True)
    page.click('[data-action="save-plan"]')
    page.wait_for_url(f"{live_server.url}/experiments/bundle-offer/")

    # then
    assert "Plan saved on Bundle offer" in page.locator('[data-message="success"]').inner_text()
    planned = page.locator('[data-section="progress"] .card-header p.muted').inner_text()
    assert planned == "Planned: 31,234 shoppers per variant, to detect +10.0% at 80% power."
