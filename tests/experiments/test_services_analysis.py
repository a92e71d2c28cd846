from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments.models import AnalysisSnapshot, Experiment, ExperimentStatus
from experiments.results import DailyPoint, ExperimentAnalysis, GuardrailStatus, Verdict
from experiments.services.analysis import ExperimentAnalysisError, experiment_analyze
from tests.experiments.analysis_shop import Arm, shop_generate
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.experiments import ExposureFactory, experiment_with_variants

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
AS_OF = START + timedelta(days=10)
REFUNDS = [{"metric": "refund_rate", "max_relative_change": 0.10}]


def _experiment(merchant, **fields) -> Experiment:
    settings = {
        "merchant": merchant,
        "status": ExperimentStatus.RUNNING,
        "started_at": START,
        "primary_metric": "conversion",
        "secondary_metrics": ["revenue_per_user"],
        "guardrails": REFUNDS,
        "planned_sample_size": 2000,
        **fields,
    }
    return experiment_with_variants(**settings)


def test_a_planted_effect_is_found_and_named_the_winner(merchant):
    # given: conversion 10% -> 15%, refunds unchanged
    experiment = _experiment(merchant)
    shop_generate(
        experiment=experiment,
        arms={"control": Arm(3000, 0.10, refund_share=0.05), "variant-1": Arm(3000, 0.15, refund_share=0.05)},
        start=START,
    )

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=AS_OF)

    # then
    assert analysis.verdict == Verdict.WINNER and analysis.winner == "variant-1"
    assert analysis.verdict_reason.startswith("Variant 1 changes conversion by +")
    primary = analysis.metric("conversion", "variant-1")
    assert primary.significant and primary.sequential_p_value < 0.05 and primary.adjusted_p_value < 0.05
    assert 0.3 < primary.relative_lift < 0.7 and primary.relative_low > 0
    assert 0.09 < primary.control_value < 0.11 and primary.units_control == primary.units_treatment == 3000
    assert primary.probability_to_beat_control > 0.99
    assert analysis.metric("refund_rate", "variant-1").guardrail_status != GuardrailStatus.BREACHED
    assert not analysis.srm_flagged and analysis.units_total == 6000
    assert [v.expected_share for v in analysis.variants] == [0.5, 0.5]


@pytest.mark.parametrize(
    ("planned", "verdict"),
    [(2000, Verdict.NO_DIFFERENCE), (None, Verdict.KEEP_RUNNING), (10_000, Verdict.KEEP_RUNNING)],
)
def test_an_aa_test_finds_no_difference_once_the_plan_is_reached_and_keeps_running_before(merchant, planned, verdict):
    # given: both arms alike
    experiment = _experiment(merchant, planned_sample_size=planned)
    shop_generate(
        experiment=experiment,
        arms={"control": Arm(3000, 0.10, refund_share=0.05), "variant-1": Arm(3000, 0.10, refund_share=0.05)},
        start=START,
        seed=3,
    )

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)

    # then
    assert analysis.verdict == verdict and analysis.winner is None
    assert not any(result.significant for result in analysis.metrics)
    if planned == 10_000:
        assert "30% of the planned sample" in analysis.verdict_reason


def test_a_sample_ratio_mismatch_blocks_the_verdict_of_a_real_effect(merchant):
    # given: 50/50 weights, but 10% of the treatment's shoppers were lost
    experiment = _experiment(merchant)
    shop_generate(
        experiment=experiment,
        arms={"control": Arm(3000, 0.10), "variant-1": Arm(2700, 0.16)},
        start=START,
    )

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)

    # then
    assert analysis.srm_flagged and analysis.srm_p_value < 0.001
    assert analysis.verdict == Verdict.SAMPLE_RATIO_MISMATCH and analysis.winner is None
    assert analysis.metric("conversion", "variant-1").significant  # the effect is there, but not trusted
    assert "Variant 1 2,700 (50.0% expected)" in analysis.verdict_reason


