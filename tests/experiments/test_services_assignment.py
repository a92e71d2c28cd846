from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.utils import timezone

from events.models import AnonymousIdentity, Customer, OrderStatus
from events.services import event_batch_ingest
from experiments.hashing import bucket_ranges, choose_variation, hash, in_namespace
from experiments.models import ContextualDecision, Experiment, ExperimentSettings, Exposure
from experiments.selectors import assignment as assignment_selectors
from experiments.services.assignment import (
    AssignmentRequestError,
    assignments_for_unit,
    exposures_merge,
    surface_assignment,
)
from experiments.services.lifecycle import (
    VariantSpec,
    experiment_create,
    experiment_roll_out,
    experiment_start,
    experiment_stop,
    experiment_weights_update,
)
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.experiments import ExposureFactory, LayerFactory, experiment_with_variants

pytestmark = pytest.mark.django_db

AT = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
IDS = [f"visitor-{n}" for n in range(400)]


def _running(merchant, key="recs", weights=(0.5, 0.5), surface="recommendations", **fields):
    variants = [
        VariantSpec(key="control" if index == 0 else f"v{index}", name=f"V{index}", weight=weight, config={"n": index})
        for index, weight in enumerate(weights)
    ]
    experiment = experiment_create(merchant=merchant, key=key, name=key, variants=variants, surface=surface, **fields)
    return experiment_start(experiment=experiment, actor=None, now=AT - timedelta(days=1))


def _variant_by_hash(seed, unit_id, weights=(0.5, 0.5)):
    return choose_variation(hash(seed, unit_id, 2), bucket_ranges(len(weights), 1.0, list(weights)))


def _one(merchant, **kwargs):
    kwargs.setdefault("at", AT)
    (assignment,) = assignments_for_unit(merchant=merchant, **kwargs)
    return assignment


# --- bucketing and the exposure log -------------------------------------------------------------------


def test_a_new_anonymous_visitor_is_bucketed_by_hash_and_exposed_once(merchant):
    # given
    _running(merchant)

    # when: the same visitor asks three times
    answers = [_one(merchant, anonymous_id="device-1", attributes={"device": "mobile"}) for _ in range(3)]

    # then
    first = answers[0]
    assert first.reason == "assigned"
    assert first.in_experiment is True
    assert first.variant_index == _variant_by_hash("recs", "device-1")
    assert first.config == {"n": first.variant_index}
    assert first.hash_value == hash("recs", "device-1", 2)
    assert [answer.reason for answer in answers[1:]] == ["sticky", "sticky"]
    assert {answer.variant_key for answer in answers} == {first.variant_key}
    exposure = Exposure.objects.for_merchant(merchant).get()
    assert exposure.unit_id == "device-1"
    assert exposure.device == "mobile"
    assert exposure.exposed_at == AT
    assert exposure.variant.key == first.variant_key
    # the visitor became an anonymous customer, as ingest would have made them
    alias = AnonymousIdentity.objects.for_merchant(merchant).get(anonymous_id="device-1")
    assert exposure.customer == alias.customer
    assert alias.customer.external_id is None


def test_the_user_id_is_the_unit_when_known(merchant):
    # given
    _running(merchant)

    # when
    answer = _one(merchant, customer_external_id="user-9", anonymous_id="device-9")

    # then
    assert answer.variant_index == _variant_by_hash("recs", "user-9")
    assert Exposure.objects.for_merchant(merchant).get().unit_id == "user-9"


def test_a_preview_writes_nothing_and_answers_like_the_real_thing(merchant):
    # given
    _running(merchant)

    # when
    preview = _one(merchant, anonymous_id="device-1", record=False)

    # then
    assert not Customer.objects.for_merchant(merchant).exists()
    assert not Exposure.objects.for_merchant(merchant).exists()
    assert preview.variant_key == _one(merchant, anonymous_id="device-1").variant_key


def test_a_preview_of_an_exposed_customer_shows_their_stored_variant(merchant):
    # given a customer exposed to the variant the hash would not give them
    experiment = _running(merchant)
    customer = CustomerFactory(merchant=merchant, external_id="user-1")
    stored = 1 - _variant_by_hash("recs", "user-1")
    ExposureFactory(variant=experiment.variants.get(index=stored), customer=customer)

    # when
    preview = _one(merchant, customer_external_id="user-1", record=False)

    # then
    assert preview.reason == "sticky"
    assert preview.variant_index == stored


