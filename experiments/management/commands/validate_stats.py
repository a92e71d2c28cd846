"""`manage.py validate_stats`: the Monte-Carlo validations of the statistics engine, one table per section.

Sections run in the order of `SECTIONS`; each is a key, a title and a callable that takes the run's
options and returns `ValidationRow`s (check, value, bound, passed). Append a `Section` to add one (CUPED
on the simulator, bandit regret, an end-to-end simulator run). The command exits non-zero when a row fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from experiments.bandits.simulation import regret_comparison
from experiments.results import ExperimentAnalysis
from experiments.stats import validation
from experiments.stats.validation import ValidationRow


@dataclass(frozen=True)
class SectionOptions:
    experiments: int
    seed: int
    progress: Callable[[float], None]  # fraction of the section done, 0..1
    sessions: int = 20_000  # the simulator run's size


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    run: Callable[[SectionOptions], list[ValidationRow]]


SECTIONS: list[Section] = [
    Section(
        key="aa",
        title="A/A false positive rate (α = 0.05)",
        run=lambda options: validation.aa_false_positive_rate(
            experiments=options.experiments, seed=options.seed, progress=options.progress
        ).rows(),
    ),
    Section(
        key="power",
        title="Power: a planted minimum detectable effect is found as often as promised",
        run=lambda options: validation.power_check(
            experiments=options.experiments, seed=options.seed, progress=options.progress
        ).rows(),
    ),
    Section(
        key="peeking",
        title="Sequential testing under daily peeking",
        run=lambda options: validation.peeking_false_positive_rates(
            experiments=options.experiments, seed=options.seed, progress=options.progress
        ).rows(),
    ),
    Section(
        key="srm",
        title="Sample ratio mismatch",
        run=lambda options: validation.srm_planted(seed=options.seed).rows(),
    ),
    Section(
        key="cuped",
        title="CUPED on a synthetic pre-period",
        run=lambda options: validation.cuped_check(
            experiments=options.experiments, seed=options.seed, progress=options.progress
        ).rows(),
    ),
    Section(
        key="bandits", title="Bandits: cumulative regret against baselines", run=lambda options: bandit_rows(options)
    ),
    Section(
        key="simulator",
        title="End to end on the simulator: popularity vs hybrid recommendations through the engine",
        run=lambda options: simulator_rows(options),
    ),
]


class Command(BaseCommand):
    help = (
        "Validate the statistics engine by simulation: A/A false positives, power, peeking, SRM, CUPED "
        "(exits non-zero if a check fails)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--experiments", type=int, default=2000, help="simulated experiments per check")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--sections", help=f"comma-separated subset of: {', '.join(section.key for section in SECTIONS)}"
        )
        parser.add_argument(
            "--sessions", type=int, default=20_000, help="simulated sessions of the end-to-end run (60 days)"
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        if options["experiments"] < 10:
            raise CommandError("--experiments must be at least 10")
        if options["sessions"] < 500:
            raise CommandError("--sessions must be at least 500")
        sections = self._selected(options["sections"])
        failed = 0
        for section in sections:
            started = time.perf_counter()
            with tqdm(
                total=1000, desc=section.key, disable=options["no_progress"], leave=False, file=self.stderr
            ) as bar:

                def progress(fraction: float, bar: tqdm = bar) -> None:
                    bar.n = round(min(max(fraction, 0.0), 1.0) * 1000)
                    bar.refresh()

                rows = section.run(
                    SectionOptions(
                        experiments=options["experiments"],
                        seed=options["seed"],
                        progress=progress,
                        sessions=options["sessions"],
                    )
                )
            elapsed = time.perf_counter() - started
            self.stdout.write(f"\n{section.title}  ({elapsed:.1f} s)")
            self.stdout.write(format_rows(rows))
            failed += sum(row.passed is False for row in rows)
        if failed:
            raise CommandError(f"{failed} check(s) failed")
        self.stdout.write(self.style.SUCCESS("\nall checks passed"))

    def _selected(self, keys: str | None) -> list[Section]:
        if not keys:
            return SECTIONS
        wanted = [key.strip() for key in keys.split(",") if key.strip()]
        known = {section.key for section in SECTIONS}
        unknown = [key for key in wanted if key not in known]
        if unknown:
            raise CommandError(f"unknown section(s): {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
        return [section for section in SECTIONS if section.key in wanted]


def format_rows(rows: list[ValidationRow]) -> str:
    header = ("check", "value", "bound", "result")
    table = [header] + [(row.check, row.value, row.bound, _result(row.passed)) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _result(passed: bool | None) -> str:
    if passed is None:
        return "info"
    return "pass" if passed else "FAIL"


def bandit_rows(options: SectionOptions) -> list[ValidationRow]:
    report = regret_comparison(seed=options.seed)
    options.progress(1.0)
    rows = []
    for problem, winner, baselines, passed in (
        (report.bernoulli, "thompson", ("epsilon_greedy", "uniform"), report.thompson_beats_baselines),
        (
            report.contextual,
            "contextual_thompson",
            ("thompson", "uniform"),
            report.contextual_beats_baselines,
        ),
    ):
        rows.append(
            ValidationRow(
                check=f"{problem.problem}: regret of {winner}",
                value=f"{problem.regret(winner):,.0f}",
                bound="below " + " and ".join(f"{name} {problem.regret(name):,.0f}" for name in baselines),
                passed=passed,
            )
        )
    return rows


def simulator_rows(options: SectionOptions) -> list[ValidationRow]:
    """Runs the simulated shop for a throwaway merchant, reads the analysis, and deletes the merchant."""
    from django.utils import timezone

    from revopt.simulator.experiment_run import simulated_recommender_experiment_run
    from revopt.simulator.world import WorldConfig
    from revopt.tenancy.services import merchant_create

    merchant = merchant_create(name="validate_stats simulator", slug=f"validate-stats-{timezone.now():%Y%m%d%H%M%S%f}")
    try:
        run = simulated_recommender_experiment_run(
            merchant=merchant,
            config=WorldConfig(seed=options.seed + 7, n_sessions=options.sessions, days=60),
            split_day=30,
            progress=False,
        )
        return simulated_experiment_rows(run.analysis)
    finally:
        options.progress(1.0)
        merchant.delete()


def simulated_experiment_rows(analysis: ExperimentAnalysis) -> list[ValidationRow]:
    treatment = next(variant for variant in analysis.variants if not variant.is_control)
    rpau = analysis.metric("revenue_per_user", treatment.key)
    conversion = analysis.metric("conversion", treatment.key)
    rows = [
        ValidationRow(
            check="units per variant",
            value=" / ".join(f"{variant.key} {variant.units:,}" for variant in analysis.variants),
            bound="SRM p ≥ 0.001",
            passed=not analysis.srm_flagged,
        ),
        ValidationRow(check="verdict", value=analysis.verdict, bound=analysis.verdict_reason, passed=None),
    ]
    for result in (rpau, conversion):
        if result is None:
            continue
        rows.append(
            ValidationRow(
                check=f"{result.label} lift ({treatment.key} vs control)",
                value=f"{result.relative_lift:+.1%} [{result.relative_low:+.1%}, {result.relative_high:+.1%}]",
                bound=f"p = {result.p_value:.3f}, always-valid p = {_number(result.sequential_p_value)}",
                passed=None,
            )
        )
    if rpau is not None and rpau.cuped_variance_reduction is not None:
        rows.append(
            ValidationRow(
                check="CUPED variance reduction, revenue per user (30-day pre-period)",
                value=f"{rpau.cuped_variance_reduction:.1%}",
                bound="≥ 30% expected by the issue",
                passed=rpau.cuped_variance_reduction >= 0.30,
            )
        )
    return rows


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
