import pytest

from experiments.models import AnalysisSnapshot, ExperimentStatus, Exposure
from recommendations import selectors
from recommendations.models import ServedRecommendation, ServedSource, VersionStatus
from revopt.simulator.experiment_run import day_start_of, simulated_recommender_experiment_run
from revopt.simulator.services import simulation_config_resolve
from revopt.simulator.world import WorldConfig


# Transactional: the new model is published to the cache when training commits, as in production.
@pytest.mark.django_db(transaction=True)
def test_the_simulated_experiment_assigns_shoppers_from_the_split_day_and_serves_each_variant_its_strategy(
    merchant, monkeypatch
):
    # given: a small shop whose back office trains a model and starts the experiment on day 8
    monkeypatch.setattr(selectors, "FALLBACK_MEMO_SECONDS", 0.0)
    config = WorldConfig(seed=5, n_sessions=1_500, days=14, n_products=80, n_categories=4)

    # when
    run = simulated_recommender_experiment_run(merchant=merchant, config=config, split_day=8, progress=False)

    # then: everyone exposed was exposed after the split, both variants got shoppers
    split_at = day_start_of(simulation_config_resolve(merchant=merchant, config=config), 8)
    exposures = Exposure.objects.for_merchant(merchant).filter(experiment=run.experiment)
    assert run.experiment.status == ExperimentStatus.RUNNING
    assert run.experiment.started_at == split_at
    assert not exposures.filter(exposed_at__lt=split_at).exists()
    by_variant = {variant.key: variant.units for variant in run.analysis.variants}
    assert set(by_variant) == {"popularity", "hybrid"}
    assert min(by_variant.values()) > 50
    assert sum(by_variant.values()) == exposures.count()
    # the hybrid variant is served by the trained model, the popularity variant never is
    assert run.model_version is not None and run.model_version.status == VersionStatus.ACTIVE
    after_split = ServedRecommendation.objects.for_merchant(merchant).filter(created_at__gte=split_at)
    assert after_split.filter(source=ServedSource.MODEL).exists()
    assert after_split.filter(source=ServedSource.NON_PERSONAL).exists()
    assert (
        not ServedRecommendation.objects.for_merchant(merchant)
        .filter(created_at__lt=split_at, source=ServedSource.MODEL)
        .exists()
    )
    # and the analysis the merchant's page reads was saved, with a metric row per variant
    assert AnalysisSnapshot.objects.for_merchant(merchant).filter(experiment=run.experiment).exists()
    assert run.analysis.metric("revenue_per_user", "hybrid") is not None
    assert run.recommendation_failures == 0