def test_the_service_splits_units_as_the_weights_say(merchant):
    # given many units (bucketed without writing, to keep the test short)
    _running(merchant, weights=(0.2, 0.3, 0.5))
    units = [f"u-{n}" for n in range(3000)]

    # when
    counts = [0, 0, 0]
    for unit in units:
        counts[_one(merchant, anonymous_id=unit, record=False).variant_index] += 1

    # then
    shares = [count / len(units) for count in counts]
    assert shares == pytest.approx([0.2, 0.3, 0.5], abs=0.03)


# --- sticky bucketing -----------------------------------------------------------------------------------


def test_changing_weights_mid_test_moves_no_one_already_exposed(merchant):
    # given 400 visitors assigned at 50/50
    experiment = _running(merchant, weights=(0.5, 0.5))
    before = {unit: _one(merchant, anonymous_id=unit).variant_key for unit in IDS}

    # when the merchant moves to 90/10
    experiment_weights_update(experiment=experiment, weights={"control": 0.9, "v1": 0.1}, now=AT)
    after = {unit: _one(merchant, anonymous_id=unit) for unit in IDS}

    # then everyone keeps their variant, though the new weights alone would move about 40% of them
    assert {unit: answer.variant_key for unit, answer in after.items()} == before
    assert {answer.reason for answer in after.values()} == {"sticky"}
    rebucketed = {unit: "control" if _variant_by_hash("recs", unit, (0.9, 0.1)) == 0 else "v1" for unit in IDS}
    assert sum(rebucketed[unit] != before[unit] for unit in IDS) > 100
    assert Exposure.objects.for_merchant(merchant).count() == len(IDS)
    # and only new visitors follow 90/10
    newcomers = [_one(merchant, anonymous_id=f"new-{n}") for n in range(400)]
    share = sum(answer.variant_key == "control" for answer in newcomers) / len(newcomers)
    assert 0.86 < share < 0.94


def test_the_variant_survives_log_in_as_a_new_user(merchant):
    # given an anonymous visitor assigned by their device id; the hash of their user id says otherwise
    _running(merchant)
    device, user = next(
        (f"device-{n}", f"user-{n}")
        for n in range(100)
        if _variant_by_hash("recs", f"device-{n}") != _variant_by_hash("recs", f"user-{n}")
    )
    anonymous = _one(merchant, anonymous_id=device)

    # when they log in (the storefront sends both ids), then come back on another device
    logged_in = _one(merchant, customer_external_id=user, anonymous_id=device)
    other_device = _one(merchant, customer_external_id=user, anonymous_id="tablet-2")

    # then
    assert logged_in.variant_key == other_device.variant_key == anonymous.variant_key
    assert logged_in.reason == other_device.reason == "sticky"
    customer = Customer.objects.for_merchant(merchant).get(external_id=user)
    assert Exposure.objects.for_merchant(merchant).get().customer == customer


def test_exposures_follow_a_merge_into_a_known_customer_through_ingest(merchant):
    # given a known customer, never exposed, and their anonymous session that was assigned
    _running(merchant)
    CustomerFactory(merchant=merchant, external_id="known-user")
    anonymous = _one(merchant, anonymous_id="fresh-device")

    # when the shop reports the log-in through the events API
    event_batch_ingest(
        merchant=merchant,
        events=[
            {
                "type": "identify",
                "messageId": "login-1",
                "userId": "known-user",
                "anonymousId": "fresh-device",
                "timestamp": timezone.now().isoformat(),
                "traits": {},
            }
        ],
    )

    # then the exposure moved to the known customer, who keeps the variant on every device
    exposure = Exposure.objects.for_merchant(merchant).get()
    assert exposure.customer.external_id == "known-user"
    again = _one(merchant, customer_external_id="known-user", anonymous_id="laptop")
    assert (again.reason, again.variant_key) == ("sticky", anonymous.variant_key)


