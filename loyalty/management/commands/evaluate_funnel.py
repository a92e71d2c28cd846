"""`manage.py evaluate_funnel`: cart incentives on the simulated shop (`loyalty.evaluation.offers_simulated`).

One simulation in three phases (no offers → randomized offers → a 3-arm experiment), then three sections:
the abandonment predictor, the uplift model, and the experiment beside the simulator's truth. Every section
ends with its checks; the summary exits non-zero when a bound fails (`revopt.validation`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.management.base import CommandParser

from experiments.stats.validation import ValidationRow
from loyalty.evaluation.offers_simulated import (
    ARM_HEADER,
    FULL,
    QUICK,
    FunnelStudyReport,
    offers_simulation_study,
)
from revopt.validation import SectionedValidationCommand, SectionOutput

SECTION_KEYS = ("predictor", "uplift", "experiment")
SETUP_CHECKS = ("setup", "offers/decide failures")
PREDICTOR_CHECKS = ("abandonment model AUC (test)", "AUC of cart value and device alone")
UPLIFT_CHECKS = ("uplift model trained",)
ARM_CAPTION = "Per arm (engine: vs none, 95% CI; truth: the simulator's counterfactuals)"


@dataclass
class StudyRun:
    seed: int
    quick: bool
    progress: bool
    report: FunnelStudyReport | None = None


class Command(SectionedValidationCommand):
    section_keys = SECTION_KEYS
    help = (
        "Simulate a shop with hesitant shoppers through the storefront API: train the abandonment and uplift "
        "models, run a no-offer / 10%-off / uplift experiment and check it against the simulator's truth "
        "(exits non-zero on a failure)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sections", help=f"comma-separated subset of: {', '.join(SECTION_KEYS)}")
        parser.add_argument("--seed", type=int, default=0, help="the simulated shop's seed")
        parser.add_argument(
            "--quick",
            action="store_true",
            help=f"{QUICK.sessions:,} sessions over {QUICK.days} days instead of {FULL.sessions:,} over {FULL.days}",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        run = StudyRun(seed=options["seed"], quick=options["quick"], progress=not options["no_progress"])
        runners: dict[str, Callable[[StudyRun], SectionOutput]] = {
            "predictor": predictor_section,
            "uplift": uplift_section,
            "experiment": experiment_section,
        }
        self.run_sections(runners=runners, run=run, sections=options["sections"])


def _study(run: StudyRun) -> FunnelStudyReport:
    """The one simulation every section reads, run on first use."""
    if run.report is None:
        run.report = offers_simulation_study(seed=run.seed, size=QUICK if run.quick else FULL, progress=run.progress)
    return run.report


def _rows(report: FunnelStudyReport, names: tuple[str, ...]) -> list[ValidationRow]:
    return [ValidationRow(*row) for row in report.checks() if row[0] in names]


def predictor_section(run: StudyRun) -> SectionOutput:
    report = _study(run)
    metrics = (report.predictor.metrics or {}) if report.predictor is not None else {}
    text = (
        f"Simulated {report.size.sessions:,} sessions over {report.size.days} days (seed {report.seed}) in "
        f"{report.simulate_seconds:.0f} s through the storefront API, {report.decisions:,} decide calls.",
    )
    if metrics:
        text += (
            f"Abandonment model: {report.predictor.train_carts:,} training carts, {report.predictor.test_carts:,} test "
            f"carts (temporal split); Brier {metrics.get('brier', float('nan')):.3f}, base rate "
            f"{metrics.get('base_rate', float('nan')):.3f}, calibration {metrics.get('calibration_method', '?')}.",
        )
    return SectionOutput(
        title="Abandonment predictor on the simulated shop (session signals on)",
        tables=[
            (
                "Reliability on the test carts (deciles of predicted probability)",
                ["decile", "carts", "mean predicted", "observed"],
                report.predictor_rows(),
            )
        ]
        if report.predictor_rows()
        else [],
        checks=_rows(report, SETUP_CHECKS + PREDICTOR_CHECKS),
        text=text,
    )


def uplift_section(run: StudyRun) -> SectionOutput:
    report = _study(run)
    tables = []
    if report.uplift_rows():
        tables.append(
            (
                "Average treatment effect on conversion per incentive (randomized decisions, 95% CI) and the model's "
                "mean predicted uplift; Qini on held-out rows",
                ["kind", "n", "ATE [95% CI]", "predicted", "Qini (normalized)"],
                report.uplift_rows(),
            )
        )
        tables.append(
            (
                "Held-out policy value, margin per decision (95% CI): inverse propensity weighting (Hajek) and "
                "doubly robust (AIPW)",
                ["policy", "IPW", "doubly robust"],
                report.policy_value_rows(),
            )
        )
    against_truth = report.policy_value_against_truth()
    return SectionOutput(
        title=f"Uplift model after {report.size.learning_days} days of randomized offers",
        tables=tables,
        checks=_rows(report, UPLIFT_CHECKS),
        text=(against_truth,) if against_truth else (),
    )


def experiment_section(run: StudyRun) -> SectionOutput:
    report = _study(run)
    names = {row[0] for row in report.checks()} - set(SETUP_CHECKS + PREDICTOR_CHECKS + UPLIFT_CHECKS)
    analysis = report.analysis
    text = ()
    if analysis is not None:
        text = (
            f"Experiment: {analysis.units_total:,} exposed shoppers over {report.size.experiment_days} days; "
            f"verdict {analysis.verdict} ({analysis.verdict_reason}). Budget 1,000,000/day and 10,000 offers per "
            "customer per day: no cap binds.",
        )
    return SectionOutput(
        title="No offer vs 10% off for everyone vs the uplift model: the engine's analysis and the simulator's truth",
        tables=[(ARM_CAPTION, ARM_HEADER, report.arm_rows())] if report.arms else [],
        checks=_rows(report, tuple(names)),
        text=text,
    )
