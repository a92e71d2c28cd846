"""Recommendations read the visitor's experiment variant: "popularity vs hybrid" runs for real."""

import pytest

from events.models import Customer
from experiments.hashing import hash
from experiments.models import ExperimentSettings, Exposure
from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_roll_out, experiment_start
from recommendations.selectors import ServedExperiment, recommendations_for
from tests.factories.experiments import ExposureFactory

from .serving_shop import build_shop

pytestmark = pytest.mark.django_db

URL = "/api/v1/recommendations"
VARIANTS = (
    VariantSpec(key="popularity", name="Popularity", weight=0.5, config={"strategy": "popularity"}),
    VariantSpec(key="hybrid", name="Hybrid", weight=0.5, config={"strategy": "hybrid"}),
)


@pytest.fixture
def shop(merchant):
    return build_shop(merchant)


def _experiment(merchant):
    experiment = experiment_create(
        merchant=merchant, key="recs-test", name="Popularity vs hybrid", variants=VARIANTS, surface="recommendations"
    )
    return experiment_start(experiment=experiment, actor=None)


def _expose(experiment, customer, variant_key):
    ExposureFactory(variant=experiment.variants.get(key=variant_key), customer=customer)


def test_the_popularity_variant_serves_the_non_personal_mix(shop):
    # given alice, whose personal list is lamp, stove, mug..., exposed to the popularity variant
    experiment = _experiment(shop.merchant)
    _expose(experiment, shop.alice, "popularity")

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)
    stranger = recommendations_for(merchant=shop.merchant, placement="home", anonymous_id="nobody", k=3, record=False)

    # then the opted-out path: a stranger's list, nothing from her history
    assert result.source == "non_personal"
    assert result.experiment == ServedExperiment("recs-test", "popularity")
    assert shop.skus(result.items) == shop.skus(stranger.items)
    assert all(item.reason not in ("viewed", "purchased", "for_you") for item in result.items)


def test_the_hybrid_variant_serves_todays_personal_list(shop):
    # given
    experiment = _experiment(shop.merchant)
    _expose(experiment, shop.alice, "hybrid")

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=5)

    # then
    assert result.source == "model"
    assert result.experiment == ServedExperiment("recs-test", "hybrid")
    assert shop.skus(result.items) == ["LAMP-1", "STOVE-1", "MUG-1", "BOOT-1", "SOCK-1"]


def test_without_an_experiment_nothing_changes(shop):
    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=5)

    # then
    assert result.experiment is None
    assert shop.skus(result.items) == ["LAMP-1", "STOVE-1", "MUG-1", "BOOT-1", "SOCK-1"]


def test_a_held_out_visitor_gets_todays_behaviour_and_no_experiment(shop):
    # given a 50% global holdout whose seed puts alice in it
    seed = next(f"holdout-{n}" for n in range(100) if hash(f"holdout-{n}", "alice", 2) < 0.5)
    ExperimentSettings.objects.create(merchant=shop.merchant, holdout_share=0.5, holdout_seed=seed)
    _experiment(shop.merchant)

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=5)

    # then
    assert result.experiment is None
    assert result.source == "model"
    assert not Exposure.objects.for_merchant(shop.merchant).exists()


def test_a_new_visitor_is_assigned_and_exposed_once_through_the_list_requests(api_client, shop):
    # given
    _experiment(shop.merchant)

    # when the same new visitor loads three pages
    bodies = [api_client.get(URL, {"placement": "home", "anonymous_id": "device-1", "k": 3}).json() for _ in range(3)]

    # then
    experiments = [body["experiment"] for body in bodies]
    assert experiments[0]["key"] == "recs-test"
    assert experiments[0]["variant"] in ("popularity", "hybrid")
    assert experiments == [experiments[0]] * 3
    expected_source = "non_personal" if experiments[0]["variant"] == "popularity" else "model"
    assert {body["source"] for body in bodies} == {expected_source}
    exposure = Exposure.objects.for_merchant(shop.merchant).get()
    assert exposure.variant.key == experiments[0]["variant"]
    assert exposure.unit_id == "device-1"


def test_the_preview_writes_nothing(shop):
    # given
    _experiment(shop.merchant)

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", anonymous_id="device-9", k=3, record=False)

    # then
    assert result.experiment is not None
    assert not Exposure.objects.for_merchant(shop.merchant).exists()
    assert (
        not Customer.objects.for_merchant(shop.merchant).filter(anonymous_identities__anonymous_id="device-9").exists()
    )


def test_a_rolled_out_popularity_winner_serves_everyone_the_non_personal_mix(api_client, shop):
    # given
    experiment = _experiment(shop.merchant)
    experiment_roll_out(experiment=experiment, variant=experiment.variants.get(key="popularity"), actor=None)

    # when
    body = api_client.get(URL, {"placement": "home", "customer_id": "alice", "k": 3}).json()

    # then
    assert body["experiment"] == {"key": "recs-test", "variant": "popularity"}
    assert body["source"] == "non_personal"
    assert not Exposure.objects.for_merchant(shop.merchant).exists()


def test_an_exposed_visitor_costs_one_more_query(api_client, shop, django_assert_max_num_queries):
    # given a warm cache, a running experiment and alice already exposed
    experiment = _experiment(shop.merchant)
    _expose(experiment, shop.alice, "hybrid")
    params = {"placement": "pdp", "product_id": "TENT-1", "customer_id": "alice", "session_id": "s-1", "k": 10}
    api_client.get(URL, params)

    # when / then: the five queries of a request without experiments, and alice's exposure
    with django_assert_max_num_queries(6):
        response = api_client.get(URL, params)
    assert response.json()["experiment"] == {"key": "recs-test", "variant": "hybrid"}