def test_a_breached_guardrail_blocks_the_winner(merchant):
    # given: more conversions, but many more refunds
    experiment = _experiment(merchant)
    shop_generate(
        experiment=experiment,
        arms={"control": Arm(3000, 0.10, refund_share=0.05), "variant-1": Arm(3000, 0.16, refund_share=0.40)},
        start=START,
    )

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)

    # then
    assert analysis.verdict == Verdict.GUARDRAIL_BREACHED and analysis.winner is None
    refunds = analysis.metric("refund_rate", "variant-1")
    assert refunds.role == "guardrail" and refunds.guardrail_status == GuardrailStatus.BREACHED
    assert refunds.relative_lift > 2 and refunds.adjusted_p_value == refunds.p_value  # guardrails: no Holm
    assert refunds.guardrail_threshold == 0.10
    assert "beyond the 10% guardrail" in analysis.verdict_reason


def test_a_harmful_guardrail_without_significance_is_at_risk(merchant):
    # given: a few more refunds in a small sample
    experiment = _experiment(merchant)
    shop_generate(
        experiment=experiment,
        arms={"control": Arm(400, 0.15, refund_share=0.10), "variant-1": Arm(400, 0.15, refund_share=0.16)},
        start=START,
        seed=5,
    )

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)

    # then
    refunds = analysis.metric("refund_rate", "variant-1")
    assert refunds.relative_lift > 0.10 and not refunds.significant
    assert refunds.guardrail_status == GuardrailStatus.AT_RISK
    assert analysis.verdict == Verdict.KEEP_RUNNING


def test_every_variant_significantly_worse_is_a_loser(merchant):
    # given
    experiment = _experiment(merchant, guardrails=[])
    shop_generate(experiment=experiment, arms={"control": Arm(3000, 0.12), "variant-1": Arm(3000, 0.06)}, start=START)

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)

    # then
    assert analysis.verdict == Verdict.LOSER and analysis.winner is None


def test_too_few_units_is_not_enough_data(merchant):
    # given
    experiment = _experiment(merchant)
    shop_generate(experiment=experiment, arms={"control": Arm(60, 0.5), "variant-1": Arm(60, 0.9)}, start=START)

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)

    # then
    assert analysis.verdict == Verdict.NOT_ENOUGH_DATA
    assert (
        analysis.verdict_reason
        == "Too little data to compare yet: 60 units in the smallest variant, 100 needed in each."
    )


def test_cuped_reduces_the_variance_when_the_pre_period_predicts_spending(merchant):
    # given: everyone buys before and during the test at their own spending level; +10% planted
    experiment = _experiment(merchant, primary_metric="revenue_per_user", secondary_metrics=[], guardrails=[])
    shop_generate(
        experiment=experiment,
        arms={"control": Arm(1500, 1.0), "variant-1": Arm(1500, 1.0, spend_lift=1.10)},
        start=START,
        pre_period=True,
    )

    # when
    with_cuped = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)
    Experiment.objects.filter(pk=experiment.pk).update(cuped=False)
    experiment.refresh_from_db()
    without = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)

    # then
    adjusted = with_cuped.metric("revenue_per_user", "variant-1")
    plain = without.metric("revenue_per_user", "variant-1")
    assert adjusted.cuped_variance_reduction > 0.5 and plain.cuped_variance_reduction is None
    assert (adjusted.relative_high - adjusted.relative_low) < 0.75 * (plain.relative_high - plain.relative_low)
    assert adjusted.relative_low < 0.10 < adjusted.relative_high
    assert adjusted.control_value == pytest.approx(plain.control_value)  # the plain means are shown either way


