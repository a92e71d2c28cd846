"""An experiment run for real on the simulated shop: popularity vs revopt's hybrid recommendations.

The shop runs with revopt's recommendations policy. Until `split_day` there is no model, so every
shopper sees the same popularity fallback: that stretch is the experiment's pre-period (CUPED reads it).
At the split the back office does what a merchant would: a data-quality report, a recommender training,
and an experiment started with a 50/50 split. From then on `GET /api/v1/recommendations` assigns each
shopper through the experiments engine (sticky, exposure logged once) and serves the variant's strategy.
The analysis is the one the merchant's results page shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from events.services import data_quality_report_create
from experiments.models import Experiment, Surface
from experiments.results import ExperimentAnalysis
from experiments.services.analysis import experiment_analyze
from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_start
from recommendations.models import RecommenderVersion
from recommendations.services.training import recommender_train
from revopt.tenancy.models import Merchant

from .models import SimulationRun
from .policy import RecommendationPolicy
from .services import simulation_config_resolve, simulation_run
from .world import WorldConfig

RECOMMENDER_VARIANTS: tuple[VariantSpec, ...] = (
    VariantSpec(key="popularity", name="Popularity", weight=0.5, config={"strategy": "popularity"}),
    VariantSpec(key="hybrid", name="revopt hybrid", weight=0.5, config={"strategy": "hybrid"}),
)


@dataclass(frozen=True)
class SimulatedExperiment:
    experiment: Experiment
    analysis: ExperimentAnalysis
    simulation: SimulationRun
    model_version: RecommenderVersion | None
    recommendation_failures: int


def day_start_of(config: WorldConfig, day: int) -> datetime:
    return datetime.combine(config.start_date + timedelta(days=day), time(0), tzinfo=UTC)


def simulated_recommender_experiment_run(
    *,
    merchant: Merchant,
    config: WorldConfig,
    split_day: int,
    experiment_key: str = "recommender-popularity-vs-hybrid",
    variants: Sequence[VariantSpec] = RECOMMENDER_VARIANTS,
    secondary_metrics: Sequence[str] = ("conversion", "aov", "items_per_order"),
    progress: bool = True,
) -> SimulatedExperiment:
    if not 1 <= split_day < config.days:
        raise ValueError("split_day must fall inside the simulated period")
    config = simulation_config_resolve(merchant=merchant, config=config)
    split_at = day_start_of(config, split_day)
    policy = RecommendationPolicy(max_products=config.listing_size)
    trained: list[RecommenderVersion] = []
    experiment = experiment_create(
        merchant=merchant,
        key=experiment_key,
        name="Popularity vs revopt hybrid recommendations",
        hypothesis="Personal recommendations on category pages raise revenue per active user.",
        surface=Surface.RECOMMENDATIONS,
        variants=list(variants),
        primary_metric="revenue_per_user",
        secondary_metrics=list(secondary_metrics),
        pre_period_days=split_day,
    )

    def back_office(day: int) -> None:
        if day != split_day - 1:
            return
        data_quality_report_create(merchant=merchant, now=split_at)
        trained.append(recommender_train(merchant=merchant, trigger="simulation", now=split_at))
        experiment_start(experiment=experiment, actor=None, now=split_at)

    simulation = simulation_run(
        merchant=merchant, config=config, policy=policy, progress=progress, on_day_stored=back_office
    )
    end = day_start_of(config, config.days)
    experiment.refresh_from_db()
    analysis = experiment_analyze(experiment=experiment, as_of=end, save=True, backfill_daily=True)
    return SimulatedExperiment(
        experiment=experiment,
        analysis=analysis,
        simulation=simulation,
        model_version=trained[0] if trained else None,
        recommendation_failures=policy.failures,
    )
