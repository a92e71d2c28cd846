import pytest

from experiments.assignment import (
    Decision,
    ExperimentPlan,
    Holdout,
    Reason,
    Targeting,
    UnitAttributes,
    Visitor,
    decide,
    ranges_overlap,
)
from experiments.hashing import hash, in_namespace

PLAN = ExperimentPlan(seed="checkout-test", weights=(0.5, 0.5))
ANYONE = UnitAttributes(device="mobile", segment="Champions", returning=False)
IDS = [f"unit-{n}" for n in range(2_000)]


def test_an_eligible_unit_gets_the_variant_its_v2_hash_falls_in():
    # given
    position = hash("checkout-test", "user-42", 2)

    # when
    decision = decide(plan=PLAN, unit_id="user-42", attributes=ANYONE)

    # then
    assert decision == Decision(0 if position < 0.5 else 1, Reason.ASSIGNED, position)


def test_the_same_unit_always_gets_the_same_variant():
    # when
    decisions = {decide(plan=PLAN, unit_id="user-42", attributes=ANYONE) for _ in range(5)}

    # then
    assert len(decisions) == 1


def test_growthbook_experiment_lands_in_the_sdk_variation():
    # given GrowthBook's "creates experiments properly" case: seed "feature", ranges [0, 0.1), [0.1, 1),
    # coverage 0.99, anonId "123" (bucket 0.5231) gets variation 1
    plan = ExperimentPlan(seed="feature", weights=(0.1, 0.9), coverage=0.99)

    # when
    decision = decide(plan=plan, unit_id="123", attributes=ANYONE)

    # then
    assert decision.variant_index == 1
    assert decision.hash_value == 0.5231


def test_reduced_coverage_leaves_units_out_and_never_moves_the_ones_in():
    # given
    full = ExperimentPlan(seed="s", weights=(0.5, 0.5), coverage=1.0)
    half = ExperimentPlan(seed="s", weights=(0.5, 0.5), coverage=0.5)

    # when
    decisions = [
        (decide(plan=full, unit_id=u, attributes=ANYONE), decide(plan=half, unit_id=u, attributes=ANYONE)) for u in IDS
    ]

    # then: about half are out, and each unit that is in has the variant it has at full coverage
    out = [partial for _, partial in decisions if partial.reason == Reason.NOT_COVERED]
    assert 0.45 < len(out) / len(IDS) < 0.55
    assert all(partial.variant_index is None for partial in out)
    assert all(
        whole.variant_index == partial.variant_index
        for whole, partial in decisions
        if partial.reason == Reason.ASSIGNED
    )


def test_holdout_takes_its_share_first_by_its_own_seed():
    # given a 10% global holdout
    holdout = Holdout(share=0.1, seed="revopt-global-holdout")

    # when
    decisions = {unit: decide(plan=PLAN, unit_id=unit, attributes=ANYONE, holdout=holdout) for unit in IDS}

    # then
    held = {unit for unit, decision in decisions.items() if decision.reason == Reason.HOLDOUT}
    assert held == {unit for unit in IDS if hash("revopt-global-holdout", unit, 2) < 0.1}
    assert 0.08 < len(held) / len(IDS) < 0.12
    assert all(decisions[unit].variant_index is None for unit in held)


def test_a_zero_holdout_holds_no_one():
    # when
    decisions = [decide(plan=PLAN, unit_id=unit, attributes=ANYONE, holdout=Holdout(0.0, "x")) for unit in IDS[:200]]

    # then
    assert all(decision.reason == Reason.ASSIGNED for decision in decisions)