def test_a_merge_keeps_the_identified_customers_own_exposure(merchant):
    # given an identified customer exposed to one variant, and an anonymous session of theirs exposed
    # to the other one before they logged in
    experiment = _running(merchant)
    known = CustomerFactory(merchant=merchant, external_id="known-user")
    ExposureFactory(variant=experiment.variants.get(index=0), customer=known)
    anonymous_customer = CustomerFactory(merchant=merchant, external_id=None)
    AnonymousIdentity.objects.create(merchant=merchant, anonymous_id="old-device", customer=anonymous_customer)
    ExposureFactory(variant=experiment.variants.get(index=1), customer=anonymous_customer, unit_id="old-device")

    # when they log in on that device
    answer = _one(merchant, customer_external_id="known-user", anonymous_id="old-device")

    # then one customer, one exposure: the identified customer's
    assert (answer.reason, answer.variant_index) == ("sticky", 0)
    exposures = list(Exposure.objects.for_merchant(merchant).values_list("customer_id", "variant__index"))
    assert exposures == [(known.pk, 0)]
    anonymous_customer.refresh_from_db()
    assert anonymous_customer.merged_into == known


def test_exposures_merge_moves_only_what_the_target_lacks(merchant, other_merchant):
    # given
    first, second = _running(merchant, key="first"), _running(merchant, key="second")
    source, target = CustomerFactory(merchant=merchant), CustomerFactory(merchant=merchant)
    ExposureFactory(variant=first.variants.get(index=1), customer=source)
    ExposureFactory(variant=second.variants.get(index=1), customer=source)
    ExposureFactory(variant=first.variants.get(index=0), customer=target)

    # when
    moved = exposures_merge(merchant_id=merchant.pk, source_id=source.pk, target_id=target.pk)

    # then
    assert moved == 1
    rows = set(Exposure.objects.for_merchant(merchant).values_list("customer_id", "experiment__key", "variant__index"))
    assert rows == {(target.pk, "first", 0), (target.pk, "second", 1)}


def test_an_exposure_stored_by_a_concurrent_request_wins(merchant):
    # given a customer another request exposed (to the variant their hash would not give) right after
    # this request looked them up
    experiment = _running(merchant)
    customer = CustomerFactory(merchant=merchant, external_id="user-1")
    stored = 1 - _variant_by_hash("recs", "user-1")
    ExposureFactory(variant=experiment.variants.get(index=stored), customer=customer)
    not_yet_seen = assignment_selectors.UnitLookup(customer.pk, {}, customer.pk)

    # when
    with mock.patch("experiments.services.assignment.unit_lookup", return_value=not_yet_seen):
        answer = _one(merchant, customer_external_id="user-1")

    # then no error, no second row, and the stored variant is the answer
    assert (answer.reason, answer.variant_index) == ("sticky", stored)
    assert Exposure.objects.for_merchant(merchant).count() == 1


# --- who is in ------------------------------------------------------------------------------------------


def test_the_global_holdout_sees_no_experiment_and_is_not_logged(merchant):
    # given a 30% holdout
    ExperimentSettings.objects.create(merchant=merchant, holdout_share=0.3, holdout_seed="hold")
    _running(merchant)

    # when
    answers = {unit: _one(merchant, anonymous_id=unit) for unit in IDS[:200]}

    # then
    held = {unit for unit, answer in answers.items() if answer.reason == "holdout"}
    assert held == {unit for unit in IDS[:200] if hash("hold", unit, 2) < 0.3}
    assert all(answers[unit].variant_key is None and answers[unit].config == {} for unit in held)
    assert Exposure.objects.for_merchant(merchant).count() == 200 - len(held)


def test_device_targeting(merchant):
    # given
    _running(merchant, targeting={"devices": ["mobile"]})

    # when
    desktop = _one(merchant, anonymous_id="d-1", attributes={"device": "desktop"})
    mobile = _one(merchant, anonymous_id="d-2", attributes={"device": "mobile"})

    # then
    assert (desktop.reason, desktop.in_experiment, desktop.variant_key) == ("not_targeted", False, None)
    assert mobile.reason == "assigned"
    assert list(Exposure.objects.for_merchant(merchant).values_list("unit_id", flat=True)) == ["d-2"]


def test_an_exposed_unit_keeps_its_variant_on_a_device_the_test_does_not_target(merchant):
    # given a mobile-only test and a shopper exposed on their phone
    _running(merchant, targeting={"devices": ["mobile"]})
    phone = _one(merchant, customer_external_id="user-1", attributes={"device": "mobile"})

    # when they come back on a desktop
    desktop = _one(merchant, customer_external_id="user-1", attributes={"device": "desktop"})

    # then: consistent across devices
    assert (desktop.reason, desktop.variant_key) == ("sticky", phone.variant_key)


