from datetime import timedelta

import pytest
from django.utils import timezone

from experiments.models import AllocationChange, AllocationSource, ExperimentStatus
from experiments.results import Verdict
from experiments.selectors.screens import (
    analysis_from_snapshot,
    days_to_plan,
    experiment_get,
    experiment_list_rows,
    experiment_results,
    forest_rows,
    verdict_badge,
)
from revopt.tenancy.services import audit_log_write
from tests.factories.experiments import (
    AnalysisSnapshotFactory,
    ExposureFactory,
    experiment_analysis,
    experiment_with_variants,
    metric_result,
)

pytestmark = pytest.mark.django_db


def _running(merchant, **fields):
    fields.setdefault("status", ExperimentStatus.RUNNING)
    return experiment_with_variants(merchant=merchant, **fields)


def test_a_winner_badge_names_the_variant_and_its_primary_lift(merchant):
    # given
    experiment = _running(merchant)
    analysis = experiment_analysis(experiment)

    # when
    badge = verdict_badge(analysis=analysis, variant_names={"control": "Control", "variant-1": "Free shipping"})

    # then
    assert (badge.label, badge.tone, badge.verdict) == ("Free shipping wins +4.2%", "success", Verdict.WINNER)


@pytest.mark.parametrize(
    ("verdict", "label", "tone"),
    [
        (Verdict.KEEP_RUNNING, "Keep running", "info"),
        (Verdict.SAMPLE_RATIO_MISMATCH, "Sample ratio mismatch", "danger"),
        (Verdict.GUARDRAIL_BREACHED, "Guardrail breached", "danger"),
        (Verdict.LOSER, "Control wins", "warning"),
        (Verdict.NO_DIFFERENCE, "No difference", "neutral"),
        (Verdict.NOT_ENOUGH_DATA, "Not enough data", "neutral"),
    ],
)
def test_other_verdicts_read_as_short_badges(merchant, verdict, label, tone):
    # given
    analysis = experiment_analysis(_running(merchant), verdict=verdict, winner=None)

    # when
    badge = verdict_badge(analysis=analysis, variant_names={})

    # then
    assert (badge.label, badge.tone) == (label, tone)


def test_no_analysis_yet_is_said_plainly():
    # when
    badge = verdict_badge(analysis=None, variant_names={})

    # then
    assert (badge.label, badge.verdict) == ("Not analysed yet", None)


def test_a_snapshot_of_an_unreadable_shape_reads_as_no_analysis(merchant):
    # given
    experiment = _running(merchant)
    snapshot = AnalysisSnapshotFactory(experiment=experiment, analysis={"experiment_key": experiment.key})

    # when / then
    assert analysis_from_snapshot(snapshot) is None


@pytest.mark.parametrize(
    ("units", "weights", "rate", "expected"),
    [
        ({"a": 100, "b": 100}, {"a": 0.5, "b": 0.5}, 100.0, 18.0),  # 900 missing each, 50 a day each
        ({"a": 1000, "b": 400}, {"a": 0.5, "b": 0.5}, 100.0, 12.0),  # only b is short: 600 at 50 a day
        ({"a": 100, "b": 100}, {"a": 0.9, "b": 0.1}, 100.0, 90.0),  # the 10% arm decides
        ({"a": 1000, "b": 1000}, {"a": 0.5, "b": 0.5}, 0.0, 0.0),  # reached: nothing to wait for
    ],
)
def test_days_to_plan_is_set_by_the_slowest_variant(units, weights, rate, expected):
    # when
    days = days_to_plan(planned_per_variant=1000, units_by_variant=units, weights=weights, daily_rate=rate)

    # then
    assert days == pytest.approx(expected)


def test_days_to_plan_is_unknown_when_a_short_variant_gets_no_traffic():
    # when
    days = days_to_plan(
        planned_per_variant=1000, units_by_variant={"a": 10, "b": 10}, weights={"a": 1.0, "b": 0.0}, daily_rate=50
    )

    # then
    assert days is None