@pytest.mark.parametrize(
    ("targeting", "attributes", "eligible"),
    [
        (Targeting(), UnitAttributes(), True),
        (Targeting(devices=frozenset({"mobile"})), UnitAttributes(device="mobile"), True),
        (Targeting(devices=frozenset({"mobile"})), UnitAttributes(device="desktop"), False),
        (Targeting(devices=frozenset({"mobile"})), UnitAttributes(), False),
        (Targeting(visitor=Visitor.NEW), UnitAttributes(returning=False), True),
        (Targeting(visitor=Visitor.NEW), UnitAttributes(returning=True), False),
        (Targeting(visitor=Visitor.RETURNING), UnitAttributes(returning=True), True),
        (Targeting(visitor=Visitor.RETURNING), UnitAttributes(returning=False), False),
        (Targeting(visitor=Visitor.RETURNING), UnitAttributes(returning=None), False),
        (Targeting.from_dict({"segments": ["Champions"]}), UnitAttributes(segment="champions"), True),
        (Targeting.from_dict({"segments": ["Champions"]}), UnitAttributes(segment="At Risk"), False),
        (Targeting.from_dict({"segments": ["Champions"]}), UnitAttributes(), False),
        (
            Targeting.from_dict({"devices": ["mobile", "tablet"], "visitor": "new", "segments": ["Champions"]}),
            UnitAttributes(device="tablet", segment="Champions", returning=False),
            True,
        ),
    ],
)
def test_targeting(targeting, attributes, eligible):
    # given
    plan = ExperimentPlan(seed="s", weights=(0.5, 0.5), targeting=targeting)

    # when
    decision = decide(plan=plan, unit_id="user-1", attributes=attributes)

    # then
    assert (decision.reason != Reason.NOT_TARGETED) is eligible
    if not eligible:
        assert decision.variant_index is None


def test_experiments_of_one_layer_never_share_a_unit():
    # given two experiments splitting a layer 40/60
    first = ExperimentPlan(seed="a", weights=(0.5, 0.5), layer=("checkout", 0.0, 0.4))
    second = ExperimentPlan(seed="b", weights=(0.5, 0.5), layer=("checkout", 0.4, 1.0))

    # when
    in_first = {u for u in IDS if decide(plan=first, unit_id=u, attributes=ANYONE).variant_index is not None}
    in_second = {u for u in IDS if decide(plan=second, unit_id=u, attributes=ANYONE).variant_index is not None}

    # then: disjoint, together everyone, each about its share; the layer position is GrowthBook's namespace
    assert not in_first & in_second
    assert in_first | in_second == set(IDS)
    assert 0.36 < len(in_first) / len(IDS) < 0.44
    assert in_first == {u for u in IDS if in_namespace(u, ("checkout", 0.0, 0.4))}


def test_a_unit_outside_the_layer_slice_is_not_in_layer():
    # given
    plan = ExperimentPlan(seed="a", weights=(0.5, 0.5), layer=("checkout", 0.0, 0.4))
    outside = next(u for u in IDS if not in_namespace(u, ("checkout", 0.0, 0.4)))

    # when / then
    assert decide(plan=plan, unit_id=outside, attributes=ANYONE) == Decision(None, Reason.NOT_IN_LAYER)


def test_holdout_comes_before_targeting_and_layer():
    # given a unit in the holdout, not targeted and outside the layer
    holdout = Holdout(share=0.5, seed="h")
    unit = next(u for u in IDS if hash("h", u, 2) < 0.5 and not in_namespace(u, ("l", 0.0, 0.5)))
    plan = ExperimentPlan(seed="s", weights=(0.5, 0.5), targeting=Targeting(visitor=Visitor.NEW), layer=("l", 0.0, 0.5))

    # when / then
    assert (
        decide(plan=plan, unit_id=unit, attributes=UnitAttributes(returning=True), holdout=holdout).reason == "holdout"
    )


def test_a_zero_weight_variant_gets_no_one():
    # given
    plan = ExperimentPlan(seed="s", weights=(1.0, 0.0))

    # when / then
    assert {decide(plan=plan, unit_id=u, attributes=ANYONE).variant_index for u in IDS[:500]} == {0}


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [((0, 0.5), (0.5, 1), False), ((0, 0.5), (0.4, 1), True), ((0.2, 0.3), (0, 1), True), ((0.6, 1), (0, 0.6), False)],
)
def test_layer_ranges_overlap(first, second, overlap):
    # when / then
    assert ranges_overlap(first, second) is overlap