def test_returning_visitor_targeting_reads_orders_placed_before_the_request(merchant):
    # given a test for returning visitors; one customer ordered before, one after, one only cancelled
    _running(merchant, targeting={"visitor": "returning"})
    OrderFactory(
        merchant=merchant,
        customer=CustomerFactory(merchant=merchant, external_id="buyer"),
        placed_at=AT - timedelta(days=3),
    )
    OrderFactory(
        merchant=merchant,
        customer=CustomerFactory(merchant=merchant, external_id="later"),
        placed_at=AT + timedelta(days=3),
    )
    OrderFactory(
        merchant=merchant,
        customer=CustomerFactory(merchant=merchant, external_id="cancelled"),
        placed_at=AT - timedelta(days=3),
        status=OrderStatus.CANCELLED,
    )

    # when / then
    assert _one(merchant, customer_external_id="buyer").reason == "assigned"
    assert _one(merchant, customer_external_id="later").reason == "not_targeted"
    assert _one(merchant, customer_external_id="cancelled").reason == "not_targeted"
    assert _one(merchant, customer_external_id="stranger").reason == "not_targeted"


def test_segment_targeting(merchant):
    # given
    _running(merchant, targeting={"segments": ["Champions"]})

    # when / then
    assert _one(merchant, anonymous_id="a", attributes={"segment": "champions"}).reason == "assigned"
    assert _one(merchant, anonymous_id="b", attributes={"segment": "Hibernating"}).reason == "not_targeted"
    assert _one(merchant, anonymous_id="c").reason == "not_targeted"


def test_experiments_in_one_layer_share_no_shopper(merchant):
    # given two running experiments splitting a layer
    layer = LayerFactory(merchant=merchant, key="home-page")
    _running(merchant, key="first", layer=layer, layer_start=0.0, layer_end=0.5)
    _running(merchant, key="second", layer=layer, layer_start=0.5, layer_end=1.0)

    # when
    answers = {unit: assignments_for_unit(merchant=merchant, anonymous_id=unit, at=AT) for unit in IDS[:200]}

    # then: each shopper is in exactly one of them, the one their layer position falls in
    for unit, (first, second) in answers.items():
        assert (first.experiment_key, second.experiment_key) == ("first", "second")
        assert first.in_experiment != second.in_experiment
        outside = second if first.in_experiment else first
        assert outside.reason == "not_in_layer"
        assert first.in_experiment is in_namespace(unit, ("home-page", 0.0, 0.5))


def test_reduced_coverage(merchant):
    # given
    _running(merchant, coverage=0.2)

    # when
    answers = [_one(merchant, anonymous_id=unit) for unit in IDS]

    # then
    covered = sum(answer.in_experiment for answer in answers) / len(answers)
    assert 0.14 < covered < 0.26
    assert {answer.reason for answer in answers} == {"assigned", "not_covered"}
    assert Exposure.objects.for_merchant(merchant).count() == sum(answer.in_experiment for answer in answers)


# --- lifecycle as the storefront sees it --------------------------------------------------------------


def test_a_rolled_out_winner_is_everyones_config_and_logs_nothing(merchant):
    # given an exposed shopper, then the experiment rolled out to v1
    experiment = _running(merchant)
    exposed = next(unit for unit in IDS if _variant_by_hash("recs", unit) == 0)
    _one(merchant, anonymous_id=exposed)
    experiment_roll_out(experiment=experiment, variant=experiment.variants.get(index=1), actor=None, now=AT)

    # when
    answers = [_one(merchant, anonymous_id=unit) for unit in (exposed, "newcomer")]

    # then
    for answer in answers:
        assert (answer.reason, answer.variant_key, answer.config, answer.in_experiment) == (
            "rolled_out",
            "v1",
            {"n": 1},
            False,
        )
    assert Exposure.objects.for_merchant(merchant).count() == 1


def test_stopped_and_draft_experiments_asked_for_by_key_say_so(merchant):
    # given
    stopped = _running(merchant, key="stopped")
    experiment_stop(experiment=stopped, actor=None, now=AT)
    experiment_with_variants(merchant=merchant, key="draft", surface="recommendations")

    # when
    answers = assignments_for_unit(merchant=merchant, anonymous_id="a", experiment_keys=["stopped", "draft"], at=AT)

    # then
    assert [(a.experiment_key, a.reason, a.variant_key, a.config) for a in answers] == [
        ("stopped", "not_running", None, {}),
        ("draft", "not_running", None, {}),
    ]
    assert not Exposure.objects.for_merchant(merchant).exists()


