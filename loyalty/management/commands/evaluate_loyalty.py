"""`manage.py evaluate_loyalty`: the customer-intelligence models' validations, one set of tables per section.

- cdnow-summary: BG/NBD and Gamma-Gamma on the CDNOW calibration summaries shipped in `lifetimes`, against the
  estimates Fader, Hardie & Lee published (`loyalty.evaluation.cdnow`);
- cdnow-raw: the raw CDNOW transaction log sent as storefront events into a throwaway merchant, summarised and
  fitted through revopt's own path, and checked on the 39-week holdout;
- churn: the churn model on the simulated shop (`loyalty.evaluation.churn_simulated`).

Every section ends with its checks; a summary of all checks closes the run, which exits non-zero when any bound
fails. Tables are printed as every `evaluate_*` command prints them (`revopt.validation`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.management.base import CommandParser

from experiments.stats.validation import ValidationRow
from loyalty.evaluation.cdnow import (
    CALIBRATION_END,
    HOLDOUT_END,
    PUBLISHED_BGNBD_LOG_LIKELIHOOD,
    ParameterComparison,
    cdnow_raw_study,
    cdnow_summary_study,
)
from loyalty.evaluation.churn_simulated import churn_simulation_study
from revopt.validation import SectionedValidationCommand, SectionOutput

SECTION_KEYS = ("cdnow-summary", "cdnow-raw", "churn")
# --quick: the raw log of the first customers only, and a smaller, shorter simulated shop.
QUICK_CDNOW_CUSTOMERS = 300
QUICK_CHURN = {"sessions": 8_000, "days": 120, "horizon_days": 30}
FULL_CHURN = {"sessions": 30_000, "days": 270, "horizon_days": 90}
CUMULATIVE_WEEKS = (4, 8, 13, 26, 39, 52, 65, 78)


@dataclass(frozen=True)
class RunOptions:
    seed: int
    quick: bool
    progress: bool


class Command(SectionedValidationCommand):
    section_keys = SECTION_KEYS
    help = (
        "Validate lifetime value on CDNOW (the published summary and the raw log through revopt's events → orders "
        "path) and the churn model on the simulator (exits non-zero on a failure)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sections", help=f"comma-separated subset of: {', '.join(SECTION_KEYS)}")
        parser.add_argument("--seed", type=int, default=0, help="the simulated shop's seed")
        parser.add_argument(
            "--quick",
            action="store_true",
            help=f"CDNOW's first {QUICK_CDNOW_CUSTOMERS} customers and a small simulated shop",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        run = RunOptions(seed=options["seed"], quick=options["quick"], progress=not options["no_progress"])
        runners: dict[str, Callable[[RunOptions], SectionOutput]] = {
            "cdnow-summary": cdnow_summary_section,
            "cdnow-raw": cdnow_raw_section,
            "churn": churn_section,
        }
        self.run_sections(runners=runners, run=run, sections=options["sections"])


def _rows(checks: list[tuple[str, str, str, bool | None]]) -> list[ValidationRow]:
    return [ValidationRow(*row) for row in checks]


def _parameter_table(comparisons: list[ParameterComparison]) -> list[list[str]]:
    return [
        [
            row.name,
            f"{row.ours:.4f}",
            f"{row.published}",
            f"{row.ours - row.published:+.4f}",
            f"{row.relative_difference:+.2%}",
        ]
        for row in comparisons
    ]


PARAMETER_HEADER = ["parameter", "revopt", "published", "difference", "relative"]


def cdnow_summary_section(run: RunOptions) -> SectionOutput:
    report = cdnow_summary_study()
    return SectionOutput(
        title=f"CDNOW summary: BG/NBD on {report.customers:,} customers, Gamma-Gamma on "
        f"{report.gamma_gamma.customers:,} repeat buyers (Fader, Hardie & Lee 2005)",
        tables=[
            (
                f"BG/NBD (weeks; {report.repeat_purchases:,} repeat purchases in the 39-week calibration period), "
                f"log-likelihood {report.bgnbd.log_likelihood:.2f}",
                PARAMETER_HEADER,
                _parameter_table(report.bgnbd_comparison),
            ),
            (
                f"Gamma-Gamma (mean repeat spend, $), log-likelihood {report.gamma_gamma.log_likelihood:.2f}",
                PARAMETER_HEADER,
                _parameter_table(report.gamma_gamma_comparison),
            ),
        ],
        checks=_rows(report.checks()),
    )


def cdnow_raw_section(run: RunOptions) -> SectionOutput:
    customers = QUICK_CDNOW_CUSTOMERS if run.quick else None
    report = cdnow_raw_study(customers=customers)
    ours, theirs = report.bgnbd, report.published_summary_bgnbd
    parameters = [
        [
            row.name,
            f"{row.ours:.4f}",
            f"{getattr(theirs, row.name):.4f}",
            f"{row.published}",
            f"{row.ours - row.published:+.4f}",
            f"{row.relative_difference:+.2%}",
        ]
        for row in report.bgnbd_comparison
    ]
    likelihoods = (ours.log_likelihood, theirs.log_likelihood, PUBLISHED_BGNBD_LOG_LIKELIHOOD)
    parameters.append(["log-likelihood", *(f"{value:.2f}" for value in likelihoods), "", ""])
    groups = [
        [
            group.label,
            f"{group.customers:,}",
            f"{group.actual_mean:.3f}",
            f"{group.predicted_mean:.3f}",
            f"{group.predicted_mean - group.actual_mean:+.3f}",
        ]
        for group in report.holdout_by_frequency
    ]
    groups.append(
        [
            "all",
            f"{report.customers:,}",
            f"{report.holdout_actual / report.customers:.3f}",
            f"{report.holdout_predicted / report.customers:.3f}",
            f"{(report.holdout_predicted - report.holdout_actual) / report.customers:+.3f}",
        ]
    )
    cumulative = [
        [
            str(week.week),
            f"{week.actual:,}",
            f"{week.predicted:,.1f}",
            f"{week.predicted / week.actual - 1:+.1%}" if week.actual else "",
        ]
        for week in report.cumulative
        if week.week in CUMULATIVE_WEEKS
    ]
    ingest = report.ingest
    scope = f"the first {customers} customers" if customers else "all customers"
    text = (
        f"{ingest.events:,} transactions of {scope} sent as 'Order Completed' events (noon UTC of their day, "
        f"{ingest.batches} batches of ≤ 500) into a throwaway merchant: {ingest.accepted:,} accepted, "
        f"{ingest.duplicate} duplicate, {ingest.rejected} rejected, in {ingest.seconds:.1f} s "
        f"({ingest.events / max(ingest.seconds, 1e-9):,.0f} events/s).",
        f"customer_summaries(as_of={CALIBRATION_END:%Y-%m-%d}, since 1997-01-01, weeks): {report.customers:,} "
        f"customers, {report.orders:,} calibration orders. Against the published summary of the same customers: x "
        f"equal for {report.frequency_match:.1%}, t_x for {report.recency_match:.1%}, mean T difference "
        f"{report.age_difference:+.3f} weeks (purchases counted per day, T up to the last day observed: the paper's "
        "own conventions, so the fits differ only by optimiser noise).",
        *ingest.first_errors,
    )
    tables = [
        (
            "BG/NBD from the raw log vs the published summary of the same customers vs the published estimates",
            ["parameter", "raw orders", "published summary", "published", "raw − published", "relative"],
            parameters,
        ),
        (
            f"Holdout {CALIBRATION_END:%Y-%m-%d} → {HOLDOUT_END:%Y-%m-%d} ({report.holdout_weeks:.0f} weeks): mean "
            "repeat purchases per customer by calibration repeat purchases (the paper's conditional expectations, "
            "equation 10)",
            ["x (calibration)", "customers", "actual", "predicted", "predicted − actual"],
            groups,
        ),
    ]
    if cumulative:
        tables.append(
            (
                "Cumulative repeat purchases of the cohort by week since 1997-01-01 (actual vs equation 7 over each "
                "customer's time since acquisition); weeks 40-78 are the holdout",
                ["week", "actual", "predicted", "error"],
                cumulative,
            )
        )
    return SectionOutput(
        title="CDNOW raw log through events → orders → customer summaries",
        tables=tables,
        checks=_rows(report.checks()),
        text=text,
    )


def churn_section(run: RunOptions) -> SectionOutput:
    size = QUICK_CHURN if run.quick else FULL_CHURN
    report = churn_simulation_study(seed=run.seed, progress=run.progress, **size)
    tables = []
    if report.succeeded:
        tables.append(
            (
                "Reliability on the test table: customers by predicted churn probability (deciles)",
                ["bin", "customers", "mean predicted", "observed churn", "gap"],
                [
                    [str(index), f"{count:,}", f"{predicted:.3f}", f"{observed:.3f}", f"{predicted - observed:+.3f}"]
                    for index, (predicted, observed, count) in enumerate(report.calibration_rows(), start=1)
                ],
            )
        )
        tables.append(
            (
                "Top features (the model's importance)",
                ["feature", "importance"],
                [[name, f"{value:.3f}"] for name, value in report.top_features()],
            )
        )
    text = ()
    if report.succeeded:
        summary = report.summary
        text = (
            f"Simulated {report.sessions:,} sessions over {report.days} days in {report.simulate_seconds:.0f} s; "
            f"churn_refresh in {report.refresh_seconds:.1f} s (calibration: {summary.get('calibration_method', '?')}; "
            f"{summary.get('scored', 0):,} customers scored, {summary.get('flagged', 0):,} flagged at the threshold).",
        )
    return SectionOutput(
        title=f"Churn on the simulated shop (seed {report.seed}): no purchase in the next {report.horizon_days} days",
        tables=tables,
        checks=_rows(report.checks()),
        text=text,
    )
