import pytest
from django.core.management import CommandError, call_command

from loyalty.evaluation.churn_simulated import ChurnStudyReport
from loyalty.management.commands import evaluate_loyalty
from loyalty.models import RunStatus


def _churn_report(
    *, auc: float, recency_auc: float, seed: int, sessions: int, days: int, horizon_days: int
) -> ChurnStudyReport:
    return ChurnStudyReport(
        seed=seed,
        sessions=sessions,
        days=days,
        horizon_days=horizon_days,
        simulate_seconds=12.0,
        refresh_seconds=1.5,
        orders=1_800,
        buyers=900,
        status=RunStatus.SUCCEEDED,
        error="",
        summary={
            "auc": auc,
            "precision": 0.81,
            "recall": 0.74,
            "threshold": 0.52,
            "base_rate": 0.63,
            "flagged_share": 0.55,
            "brier": 0.17,
            "train_as_of": "2026-08-01T00:00:00+00:00",
            "test_as_of": "2026-09-01T00:00:00+00:00",
            "train_customers": 500,
            "test_customers": 700,
            "calibration": [[0.3, 0.28, 350], [0.8, 0.83, 350]],
            "feature_importance": {"days_since_last_order": 0.5, "orders_last_90d": 0.3},
        },
        recency_auc=recency_auc,
    )


@pytest.fixture
def simulated_churn(monkeypatch):
    """The simulated shop takes minutes: the command's churn section gets a canned study (its own tests are in
    test_evaluation_churn.py); `calls` records what the command asked for."""
    calls = []

    def study(*, auc: float = 0.78, recency_auc: float = 0.70):
        def run(*, seed: int, progress: bool, sessions: int, days: int, horizon_days: int) -> ChurnStudyReport:
            calls.append({"seed": seed, "sessions": sessions, "days": days, "horizon_days": horizon_days})
            size = {"sessions": sessions, "days": days, "horizon_days": horizon_days}
            return _churn_report(auc=auc, recency_auc=recency_auc, seed=seed, **size)

        monkeypatch.setattr(evaluate_loyalty, "churn_simulation_study", run)
        return calls

    return study


@pytest.mark.django_db
def test_quick_run_prints_every_section_and_passes(simulated_churn, capsys):
    # given
    calls = simulated_churn()

    # when
    call_command("evaluate_loyalty", "--quick", "--no-progress", "--seed", "3")

    # then: the CDNOW tables, the raw path on the first 300 customers, and the churn section at the quick size
    output = capsys.readouterr().out
    assert "## CDNOW summary: BG/NBD on 2,357 customers, Gamma-Gamma on 946 repeat buyers" in output
    assert any(line.startswith("r ") and "0.2426" in line and "0.243" in line for line in output.splitlines())
    assert "## CDNOW raw log through events → orders → customer summaries" in output
    assert "of the first 300 customers" in output
    assert "Holdout 1997-10-01 → 1998-07-01 (39 weeks)" in output
    assert any(line.startswith("7+ ") for line in output.splitlines())
    assert "Cumulative repeat purchases" in output
    assert "## Churn on the simulated shop (seed 3): no purchase in the next 30 days" in output
    assert "Reliability on the test table" in output
    assert calls == [{"seed": 3, **evaluate_loyalty.QUICK_CHURN}]
    summary = output.split("## Summary")[1].splitlines()
    assert any(line.startswith("cdnow-summary: BG/NBD alpha") and line.rstrip().endswith("pass") for line in summary)
    assert any(line.startswith("cdnow-raw: events → orders") and line.rstrip().endswith("pass") for line in summary)
    assert any(line.startswith("churn: AUC (test)") and line.rstrip().endswith("pass") for line in summary)
    # on a subset the published parameters are context, not a check
    assert not any(line.startswith("cdnow-raw: BG/NBD r from raw orders") for line in summary)
    assert "all checks passed" in output


def test_a_failing_bound_makes_the_command_fail(simulated_churn, capsys):
    # given: a churn model no better than chance (nor than recency, which is no better either)
    simulated_churn(auc=0.52, recency_auc=0.5)

    # when
    with pytest.raises(CommandError, match="1 check"):
        call_command("evaluate_loyalty", "--sections", "churn", "--no-progress")

    # then: the full-size study was asked for, and the summary names the failure
    output = capsys.readouterr().out
    assert "next 90 days" in output
    assert any(line.startswith("churn: AUC (test)") and line.rstrip().endswith("FAIL") for line in output.splitlines())


@pytest.mark.parametrize("sections", ["nope", "cdnow-summary,nope", ","])
def test_unknown_sections_are_rejected(sections):
    with pytest.raises(CommandError, match="unknown section"):
        call_command("evaluate_loyalty", "--sections", sections, "--no-progress")