def test_without_keys_every_live_experiment_answers_in_key_order(merchant):
    # given
    _running(merchant, key="b-offers", surface="offers")
    _running(merchant, key="a-recs")
    stopped = _running(merchant, key="c-stopped")
    experiment_stop(experiment=stopped, actor=None, now=AT)

    # when
    everything = assignments_for_unit(merchant=merchant, anonymous_id="a", at=AT)
    offers = assignments_for_unit(merchant=merchant, anonymous_id="a", surface="offers", at=AT)

    # then
    assert [a.experiment_key for a in everything] == ["a-recs", "b-offers"]
    assert [a.experiment_key for a in offers] == ["b-offers"]


def test_pricing_experiments_never_assign_shoppers(merchant):
    # given a running pricing experiment: it randomises products, so a price never depends on the shopper
    _running(merchant, key="a-recs")
    _running(merchant, key="b-prices", surface="pricing")

    # when
    everything = assignments_for_unit(merchant=merchant, anonymous_id="a", at=AT)
    pricing = surface_assignment(merchant=merchant, surface="pricing", customer_external_id=None, anonymous_id="a")

    # then
    assert [a.experiment_key for a in everything] == ["a-recs"]
    assert pricing is None
    assert not Exposure.objects.for_merchant(merchant).filter(experiment__key="b-prices").exists()
    with pytest.raises(AssignmentRequestError) as refused:
        assignments_for_unit(merchant=merchant, anonymous_id="a", experiment_keys=["b-prices"], at=AT)
    assert refused.value.field == "experiments"
    assert "/api/v1/prices" in str(refused.value)


def test_another_merchants_experiment_is_unknown(merchant, other_merchant):
    # given
    _running(other_merchant, key="theirs")

    # when / then
    with pytest.raises(AssignmentRequestError) as error:
        assignments_for_unit(merchant=merchant, anonymous_id="a", experiment_keys=["theirs"])
    assert error.value.field == "experiments"
    assert assignments_for_unit(merchant=merchant, anonymous_id="a") == []
    assert not Exposure.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "customer_id"),
        ({"customer_external_id": "  ", "anonymous_id": ""}, "customer_id"),
        ({"anonymous_id": "x" * 101}, "anonymous_id"),
        ({"anonymous_id": "a", "attributes": {"device": "fridge"}}, "attributes.device"),
        ({"anonymous_id": "a", "attributes": {"segment": 7}}, "attributes.segment"),
        ({"anonymous_id": "a", "experiment_keys": ["recs", "nope"]}, "experiments"),
    ],
)
def test_bad_requests_name_the_field(merchant, kwargs, field):
    # given
    _running(merchant)

    # when / then
    with pytest.raises(AssignmentRequestError) as error:
        assignments_for_unit(merchant=merchant, **kwargs)
    assert error.value.field == field
    assert not Exposure.objects.exists()


# --- the memo and the cost ------------------------------------------------------------------------------


def test_a_start_in_this_process_is_seen_at_once_and_other_changes_within_the_memo(merchant, settings):
    # given a merchant asked about before anything ran (the memo now says: nothing live)
    experiment = experiment_with_variants(merchant=merchant, key="recs")
    assert assignments_for_unit(merchant=merchant, anonymous_id="a", at=AT) == []

    # when this process starts it, then another process stops it (a direct write, no service here)
    experiment_start(experiment=experiment, actor=None, now=AT)
    started = assignments_for_unit(merchant=merchant, anonymous_id="a", at=AT)
    Experiment.objects.filter(pk=experiment.pk).update(status="stopped")
    remembered = assignments_for_unit(merchant=merchant, anonymous_id="a", at=AT)
    assignment_selectors.live_experiments_forget(merchant_id=merchant.pk)
    reread = assignments_for_unit(merchant=merchant, anonymous_id="a", at=AT)

    # then
    assert [a.experiment_key for a in started] == ["recs"]
    assert [a.reason for a in remembered] == ["sticky"]
    assert reread == []


