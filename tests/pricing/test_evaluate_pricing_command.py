import sys
import types

import pytest
from django.core.management import CommandError, call_command

from experiments.stats.validation import ValidationRow
from pricing.management.commands import evaluate_pricing
from revopt.validation import SectionOutput, format_table


def test_quick_run_prints_the_yogurt_and_simulator_tables(capsys):
    # when: the checks' verdicts are the studies' business (tests/pricing/test_evaluation_simulated.py); here the
    # command must run both sections and print every table, whether or not a bound fails on the small study
    try:
        call_command("evaluate_pricing", "--quick", "--sections", "yogurt,simulator", "--no-progress")
        failed = False
    except CommandError:
        failed = True

    # then
    output = capsys.readouterr().out
    assert "## Simulator: the engine against the oracle" in output
    assert "Regret curve" in output
    assert "engine/oracle" in output and "static/oracle" in output
    assert "elasticity intervals covering the true elasticity" in output
    assert "## Yogurt: multinomial logit price response on 2,412 purchase occasions" in output
    assert any(line.startswith("price ") and "-0.3666" in line for line in output.splitlines())
    assert "dannon share" in output and "yoplait price" in output
    assert "## Summary" in output
    assert "yogurt: log-likelihood" in output
    assert "simulator: engine's learned prices after 6 weeks / oracle" in output
    yogurt_rows = [line for line in output.splitlines() if line.startswith("yogurt: ")]
    assert len(yogurt_rows) == 7 and all(line.rstrip().endswith("pass") for line in yogurt_rows)
    assert ("all checks passed" in output) is not failed
    assert ("FAIL" in output) is failed
    assert "End to end" not in output


def test_a_failing_check_makes_the_command_fail(monkeypatch, capsys):
    # given
    monkeypatch.setattr(
        evaluate_pricing,
        "yogurt_section",
        lambda run: SectionOutput(title="Broken", tables=[], checks=[ValidationRow("always wrong", "1", "0", False)]),
    )

    # when
    with pytest.raises(CommandError, match="1 check"):
        call_command("evaluate_pricing", "--sections", "yogurt", "--no-progress")

    # then
    output = capsys.readouterr().out
    assert "yogurt: always wrong" in output
    assert "FAIL" in output


def test_experiment_section_prints_the_end_to_end_report(monkeypatch, capsys):
    # given: the end-to-end evaluation, replaced by a report with one passing and one failing row
    calls = []

    class Report:
        def rows(self) -> list[tuple[str, str, str, str]]:
            return [
                ("experiment: RPAU lift", "+4.0% [+1.0%, +7.0%]", "> 0", "pass"),
                ("experiment: margin lift", "-1.0%", "> 0", "fail"),
                ("experiment: truth inside the CI", "+3.0%", "info", "yes"),
            ]

        def lines(self) -> list[str]:
            return ["AI pricing vs static pricing: 4,000 sessions"]

    def evaluate(*, sessions: int, seed: int, progress: bool) -> Report:
        calls.append((sessions, seed, progress))
        return Report()

    module = types.ModuleType("pricing.evaluation.experiment")
    module.pricing_experiment_evaluate = evaluate
    monkeypatch.setitem(sys.modules, "pricing.evaluation.experiment", module)

    # when
    with pytest.raises(CommandError, match="1 check"):
        call_command("evaluate_pricing", "--sections", "experiment", "--quick", "--seed", "7", "--no-progress")

    # then
    assert calls == [(4_000, 7, False)]
    output = capsys.readouterr().out
    assert "AI pricing vs static pricing: 4,000 sessions" in output
    summary = output.split("## Summary")[1].splitlines()
    assert any(line.startswith("experiment: RPAU lift ") and line.rstrip().endswith("pass") for line in summary)
    assert any(line.startswith("experiment: margin lift ") and line.rstrip().endswith("FAIL") for line in summary)
    assert not any("truth inside the CI" in line for line in summary)
    assert "experiment: experiment:" not in output


def test_experiment_section_says_when_the_evaluation_is_missing(monkeypatch, capsys):
    # given: importing the end-to-end evaluation fails
    monkeypatch.setitem(sys.modules, "pricing.evaluation.experiment", None)

    # when
    call_command("evaluate_pricing", "--sections", "experiment", "--no-progress")

    # then
    assert "not available" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--sections", "nope"], "unknown section"), (["--weeks", "2"], "at least 3")],
)
def test_bad_arguments_are_rejected(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("evaluate_pricing", *arguments, "--no-progress")


def test_format_table_aligns_columns():
    # when
    table = format_table(["name", "value"], [["a", "1.0"], ["longer", "10.25"]])

    # then
    assert table.splitlines() == ["name    value", "------  -----", "a         1.0", "longer  10.25"]
