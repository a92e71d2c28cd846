import pytest
from django.core.management import CommandError, call_command

from experiments.management.commands import validate_stats
from experiments.management.commands.validate_stats import Section
from experiments.stats.validation import ValidationRow


def test_validate_stats_prints_each_section_as_a_table(capsys):
    # when
    call_command("validate_stats", "--sections", "srm", "--no-progress")

    # then
    output = capsys.readouterr().out
    assert "Sample ratio mismatch" in output
    assert "planted 50.5%/49.5% split of 200,000 units" in output
    assert "flagged (p < 0.001)" in output
    assert "info" in output
    assert "all checks passed" in output
    assert "A/A" not in output


def test_validate_stats_fails_when_a_check_fails(monkeypatch, capsys):
    # given: an appended section whose check fails
    failing = Section(
        key="broken",
        title="A broken check",
        run=lambda options: [ValidationRow("always wrong", f"{options.experiments}", "never", False)],
    )
    monkeypatch.setattr(validate_stats, "SECTIONS", [*validate_stats.SECTIONS, failing])

    # when
    with pytest.raises(CommandError, match="1 check"):
        call_command("validate_stats", "--sections", "broken", "--experiments", "50", "--no-progress")

    # then
    output = capsys.readouterr().out
    assert "always wrong" in output
    assert "FAIL" in output


def test_validate_stats_rejects_an_unknown_section():
    with pytest.raises(CommandError, match="unknown section"):
        call_command("validate_stats", "--sections", "nope", "--no-progress")