def test_a_surface_without_live_experiments_costs_no_query(merchant, django_assert_num_queries):
    # given a live experiment on another surface, and the memo warm
    _running(merchant, surface="pricing")
    surface_assignment(merchant=merchant, surface="recommendations", customer_external_id="u", anonymous_id=None)

    # when / then
    with django_assert_num_queries(0):
        assert (
            surface_assignment(merchant=merchant, surface="recommendations", customer_external_id="u", anonymous_id="a")
            is None
        )


def test_an_exposed_unit_costs_one_query(merchant, django_assert_num_queries):
    # given
    _running(merchant)
    _one(merchant, customer_external_id="user-1", anonymous_id="device-1")

    # when / then: the customer and their exposure in one statement
    with django_assert_num_queries(1):
        assert _one(merchant, customer_external_id="user-1", anonymous_id="device-1").reason == "sticky"


def test_a_known_customer_seen_by_a_new_experiment_costs_two_queries(merchant, django_assert_num_queries):
    # given a customer revopt knows, and a live experiment they have not seen
    CustomerFactory(merchant=merchant, external_id="user-1")
    _running(merchant)
    assignment_selectors.live_experiments(merchant_id=merchant.pk)

    # when / then: the look-up, then the exposure insert
    with django_assert_num_queries(2):
        assert _one(merchant, customer_external_id="user-1").reason == "assigned"


def test_surface_assignment_prefers_the_assignment_whose_config_applies(merchant):
    # given two experiments of one surface in one layer: the unit is in one only
    layer = LayerFactory(merchant=merchant, key="recs-layer")
    _running(merchant, key="a-first", layer=layer, layer_start=0.0, layer_end=0.5)
    _running(merchant, key="b-second", layer=layer, layer_start=0.5, layer_end=1.0)
    unit = next(u for u in IDS if not in_namespace(u, ("recs-layer", 0.0, 0.5)))

    # when
    chosen = surface_assignment(
        merchant=merchant, surface="recommendations", customer_external_id=None, anonymous_id=unit
    )

    # then
    assert chosen.experiment_key == "b-second"
    assert chosen.in_experiment is True


# --- contextual bandits -----------------------------------------------------------------------------------


def test_a_contextual_bandit_decides_per_request_and_logs_each_decision(merchant):
    # given
    _running(merchant, kind="contextual_bandit")

    # when
    answers = [_one(merchant, customer_external_id="user-1", attributes={"device": "tablet"}) for _ in range(3)]

    # then
    assert {answer.reason for answer in answers} == {"decided"}
    decisions = list(ContextualDecision.objects.for_merchant(merchant).order_by("pk"))
    assert len(decisions) == 3
    assert [decision.variant.key for decision in decisions] == [answer.variant_key for answer in answers]
    assert decisions[0].context["device"] == "tablet"
    assert decisions[0].context["returning"] is False
    assert decisions[0].customer.external_id == "user-1"
    assert not Exposure.objects.for_merchant(merchant).exists()


def test_a_contextual_bandit_preview_decides_nothing(merchant):
    # given
    _running(merchant, kind="contextual_bandit")

    # when
    answer = _one(merchant, customer_external_id="user-1", record=False)

    # then
    assert (answer.reason, answer.in_experiment, answer.variant_key) == ("preview", False, None)
    assert not ContextualDecision.objects.exists()


# --- concurrency (PostgreSQL) -------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_requests_of_one_shopper_make_one_customer_and_one_exposure(merchant):
    # given
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers, so there is no race to test")
    _running(merchant, key="first")
    _running(merchant, key="second")
    barrier = threading.Barrier(6)
    answers, errors = [], []

    def ask():
        try:
            barrier.wait()
            answers.append(assignments_for_unit(merchant=merchant, anonymous_id="brand-new-device", at=AT))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    # when six requests of a shopper never seen arrive at once
    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then: no error, one customer, one exposure per experiment, and every answer agrees with it
    assert not errors, errors
    assert Customer.objects.for_merchant(merchant).count() == 1
    stored = dict(Exposure.objects.for_merchant(merchant).values_list("experiment__key", "variant__key"))
    assert set(stored) == {"first", "second"}
    assert Exposure.objects.for_merchant(merchant).count() == 2
    for answer in answers:
        assert {a.experiment_key: a.variant_key for a in answer} == stored