def test_another_merchants_orders_and_snapshots_never_count(merchant, other_merchant):
    # given
    experiment = _experiment(merchant)
    shop_generate(experiment=experiment, arms={"control": Arm(500, 0.2), "variant-1": Arm(500, 0.2)}, start=START)
    before = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)
    twin = _experiment(other_merchant, key=experiment.key)
    shop_generate(experiment=twin, arms={"control": Arm(500, 0.1), "variant-1": Arm(500, 0.9)}, start=START)
    experiment_analyze(experiment=twin, as_of=AS_OF - timedelta(days=1))
    customer = experiment.exposures.filter(variant__key="control").first().customer
    OrderFactory(merchant=other_merchant, customer=customer, placed_at=START + timedelta(days=6), total=900)

    # when
    after = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)

    # then
    assert after == before
    assert after.units_total == 1000


def test_saving_writes_a_snapshot_that_reads_back_equal(merchant):
    # given: no refund at all in the control, so the refund rate's relative lift is unbounded
    experiment = _experiment(merchant)
    shop_generate(
        experiment=experiment,
        arms={"control": Arm(300, 0.2), "variant-1": Arm(300, 0.2, refund_share=0.3)},
        start=START,
    )

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=AS_OF)

    # then
    snapshot = AnalysisSnapshot.objects.for_merchant(merchant).get(experiment=experiment)
    assert snapshot.computed_at == AS_OF and snapshot.merchant_id == merchant.pk
    assert analysis.metric("refund_rate", "variant-1").relative_lift == float("inf")
    assert ExperimentAnalysis.from_dict(snapshot.analysis) == analysis


def test_the_sequential_p_value_is_a_running_minimum_over_snapshots(merchant):
    # given: an A/A test whose earlier look recorded a tiny always-valid p-value
    experiment = _experiment(merchant)
    shop_generate(experiment=experiment, arms={"control": Arm(500, 0.2), "variant-1": Arm(500, 0.2)}, start=START)
    earlier = experiment_analyze(experiment=experiment, as_of=AS_OF - timedelta(days=2), save=False)
    peeked = [
        replace(result, sequential_p_value=1e-6) if result.metric == "conversion" else result
        for result in earlier.metrics
    ]
    AnalysisSnapshot.objects.create(
        merchant=merchant,
        experiment=experiment,
        computed_at=AS_OF - timedelta(days=2),
        analysis=replace(earlier, metrics=peeked).as_dict(),
    )

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)

    # then
    conversion = analysis.metric("conversion", "variant-1")
    assert conversion.sequential_p_value == 1e-6 and conversion.significant
    revenue = analysis.metric("revenue_per_user", "variant-1")
    assert revenue.sequential_p_value == pytest.approx(
        experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)
        .metric("revenue_per_user", "variant-1")
        .sequential_p_value
    )
    assert revenue.sequential_p_value > 0.05


def test_holm_intervals_agree_with_the_adjusted_p_values_across_variants_and_metrics(merchant):
    # given: two treatments, a secondary metric, fixed-horizon analysis
    experiment = _experiment(merchant, weights=(0.34, 0.33, 0.33), sequential=False, cuped=False)
    shop_generate(
        experiment=experiment,
        arms={"control": Arm(2000, 0.10), "variant-1": Arm(2000, 0.125), "variant-2": Arm(2000, 0.10)},
        start=START,
        seed=11,
    )

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=AS_OF, save=False)

    # then
    family = [result for result in analysis.metrics if result.role != "guardrail"]
    assert len(family) == 4
    for result in family:
        assert result.adjusted_p_value >= result.p_value
        excludes_zero = result.relative_low > 0 or result.relative_high < 0
        assert excludes_zero == (result.adjusted_p_value < experiment.alpha) == result.significant
        assert result.sequential_p_value is None
    assert any(result.adjusted_p_value > result.p_value for result in family)


def _data_statements(captured: CaptureQueriesContext) -> list[str]:
    """The statements that read or write rows: not the savepoints (under the test's transaction every atomic
    block makes some) nor, on PostgreSQL, the settings of the metric statement."""
    control = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "SELECT set_config")
    return [query["sql"] for query in captured.captured_queries if not query["sql"].startswith(control)]