def test_the_list_shows_units_plan_and_latest_verdict_in_few_queries(
    merchant, other_merchant, django_assert_max_num_queries
):
    # given
    winner = _running(merchant, key="free-shipping", name="Free shipping", planned_sample_size=10)
    for _ in range(3):
        ExposureFactory(variant=winner.variants.get(index=0))
    ExposureFactory(variant=winner.variants.get(index=1))
    AnalysisSnapshotFactory(
        experiment=winner,
        computed_at=timezone.now() - timedelta(days=1),
        analysis=experiment_analysis(winner, verdict=Verdict.KEEP_RUNNING, winner=None).as_dict(),
    )
    AnalysisSnapshotFactory(experiment=winner)  # the latest: a winner
    for index in range(3):
        _running(merchant, key=f"other-{index}")
    _running(other_merchant, key="theirs")

    # when
    with django_assert_max_num_queries(3):
        rows = experiment_list_rows(merchant=merchant)

    # then
    assert len(rows) == 4
    row = next(row for row in rows if row.experiment.key == "free-shipping")
    assert (row.units, row.planned_units, row.progress) == (4, 20, 0.2)
    assert row.badge.label == "Variant 1 wins +4.2%"
    assert row.primary_metric_label == "Revenue per active user"
    assert all(other.badge.verdict is None for other in rows if other is not row)


def test_another_merchants_experiment_is_not_found(merchant, other_merchant):
    # given
    theirs = _running(other_merchant, key="secret")

    # when / then
    with pytest.raises(type(theirs).DoesNotExist):
        experiment_get(merchant=merchant, key="secret")


def test_results_count_units_per_variant_and_the_days_to_the_plan(merchant):
    # given: 40 units in the last 4 days (10 a day), half each; 100 planned per variant
    now = timezone.now()
    experiment = _running(merchant, planned_sample_size=100, started_at=now - timedelta(days=4))
    control, treatment = experiment.variants.order_by("index")
    for index in range(40):
        ExposureFactory(variant=control if index % 2 else treatment, exposed_at=now - timedelta(hours=2 * index))

    # when
    screen = experiment_results(merchant=merchant, experiment=experiment_get(merchant=merchant, key=experiment.key))

    # then
    progress = screen.progress
    assert [(row.variant.key, row.units) for row in progress.variants] == [("control", 20), ("variant-1", 20)]
    assert progress.units_total == 40 and progress.planned_total == 200
    assert progress.daily_rate == pytest.approx(10.0, rel=0.01)
    assert progress.days_remaining == pytest.approx(16.0, rel=0.01)  # 80 more per variant at 5 a day each
    assert not progress.reached


def test_the_results_page_reads_in_a_fixed_number_of_queries(merchant, django_assert_num_queries):
    # given
    experiment = _running(merchant, kind="bandit")
    for variant in experiment.variants.all():
        ExposureFactory(variant=variant)
    AnalysisSnapshotFactory(experiment=experiment)

    # when: experiment and variants, then snapshot, allocation log, audit trail, unit counts
    with django_assert_num_queries(6):
        screen = experiment_results(merchant=merchant, experiment=experiment_get(merchant=merchant, key=experiment.key))

    # then
    assert screen.progress.units_total == 2 and screen.analysis is not None


def test_a_stopped_experiment_has_no_days_to_go(merchant):
    # given
    experiment = _running(merchant, status=ExperimentStatus.STOPPED, planned_sample_size=100)
    ExposureFactory(variant=experiment.variants.first())

    # when
    screen = experiment_results(merchant=merchant, experiment=experiment)

    # then
    assert screen.progress.daily_rate is None and screen.progress.days_remaining is None


