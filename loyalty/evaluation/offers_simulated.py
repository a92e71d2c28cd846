"""Cart incentives on the simulated shop: the abandonment predictor, the uplift model and a 3-arm experiment,
through the storefront API and the real services, judged against the simulator's counterfactual truth.

The shop runs with session signals on (`WorldConfig.session_signals`): each cart's shopper has a latent
hesitation that lowers checkout and shows in behaviour (shipping and returns pages, price sorting, dwell),
and incentives work unevenly (10% off mostly on price-sensitive shoppers, points on returning customers;
see `revopt.simulator.world.SessionLatents`). The storefront (`OfferPolicy`) asks `POST /api/v1/offers/decide`
at every cart and puts the one-time code it gets on the order's coupon, so orders redeem their offers.

Three phases, one simulation, the back office acting between days as a merchant would:
1. predictor (days 0 … P−1): offers switched off; at the end the abandonment model trains on those carts;
2. learning (P … P+L−1): every decision randomized (exploration_share 1.0); at the end the uplift model trains;
3. experiment (P+L … end): a 3-arm experiment on the offers surface, no offer / 10% off for everyone /
   the uplift model (exploring 10%), analysed by the experiments engine as the merchant's results page is.

The simulator also knows, for every offer given, whether that cart would have been bought without it (the
same random draw) and the true expected incremental margin p_k·(margin − cost) − p_none·margin, so the report
sets what the engine measured beside what the offers really did. Budget and frequency caps are set so they
never bind (the arms differ only by their policy).

The simulated shop lives in the past: each decide call carries its cart's simulated moment (`at`), so
exposures, codes, budgets and the uplift model's outcome window follow the simulated days.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django.utils import timezone
from tqdm import tqdm

from events.models import AbandonmentModel, Customer, Event, Order, OrderLine, Session
from events.services.abandonment import abandonment_model_train
from experiments.models import Surface
from experiments.results import ExperimentAnalysis, MetricResult
from experiments.services.analysis import experiment_analyze
from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_start
from revopt.db import tables_analyze
from revopt.simulator.driver import InProcessTransport
from revopt.simulator.policy import OfferPolicy
from revopt.simulator.services import simulation_run
from revopt.simulator.world import WorldConfig
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import api_key_create, api_key_revoke, merchant_create

from ..models import OfferDecision, UpliftModel
from ..selectors.offers import offer_settings_for
from ..services.offers import offer_exploration_seed, offer_settings_save
from ..services.uplift import uplift_model_train

EXPERIMENT_KEY = "offers-none-blanket-uplift"
NONE_ARM, BLANKET_ARM, UPLIFT_ARM = "none", "blanket", "uplift"
OFFER_VARIANTS: tuple[VariantSpec, ...] = (
    VariantSpec(key=NONE_ARM, name="No offer", weight=1 / 3, config={"policy": "none"}),
    VariantSpec(
        key=BLANKET_ARM, name="10% off for everyone", weight=1 / 3, config={"policy": "blanket", "kind": "percent_10"}
    ),
    VariantSpec(key=UPLIFT_ARM, name="revopt uplift", weight=1 / 3, config={"policy": "uplift"}),
)
ARMS = (NONE_ARM, BLANKET_ARM, UPLIFT_ARM)
METRICS = ("margin_per_user", "revenue_per_user", "conversion")
# Behavioural abandonment models on session data land around 0.65-0.8 AUC; below this the model learned little.
MIN_PREDICTOR_AUC = 0.6


@dataclass(frozen=True)
class FunnelStudySize:
    sessions: int
    predictor_days: int
    learning_days: int
    experiment_days: int
    n_products: int = 80
    n_categories: int = 6

    @property
    def days(self) -> int:
        return self.predictor_days + self.learning_days + self.experiment_days


QUICK = FunnelStudySize(sessions=6_000, predictor_days=4, learning_days=4, experiment_days=4)
FULL = FunnelStudySize(sessions=24_000, predictor_days=7, learning_days=7, experiment_days=7)


@dataclass(frozen=True)
class ArmReport:
    arm: str
    users: int  # exposed shoppers (the engine's units)
    truth: dict  # OfferTally.as_dict() of the arm
    metrics: dict[str, MetricResult | None]  # vs the "none" arm (None for the control itself)
    control_values: dict[str, float]

    @property
    def true_incremental_margin_per_shopper(self) -> float:
        shoppers = self.truth.get("shoppers") or 0
        return self.truth.get("true_incremental_margin", 0.0) / shoppers if shoppers else 0.0

    @property
    def given_away_per_shopper(self) -> float:
        shoppers = self.truth.get("shoppers") or 0
        return self.truth.get("cost_given_away", 0.0) / shoppers if shoppers else 0.0

    @property
    def share_would_have_bought(self) -> float | None:
        return self.truth.get("share_offers_would_have_bought")


@dataclass
class FunnelStudyReport:
    seed: int
    size: FunnelStudySize
    simulation_stats: dict
    simulate_seconds: float
    offer_api_failures: int
    decisions: int
    predictor: AbandonmentModel | None = None
    predictor_error: str = ""
    uplift: UpliftModel | None = None
    uplift_error: str = ""
    analysis: ExperimentAnalysis | None = None
    arms: dict[str, ArmReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def checks(self) -> list[tuple[str, str, str, bool | None]]:
        stats = self.simulation_stats
        rows: list[tuple[str, str, str, bool | None]] = [
            (
                "setup",
                f"{stats.get('sessions', 0):,} sessions, {stats.get('carts', 0):,} carts, "
                f"{stats.get('orders', 0):,} orders (abandonment {stats.get('cart_abandonment', 0):.1%}), "
                f"simulated in {self.simulate_seconds:.0f} s",
                f"days {self.size.predictor_days}+{self.size.learning_days}+{self.size.experiment_days}",
                None,
            ),
            (
                "offers/decide failures",
                f"{self.offer_api_failures} of {self.decisions + self.offer_api_failures}",
                "0",
                self.offer_api_failures == 0,
            ),
        ]
        predictor_ok = self.predictor is not None and self.predictor.status == "succeeded"
        auc = float((self.predictor.metrics or {}).get("auc", math.nan)) if predictor_ok else math.nan
        predictor_error = self.predictor_error or (self.predictor.error if self.predictor is not None else "no run")
        rows.append(
            (
                "abandonment model AUC (test)",
                f"{auc:.3f}" if predictor_ok else f"failed: {predictor_error}",
                f"≥ {MIN_PREDICTOR_AUC}",
                predictor_ok and auc >= MIN_PREDICTOR_AUC,
            )
        )
        if predictor_ok and "auc_baseline" in (self.predictor.metrics or {}):
            baseline = float(self.predictor.metrics["auc_baseline"])
            rows.append(("AUC of cart value and device alone", f"{baseline:.3f}", "model above it", auc > baseline))
        uplift_ok = self.uplift is not None and self.uplift.status == "succeeded"
        rows.append(
            (
                "uplift model trained",
                f"{self.uplift.decisions:,} randomized decisions" if uplift_ok else f"failed: {self.uplift_error}",
                "succeeded",
                uplift_ok,
            )
        )
        if self.arms:
            blanket, uplift = self.arms[BLANKET_ARM], self.arms[UPLIFT_ARM]
            margin_uplift = uplift.true_incremental_margin_per_shopper
            margin_blanket = blanket.true_incremental_margin_per_shopper
            srm = self.analysis.srm_p_value if self.analysis is not None else None
            share_blanket, share_uplift = blanket.share_would_have_bought, uplift.share_would_have_bought
            rows.append(
                (
                    "share of offers to shoppers who would have bought anyway, uplift vs blanket",
                    f"{_share(share_uplift)} vs {_share(share_blanket)}",
                    "reported",
                    None,
                )
            )
            # The money is the test, not the head count: a cheap offer (points) to a likely buyer can pay when a
            # 10% discount to the same buyer would not.
            rows.append(
                (
                    "offer cost on orders that would have been placed anyway, per shopper, uplift vs blanket",
                    f"{uplift.given_away_per_shopper:.3f} vs {blanket.given_away_per_shopper:.3f}",
                    "uplift < blanket",
                    uplift.given_away_per_shopper < blanket.given_away_per_shopper,
                )
            )
            rows.append(
                (
                    "true incremental margin per shopper, uplift vs blanket",
                    f"{margin_uplift:+.3f} vs {margin_blanket:+.3f}",
                    "uplift > blanket",
                    margin_uplift > margin_blanket,
                )
            )
            rows.append(
                (
                    "experiment sample ratio",
                    "n/a" if srm is None else f"p={srm:.3f}",
                    "not flagged",
                    None if self.analysis is None else not self.analysis.srm_flagged,
                )
            )
        return rows

    def predictor_rows(self) -> list[list[str]]:
        if self.predictor is None or self.predictor.status != "succeeded":
            return []
        return [
            [str(index), f"{row['count']:,}", f"{row['predicted']:.3f}", f"{row['observed']:.3f}"]
            for index, row in enumerate(self.predictor.metrics.get("reliability", []), start=1)
        ]

    def uplift_rows(self) -> list[list[str]]:
        if self.uplift is None or self.uplift.status != "succeeded":
            return []
        metrics = self.uplift.metrics or {}
        rows = []
        for kind, ate in (metrics.get("ate") or {}).items():
            qini = (metrics.get("qini") or {}).get(kind)
            estimate = ate.get("estimate")
            rows.append(
                [
                    kind,
                    f"{ate.get('n', 0):,}",
                    "n/a" if estimate is None else f"{estimate:+.3f} [{ate['low']:+.3f}, {ate['high']:+.3f}]",
                    "" if ate.get("predicted") is None else f"{ate['predicted']:+.3f}",
                    "" if qini is None else f"{_number(qini):.3f}",
                ]
            )
        return rows

    def policy_value_rows(self) -> list[list[str]]:
        """Per policy: the held-out value by inverse propensity weighting and by the doubly robust estimator
        (runs stored before the latter have "n/a")."""
        if self.uplift is None or self.uplift.status != "succeeded":
            return []
        values = (self.uplift.metrics or {}).get("policy_value") or {}
        doubly_robust = values.get("dr") or {}
        return [
            [name, _estimate(value), _estimate(doubly_robust.get(name))]
            for name, value in values.items()
            if name != "dr" and isinstance(value, dict)
        ]

    def policy_value_against_truth(self) -> str:
        """The held-out model − no offer per decision beside what the uplift arm truly earned per decision."""
        values = ((self.uplift.metrics or {}) if self.uplift is not None else {}).get("policy_value") or {}
        uplift_arm = self.arms.get(UPLIFT_ARM)
        if not values or uplift_arm is None:
            return ""
        decisions = uplift_arm.truth.get("decisions") or 0
        per_decision = uplift_arm.truth.get("true_incremental_margin", 0.0) / decisions if decisions else math.nan
        doubly_robust = values.get("dr") or {}
        r_squared = doubly_robust.get("outcome_r2")
        return (
            f"Held-out model − no offer per decision: IPW {_estimate(values.get('model_minus_none'))}, doubly robust "
            f"{_estimate(doubly_robust.get('model_minus_none'))}"
            + ("" if r_squared is None else f" (outcome model R² {r_squared:.3f})")
            + "; the uplift arm's true incremental margin "
            f"{per_decision:+.3f} per decision ({decisions:,} decisions), "
            f"{uplift_arm.true_incremental_margin_per_shopper:+.3f} per shopper."
        )

    def arm_rows(self) -> list[list[str]]:
        rows = []
        for arm in ARMS:
            report = self.arms.get(arm)
            if report is None:
                continue
            truth = report.truth
            row = [arm, f"{report.users:,}"]
            for metric in METRICS:
                result = report.metrics.get(metric)
                if result is None:
                    row.append(f"{report.control_values.get(metric, math.nan):.3f}")
                else:
                    row.append(
                        f"{result.treatment_value:.3f} ({result.relative_lift:+.1%} "
                        f"[{result.relative_low:+.1%}, {result.relative_high:+.1%}])"
                    )
            row += [
                f"{truth.get('offers', 0):,}",
                _share(report.share_would_have_bought),
                f"{truth.get('offer_cost', 0.0):,.2f}",
                f"{truth.get('cost_given_away', 0.0):,.2f}",
                f"{report.true_incremental_margin_per_shopper:+.3f}",
            ]
            rows.append(row)
        return rows


ARM_HEADER = [
    "arm",
    "users",
    "margin/user (vs none, 95% CI)",
    "revenue/user (vs none)",
    "conversion (vs none)",
    "offers",
    "would have bought",
    "offer cost",
    "cost on would-have-bought",
    "true incr. margin/shopper",
]


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _estimate(value: object) -> str:
    if not isinstance(value, dict) or value.get("value") is None:
        return "n/a"
    text = f"{value['value']:+.3f}"
    if value.get("low") is not None:
        text += f" [{value['low']:+.3f}, {value['high']:+.3f}]"
    if value.get("against"):
        text += f" vs {value['against']}"
    return text


def _number(value: object) -> float:
    if isinstance(value, dict):
        value = next((value[key] for key in ("normalized", "coefficient", "estimate", "value") if key in value), None)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def study_config(*, seed: int, size: FunnelStudySize) -> WorldConfig:
    """A small catalog and a busy cart page (a third of the sessions add to the cart), session signals on."""
    return WorldConfig(
        seed=seed,
        n_sessions=size.sessions,
        days=size.days,
        n_products=size.n_products,
        n_categories=size.n_categories,
        target_cart_rate=0.35,
        target_abandonment=0.7,
        existing_shopper_share=0.5,
        session_signals=True,
    )


def day_start_of(config: WorldConfig, day: int) -> datetime:
    return datetime.combine(config.start_date + timedelta(days=day), time(0), tzinfo=UTC)


def offers_simulation_study(
    *, seed: int = 0, size: FunnelStudySize = QUICK, progress: bool = True, keep_merchant: bool = False
) -> FunnelStudyReport:
    """Run the three phases on a throwaway merchant (deleted afterwards unless `keep_merchant`)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    merchant = merchant_create(name=f"Funnel study {seed}", slug=f"funnel-study-{seed}-{stamp}")
    try:
        say = tqdm.write if progress else None
        return offers_simulation_run(merchant=merchant, seed=seed, size=size, progress=progress, say=say)
    finally:
        if not keep_merchant:
            merchant.delete()