def test_daily_lift_comes_from_snapshots_and_missing_days_are_backfilled(merchant):
    # given: a snapshot of day 2 that carries its own marker point
    experiment = _experiment(merchant)
    shop_generate(experiment=experiment, arms={"control": Arm(400, 0.2), "variant-1": Arm(400, 0.3)}, start=START)
    day_two = START + timedelta(days=1, hours=10)
    earlier = experiment_analyze(experiment=experiment, as_of=day_two, save=False)
    marker = DailyPoint(day="2025-03-02", variant="variant-1", units=1, relative_lift=0.777, low=0.1, high=0.9)
    AnalysisSnapshot.objects.create(
        merchant=merchant,
        experiment=experiment,
        computed_at=day_two,
        analysis=replace(earlier, daily=[marker]).as_dict(),
    )
    as_of = START + timedelta(days=5, hours=3)

    # when
    with CaptureQueriesContext(connection) as captured:
        analysis = experiment_analyze(experiment=experiment, as_of=as_of, save=False, backfill_daily=True)

    # then
    days = [point.day for point in analysis.daily]
    assert days == ["2025-03-01", "2025-03-02", "2025-03-03", "2025-03-04", "2025-03-05", "2025-03-06"]
    assert analysis.daily[1] == marker
    first_day = experiment_analyze(experiment=experiment, as_of=datetime(2025, 3, 2, tzinfo=UTC), save=False)
    assert analysis.daily[0] == first_day.daily[-1]
    assert analysis.daily[-1].relative_lift == analysis.metric("conversion", "variant-1").relative_lift is not None
    assert analysis.daily[-1].units == 800
    assert len(_data_statements(captured)) == 6 + 4  # the analysis, and days 1, 3, 4 and 5 one statement each


def test_without_backfill_only_snapshot_days_and_today_are_drawn(merchant):
    # given
    experiment = _experiment(merchant)
    shop_generate(experiment=experiment, arms={"control": Arm(200, 0.2), "variant-1": Arm(200, 0.3)}, start=START)
    experiment_analyze(experiment=experiment, as_of=START + timedelta(days=2))

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=START + timedelta(days=4))

    # then
    assert [point.day for point in analysis.daily] == ["2025-03-03", "2025-03-05"]
    assert AnalysisSnapshot.objects.filter(experiment=experiment).count() == 2


def test_an_analysis_costs_a_fixed_number_of_queries(merchant):
    # given
    experiment = _experiment(merchant, secondary_metrics=["revenue_per_user", "aov", "items_per_order"])
    shop_generate(experiment=experiment, arms={"control": Arm(300, 0.2), "variant-1": Arm(300, 0.2)}, start=START)

    # when
    with CaptureQueriesContext(connection) as captured:
        experiment_analyze(experiment=experiment, as_of=AS_OF)

    # then: variants, the previous snapshot, every metric's sums, the allocation periods (variants, changes,
    # counts), the snapshot's update_or_create (select, insert)
    assert len(_data_statements(captured)) == 8


def test_an_experiment_without_treatment_cannot_be_analysed(merchant):
    # given
    experiment = experiment_with_variants(merchant=merchant, weights=(1.0,))

    # when / then
    with pytest.raises(ExperimentAnalysisError):
        experiment_analyze(experiment=experiment, as_of=AS_OF)


def test_a_tiny_analysis_with_one_unit_per_arm_does_not_break(merchant):
    # given
    experiment = _experiment(merchant)
    for index in range(2):
        customer = CustomerFactory(merchant=merchant)
        ExposureFactory(variant=experiment.variants.get(index=index), customer=customer, exposed_at=START)
        OrderFactory(merchant=merchant, customer=customer, placed_at=START + timedelta(hours=1))

    # when
    analysis = experiment_analyze(experiment=experiment, as_of=AS_OF)

    # then
    assert analysis.verdict == Verdict.NOT_ENOUGH_DATA
    stored = AnalysisSnapshot.objects.get(experiment=experiment).analysis
    assert ExperimentAnalysis.from_dict(stored).metrics == analysis.metrics
