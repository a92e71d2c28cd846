"""What every `manage.py evaluate_*` command shares: sections that each print tables and checks, then one
summary of all checks, exiting non-zero when a bound fails (`evaluate_pricing`, `evaluate_loyalty`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from experiments.management.commands.validate_stats import format_rows
from experiments.stats.validation import ValidationRow


@dataclass(frozen=True)
class SectionOutput:
    title: str
    tables: list[tuple[str, list[str], list[list[str]]]]  # (caption, header, rows)
    checks: list[ValidationRow]
    text: tuple[str, ...] = ()  # free-form lines printed before the tables


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain aligned table in the style of `validate_stats` (numbers right-aligned)."""
    table = [header, *rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]

    def cell(text: str, width: int, column: int) -> str:
        return text.ljust(width) if column == 0 else text.rjust(width)

    lines = [
        "  ".join(cell(text, width, column) for column, (text, width) in enumerate(zip(line, widths, strict=True)))
        for line in table
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


class SectionedValidationCommand(BaseCommand):
    """A validation command made of named sections; `section_keys` orders them."""

    section_keys: Sequence[str] = ()

    def run_sections(
        self, *, runners: Mapping[str, Callable[[Any], SectionOutput]], run: object, sections: str | None
    ) -> None:
        summary: list[ValidationRow] = []
        for key in self.selected_sections(sections):
            started = time.perf_counter()
            output = runners[key](run)
            elapsed = time.perf_counter() - started
            self.stdout.write(f"\n## {output.title}  ({elapsed:.1f} s)")
            for line in output.text:
                self.stdout.write(line)
            for caption, header, rows in output.tables:
                self.stdout.write(f"\n{caption}")
                self.stdout.write(format_table(header, rows))
            self.stdout.write("")
            self.stdout.write(format_rows(output.checks))
            summary.extend(
                ValidationRow(f"{key}: {row.check}", row.value, row.bound, row.passed) for row in output.checks
            )
        checked = [row for row in summary if row.passed is not None]
        self.stdout.write("\n## Summary")
        self.stdout.write(format_rows(checked))
        failed = sum(row.passed is False for row in checked)
        if failed:
            raise CommandError(f"{failed} check(s) failed")
        self.stdout.write(self.style.SUCCESS("\nall checks passed"))

    def selected_sections(self, keys: str | None) -> list[str]:
        if not keys:
            return list(self.section_keys)
        wanted = [key.strip() for key in keys.split(",") if key.strip()]
        unknown = [key for key in wanted if key not in self.section_keys]
        if unknown or not wanted:
            raise CommandError(f"unknown section(s): {', '.join(unknown)}; choose from {', '.join(self.section_keys)}")
        return [key for key in self.section_keys if key in wanted]
