import pytest

from experiments.hashing import hash
from experiments.models import Exposure
from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_start

pytestmark = pytest.mark.django_db

URL = "/api/v1/experiments/assign"
VARIANTS = (
    VariantSpec(key="popularity", name="Popularity", weight=0.5, config={"strategy": "popularity"}),
    VariantSpec(key="hybrid", name="Hybrid", weight=0.5, config={"strategy": "hybrid"}),
)


def _running(merchant, key="recs", **fields):
    experiment = experiment_create(
        merchant=merchant, key=key, name=key, variants=VARIANTS, surface="recommendations", **fields
    )
    return experiment_start(experiment=experiment, actor=None)


def test_assign_answers_the_documented_shape(api_client, merchant):
    # given
    _running(merchant)

    # when
    response = api_client.post(
        URL,
        {"customer_id": "user-42", "anonymous_id": "device-7", "attributes": {"device": "mobile", "plan": "gold"}},
        format="json",
    )

    # then
    assert response.status_code == 200
    body = response.json()
    expected_index = 0 if hash("recs", "user-42", 2) < 0.5 else 1
    assert body == {
        "unit_id": "user-42",
        "assignments": [
            {
                "experiment": "recs",
                "variant": VARIANTS[expected_index].key,
                "variant_index": expected_index,
                "config": VARIANTS[expected_index].config,
                "in_experiment": True,
                "reason": "assigned",
            }
        ],
    }


def test_a_unit_is_exposed_once_however_often_it_asks(api_client, merchant):
    # given
    experiment = _running(merchant)

    # when
    answers = [api_client.post(URL, {"anonymous_id": "device-1"}, format="json").json() for _ in range(4)]

    # then
    assert [a["assignments"][0]["reason"] for a in answers] == ["assigned", "sticky", "sticky", "sticky"]
    assert len({a["assignments"][0]["variant"] for a in answers}) == 1
    assert Exposure.objects.for_merchant(merchant).filter(experiment=experiment).count() == 1


def test_experiments_filter_and_not_running_keys(api_client, merchant):
    # given
    _running(merchant, key="recs")
    _running(merchant, key="pricing")
    experiment_create(merchant=merchant, key="draft", name="Draft", variants=VARIANTS)

    # when
    response = api_client.post(URL, {"anonymous_id": "a", "experiments": ["pricing", "draft"]}, format="json")

    # then
    assert response.status_code == 200
    assert [(a["experiment"], a["reason"]) for a in response.json()["assignments"]] == [
        ("pricing", "assigned"),
        ("draft", "not_running"),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "customer_id"),
        ({"customer_id": "", "anonymous_id": "  "}, "customer_id"),
        ({"anonymous_id": "x" * 101}, "anonymous_id"),
        ({"anonymous_id": "a", "attributes": {"device": "fridge"}}, "attributes.device"),
        ({"anonymous_id": "a", "attributes": {"segment": "x" * 101}}, "attributes.segment"),
        ({"anonymous_id": "a", "attributes": "mobile"}, "attributes"),
        ({"anonymous_id": "a", "experiments": ["recs", "unknown-test"]}, "experiments"),
        ({"anonymous_id": "a", "experiments": "recs"}, "experiments"),
        ({"anonymous_id": "a", "at": "yesterday"}, "at"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api_client, merchant, body, field):
    # given
    _running(merchant)

    # when
    response = api_client.post(URL, body, format="json")

    # then
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors and errors[0]["field"].startswith(field), errors
    assert not Exposure.objects.exists()


def test_a_non_object_body_is_a_400(api_client, merchant):
    # when
    response = api_client.post(URL, ["a", "b"], format="json")

    # then
    assert response.status_code == 400
    assert response.json()["errors"]


def test_another_merchants_key_cannot_see_or_join_this_merchants_experiment(other_api_client, merchant):
    # given
    _running(merchant, key="recs")

    # when
    by_key = other_api_client.post(URL, {"anonymous_id": "a", "experiments": ["recs"]}, format="json")
    everything = other_api_client.post(URL, {"anonymous_id": "a"}, format="json")

    # then
    assert by_key.status_code == 400
    assert by_key.json()["errors"][0]["field"] == "experiments"
    assert everything.status_code == 200
    assert everything.json() == {"unit_id": "a", "assignments": []}
    assert not Exposure.objects.exists()


def test_unauthenticated_is_401(anonymous_api_client, merchant):
    # given
    _running(merchant)

    # when
    response = anonymous_api_client.post(URL, {"anonymous_id": "a"}, format="json")

    # then
    assert response.status_code == 401
    assert response.json()["errors"][0]["field"] == "authorization"
    assert not Exposure.objects.exists()


def test_get_is_not_allowed(api_client):
    # when / then
    assert api_client.get(URL).status_code == 405