def test_results_carry_the_allocation_history_and_only_this_experiments_audit_trail(merchant, merchant_manager):
    # given
    experiment = _running(merchant, kind="bandit")
    other = _running(merchant)
    now = timezone.now()
    for hours, weights in ((48, {"control": 0.5, "variant-1": 0.5}), (24, {"control": 0.3, "variant-1": 0.7})):
        AllocationChange.objects.create(
            merchant=merchant,
            experiment=experiment,
            effective_at=now - timedelta(hours=hours),
            source=AllocationSource.BANDIT,
            weights=weights,
        )
    audit_log_write(merchant=merchant, actor=merchant_manager, action="experiment.start", target=experiment)
    audit_log_write(merchant=merchant, actor=merchant_manager, action="experiment.stop", target=other)

    # when
    screen = experiment_results(merchant=merchant, experiment=experiment)

    # then
    assert [change.weights["variant-1"] for change in screen.allocation_changes] == [0.5, 0.7]
    assert [entry.action for entry in screen.audit_entries] == ["experiment.start"]
    assert screen.analysis is None and screen.badge.label == "Not analysed yet"


def test_the_winner_comes_first_among_the_variants_to_roll_out(merchant):
    # given
    experiment = _running(merchant, weights=(0.34, 0.33, 0.33))
    variants = list(experiment.variants.order_by("index"))
    AnalysisSnapshotFactory(
        experiment=experiment, analysis=experiment_analysis(experiment, winner="variant-2").as_dict()
    )

    # when
    screen = experiment_results(merchant=merchant, experiment=experiment)

    # then
    assert screen.winner == variants[2]
    assert [variant.key for variant in screen.roll_out_candidates] == ["variant-2", "control", "variant-1"]


def test_nothing_can_be_rolled_out_of_a_draft(merchant):
    # given
    experiment = experiment_with_variants(merchant=merchant)

    # when
    screen = experiment_results(merchant=merchant, experiment=experiment)

    # then
    assert screen.roll_out_candidates == []


def test_forest_rows_colour_significance_by_direction_and_draw_guardrail_limits(merchant):
    # given: a significant revenue win, a significant rise of cart abandonment (bad), a flat guardrail
    # and a guardrail at risk
    experiment = _running(merchant, sequential=False)
    analysis = experiment_analysis(
        experiment,
        metrics=[
            metric_result(metric="revenue_per_user", relative_lift=0.05),
            metric_result(metric="cart_abandonment", role="secondary", relative_lift=0.08),
            metric_result(
                metric="refund_rate",
                role="guardrail",
                significant=False,
                guardrail_threshold=0.1,
                guardrail_status="ok",
            ),
            metric_result(
                metric="conversion",
                role="guardrail",
                relative_lift=-0.12,
                significant=False,
                guardrail_threshold=0.1,
                guardrail_status="at_risk",
            ),
        ],
    )

    # when
    rows = forest_rows(analysis, variant_names={"variant-1": "B"}, sequential=False)

    # then
    assert [(row.key, row.tone, row.threshold) for row in rows] == [
        ("revenue_per_user:variant-1", "positive", None),
        ("cart_abandonment:variant-1", "negative", None),
        ("refund_rate:variant-1", "neutral", 0.1),  # lower is better: the limit is a rise
        ("conversion:variant-1", "negative", -0.1),  # higher is better: the limit is a fall
    ]
    assert rows[0].label == "Revenue per active user"
    assert (rows[0].low, rows[0].high) == pytest.approx((0.02, 0.08))


def test_a_sequential_experiment_draws_its_always_valid_interval(merchant):
    # given
    experiment = _running(merchant)
    analysis = experiment_analysis(experiment, metrics=[metric_result(relative_lift=0.05, half_width=0.02)])

    # when
    fixed = forest_rows(analysis, variant_names={}, sequential=False)[0]
    always_valid = forest_rows(analysis, variant_names={}, sequential=True)[0]

    # then
    assert (fixed.low, fixed.high) == pytest.approx((0.03, 0.07))
    assert (always_valid.low, always_valid.high) == pytest.approx((0.026, 0.074))


def test_forest_rows_name_the_variant_when_there_are_several(merchant):
    # given
    experiment = _running(merchant, weights=(0.34, 0.33, 0.33))
    analysis = experiment_analysis(
        experiment, metrics=[metric_result(variant="variant-1"), metric_result(variant="variant-2")]
    )

    # when
    rows = forest_rows(analysis, variant_names={"variant-1": "B", "variant-2": "C"}, sequential=True)

    # then
    assert [row.label for row in rows] == ["Revenue per active user · B", "Revenue per active user · C"]
