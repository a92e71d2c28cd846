import dataclasses
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from events.models import AbandonmentModel
from loyalty.evaluation import offers_simulated
from loyalty.evaluation.offers_simulated import (
    ARMS,
    BLANKET_ARM,
    EXPERIMENT_KEY,
    NONE_ARM,
    UPLIFT_ARM,
    ArmReport,
    FunnelStudyReport,
    FunnelStudySize,
    offers_simulation_run,
)
from loyalty.management.commands import evaluate_funnel
from loyalty.models import OfferDecision, UpliftModel

TINY = FunnelStudySize(sessions=240, predictor_days=1, learning_days=1, experiment_days=1, n_products=30)


def _arm(arm: str, *, offers: int, would_have_bought: int, incremental: float, shoppers: int = 100) -> ArmReport:
    return ArmReport(
        arm=arm,
        users=shoppers,
        truth={
            "shoppers": shoppers,
            "offers": offers,
            "offers_would_have_bought": would_have_bought,
            "share_offers_would_have_bought": would_have_bought / offers if offers else None,
            "offer_cost": 10.0 * offers,
            "cost_given_away": 10.0 * would_have_bought,
            "true_incremental_margin": incremental,
        },
        metrics={},
        control_values={},
    )


def _report(*, uplift_share: int, uplift_margin: float, failures: int = 0) -> FunnelStudyReport:
    predictor = AbandonmentModel(status="succeeded", metrics={"auc": 0.72, "auc_baseline": 0.6, "reliability": []})
    return FunnelStudyReport(
        seed=0,
        size=TINY,
        simulation_stats={"sessions": 300, "carts": 100, "orders": 30, "cart_abandonment": 0.7},
        simulate_seconds=1.0,
        offer_api_failures=failures,
        decisions=100,
        predictor=predictor,
        arms={
            NONE_ARM: _arm(NONE_ARM, offers=0, would_have_bought=0, incremental=0.0),
            BLANKET_ARM: _arm(BLANKET_ARM, offers=100, would_have_bought=40, incremental=-50.0),
            UPLIFT_ARM: _arm(UPLIFT_ARM, offers=100, would_have_bought=uplift_share, incremental=uplift_margin),
        },
    )


def _verdicts(report: FunnelStudyReport) -> dict[str, bool | None]:
    return {check: passed for check, _, _, passed in report.checks()}


def test_an_uplift_arm_that_targets_better_than_blanket_passes():
    # when
    verdicts = _verdicts(_report(uplift_share=20, uplift_margin=30.0))

    # then
    assert verdicts["share of offers to shoppers who would have bought anyway, uplift vs blanket"] is None  # reported
    assert verdicts["offer cost on orders that would have been placed anyway, per shopper, uplift vs blanket"] is True
    assert verdicts["true incremental margin per shopper, uplift vs blanket"] is True
    assert verdicts["abandonment model AUC (test)"] is True
    assert verdicts["AUC of cart value and device alone"] is True
    assert verdicts["offers/decide failures"] is True


@pytest.mark.parametrize(
    ("uplift_share", "uplift_margin", "failing"),
    [
        (50, 30.0, "offer cost on orders that would have been placed anyway, per shopper, uplift vs blanket"),
        (20, -80.0, "true incremental margin per shopper, uplift vs blanket"),
    ],
)
def test_an_uplift_arm_no_better_than_blanket_fails(uplift_share, uplift_margin, failing):
    # when
    verdicts = _verdicts(_report(uplift_share=uplift_share, uplift_margin=uplift_margin))

    # then
    assert verdicts[failing] is False


def test_offer_api_failures_fail_the_study():
    # when
    verdicts = _verdicts(_report(uplift_share=20, uplift_margin=30.0, failures=3))

    # then
    assert verdicts["offers/decide failures"] is False


def test_true_incremental_margin_is_per_shopper_of_the_arm():
    # given
    arm = _arm(UPLIFT_ARM, offers=10, would_have_bought=2, incremental=25.0, shoppers=50)

    # when / then
    assert arm.true_incremental_margin_per_shopper == pytest.approx(0.5)
    assert arm.share_would_have_bought == pytest.approx(0.2)
    assert arm.given_away_per_shopper == pytest.approx(20.0 / 50)