def offers_simulation_run(
    *,
    merchant: Merchant,
    seed: int,
    size: FunnelStudySize,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
) -> FunnelStudyReport:
    config = study_config(seed=seed, size=size)
    offer_exploration_seed(seed)
    start = timezone.now().date() - timedelta(days=size.days)
    config = WorldConfig.from_dict({**config.to_dict(), "start_date": start.isoformat(), "currency": merchant.currency})
    say = say or (lambda line: None)
    learning_start, experiment_start_day = size.predictor_days, size.predictor_days + size.learning_days

    settings = offer_settings_for(merchant=merchant)
    settings.enabled = False
    # Generous caps so that they never bind: the arms differ only by their policy.
    settings.daily_budget = Decimal("1000000")
    settings.max_offers_per_customer = 10_000
    settings.frequency_window_days = 1
    settings.offer_valid_hours = 1
    offer_settings_save(settings=settings, actor=None)

    report = FunnelStudyReport(
        seed=seed, size=size, simulation_stats={}, simulate_seconds=0.0, offer_api_failures=0, decisions=0
    )
    experiment_holder: list = []

    def back_office(day: int) -> None:
        night = day_start_of(config, day + 1)
        if day in (learning_start - 1, experiment_start_day - 1):
            # The trainings read what the simulation loaded minutes ago: give PostgreSQL's planner its numbers.
            tables_analyze([Customer, Session, Event, Order, OrderLine, OfferDecision])
        if day == learning_start - 1:
            say(f"day {day + 1}: training the abandonment model")
            try:
                report.predictor = abandonment_model_train(merchant=merchant, now=night)
            except Exception as error:  # the run is recorded as failed; the study reports it
                report.predictor_error = f"{type(error).__name__}: {error}"
                report.predictor = AbandonmentModel.objects.for_merchant(merchant).order_by("-pk").first()
            settings.enabled = True
            settings.exploration_share = 1.0
            offer_settings_save(settings=settings, actor=None)
        elif day == experiment_start_day - 1:
            say(f"day {day + 1}: training the uplift model and starting the experiment")
            try:
                report.uplift = uplift_model_train(merchant=merchant, now=night)
            except Exception as error:
                report.uplift_error = f"{type(error).__name__}: {error}"
                report.uplift = UpliftModel.objects.for_merchant(merchant).order_by("-pk").first()
            settings.exploration_share = 0.1
            offer_settings_save(settings=settings, actor=None)
            experiment = experiment_create(
                merchant=merchant,
                key=EXPERIMENT_KEY,
                name="No offer vs 10% off vs revopt uplift",
                hypothesis="Offers chosen by the uplift model earn more margin per shopper than none or a blanket 10%.",
                surface=Surface.OFFERS,
                variants=list(OFFER_VARIANTS),
                primary_metric="margin_per_user",
                secondary_metrics=["revenue_per_user", "conversion"],
                pre_period_days=experiment_start_day,
            )
            experiment_start(experiment=experiment, actor=None, now=night)
            experiment_holder.append(experiment)

    policy = OfferPolicy(max_products=config.listing_size)
    issued = api_key_create(merchant=merchant, name="funnel study")
    started = clock.perf_counter()
    try:
        simulation = simulation_run(
            merchant=merchant,
            config=config,
            policy=policy,
            transport=InProcessTransport(issued.raw_key),
            progress=progress,
            on_day_stored=back_office,
        )
    finally:
        api_key_revoke(api_key=issued.api_key)
    report.simulate_seconds = clock.perf_counter() - started
    report.simulation_stats = dict(simulation.stats)
    report.offer_api_failures = policy.failures
    report.decisions = sum(tally.decisions for tally in policy.tallies.values())
    if not experiment_holder:
        return report

    experiment = experiment_holder[0]
    experiment.refresh_from_db()
    report.analysis = experiment_analyze(experiment=experiment, as_of=day_start_of(config, config.days), save=True)
    units = {variant.key: variant.units for variant in report.analysis.variants}
    for arm in ARMS:
        results = {
            metric: next((row for row in report.analysis.metrics if row.metric == metric and row.variant == arm), None)
            for metric in METRICS
        }
        control_values = {
            metric: row.control_value for metric in METRICS for row in report.analysis.metrics if row.metric == metric
        }
        tally = policy.tallies.get(arm)
        report.arms[arm] = ArmReport(
            arm=arm,
            users=units.get(arm, 0),
            truth=tally.as_dict() if tally is not None else {},
            metrics=results,
            control_values=control_values,
        )
    return report