@pytest.mark.django_db(transaction=True)
def test_a_tiny_study_runs_every_phase_through_the_api_at_the_simulated_moments(merchant):
    # given
    before = timezone.now()

    # when
    report = offers_simulation_run(merchant=merchant, seed=1, size=TINY, progress=False)

    # then: every cart got a logged decision, none failed, and the decisions live in the simulated days
    decisions = OfferDecision.objects.for_merchant(merchant)
    assert report.offer_api_failures == 0
    assert report.decisions == decisions.count() > 0
    assert all(row.decided_at < before - timedelta(hours=1) for row in decisions)
    # the learning day randomized offers; the experiment day's decisions carry their arm
    assert decisions.filter(reason="exploration").exclude(kind="none").exists()
    arms = set(decisions.filter(experiment_key=EXPERIMENT_KEY).values_list("variant_key", flat=True))
    assert arms and arms <= set(ARMS)
    assert report.analysis is not None and report.analysis.experiment_key == EXPERIMENT_KEY
    # the simulator's truth per arm adds up to its counters (the predictor and learning phases are outside arms)
    stats = report.simulation_stats
    assert stats["offers"] >= sum(arm.truth.get("offers", 0) for arm in report.arms.values())
    assert report.arms[NONE_ARM].truth.get("offers", 0) == 0
    # too few carts for the models on a tiny shop: the study reports the failures instead of crashing
    assert report.predictor is not None and report.predictor.status == "failed"
    assert {check for check, *_ in report.checks()} >= {"abandonment model AUC (test)", "uplift model trained"}


def test_the_command_prints_every_section_and_fails_on_a_failed_check(monkeypatch, capsys):
    # given
    report = _report(uplift_share=50, uplift_margin=30.0)
    monkeypatch.setattr(evaluate_funnel, "offers_simulation_study", lambda **kwargs: report)

    # when
    with pytest.raises(CommandError, match="check"):
        call_command("evaluate_funnel", "--quick", "--no-progress")

    # then
    out = capsys.readouterr().out
    assert "Abandonment predictor" in out and "Uplift model" in out and "No offer vs 10% off" in out
    assert "uplift < blanket" in out


def test_the_command_refuses_an_unknown_section():
    # when / then
    with pytest.raises(CommandError, match="unknown section"):
        call_command("evaluate_funnel", "--sections", "nope")


def test_quick_and_full_sizes_keep_the_three_phases():
    # then
    for size in (offers_simulated.QUICK, offers_simulated.FULL):
        assert min(size.predictor_days, size.learning_days, size.experiment_days) >= 1
        assert size.days == size.predictor_days + size.learning_days + size.experiment_days


def test_the_uplift_section_sets_both_held_out_estimates_beside_the_arms_truth_per_decision():
    # given: a run stored with both estimators and one stored before the doubly robust one existed
    difference = {"value": 0.4, "low": -1.0, "high": 1.8, "against": "none"}
    doubly_robust = {"value": 1.1, "low": 0.2, "high": 2.0, "against": "none"}
    report = _report(uplift_share=30, uplift_margin=60.0)
    report.arms[UPLIFT_ARM].truth["decisions"] = 40
    report.uplift = UpliftModel(
        status="succeeded",
        metrics={"policy_value": {"model_minus_none": difference, "dr": {"model_minus_none": doubly_robust}}},
    )
    old = dataclasses.replace(report, uplift=UpliftModel(status="succeeded", metrics={"policy_value": {"none": {}}}))

    # when
    rows = report.policy_value_rows()
    text = report.policy_value_against_truth()

    # then: 60 of true incremental margin over 40 decisions and 100 shoppers
    assert rows == [["model_minus_none", "+0.400 [-1.000, +1.800] vs none", "+1.100 [+0.200, +2.000] vs none"]]
    assert "IPW +0.400 [-1.000, +1.800]" in text and "doubly robust +1.100 [+0.200, +2.000]" in text
    assert "+1.500 per decision (40 decisions), +0.600 per shopper" in text
    assert old.policy_value_rows() == [["none", "n/a", "n/a"]]
