from decimal import Decimal

import pytest

from pricing.guardrails import (
    GuardrailContext,
    GuardrailLimits,
    GuardrailViolation,
    failed_checks,
    feasible_range,
    feasible_range_explained,
    guardrail_checks,
)

D = Decimal


def _context(**overrides) -> GuardrailContext:
    values = {
        "current_price": D("25.00"),
        "unit_cost": D("12.00"),
        "price_week_ago": D("25.00"),
        "changes_in_period": 0,
        "lowest_competitor_price": D("24.00"),
    }
    values.update(overrides)
    return GuardrailContext(**values)


def _by_name(checks) -> dict:
    return {check.name: check for check in checks}


@pytest.mark.parametrize(
    ("limits", "name", "passing", "failing"),
    [
        (GuardrailLimits(price_floor=D("20.00")), "floor", D("20.00"), D("19.99")),
        (GuardrailLimits(price_ceiling=D("30.00")), "ceiling", D("30.00"), D("30.01")),
        # cost 12, margin 20% → at least 15.00
        (GuardrailLimits(min_margin=D("0.20")), "min_margin", D("15.00"), D("14.99")),
        (GuardrailLimits(max_change_per_step=D("0.10")), "max_change_per_step", D("27.50"), D("27.51")),
        (GuardrailLimits(max_change_per_step=D("0.10")), "max_change_per_step", D("22.50"), D("22.49")),
        (GuardrailLimits(competitor_band_low=D("0.90")), "competitor_band", D("21.60"), D("21.59")),
        (GuardrailLimits(competitor_band_high=D("1.10")), "competitor_band", D("26.40"), D("26.41")),
        (GuardrailLimits(map_price=D("22.00")), "map", D("22.00"), D("21.99")),
    ],
)
def test_each_price_level_guardrail_passes_at_its_limit_and_fails_a_cent_beyond(limits, name, passing, failing):
    # given
    context = _context()

    # when
    at_limit = _by_name(guardrail_checks(limits, context, passing))[name]
    beyond = _by_name(guardrail_checks(limits, context, failing))[name]

    # then
    assert at_limit.passed, at_limit.message
    assert not beyond.passed
    assert beyond.message and beyond.limit


def test_weekly_change_is_judged_against_the_price_a_week_ago_not_the_current_one():
    # given: the price went 20 → 25 this week; at most +30% a week
    limits = GuardrailLimits(max_change_per_week=D("0.30"))
    context = _context(current_price=D("25.00"), price_week_ago=D("20.00"))

    # when
    checks_26 = _by_name(guardrail_checks(limits, context, D("26.00")))
    checks_27 = _by_name(guardrail_checks(limits, context, D("26.01")))

    # then: 26.00 is +30% of 20 (allowed); 26.01 is more
    assert checks_26["max_change_per_week"].passed
    assert not checks_27["max_change_per_week"].passed
    assert "20.00" in checks_27["max_change_per_week"].message


def test_change_count_limit_blocks_a_further_change_once_reached_but_not_keeping_the_price():
    # given
    limits = GuardrailLimits(max_changes_per_period=2, period_days=14)

    # when
    under = _by_name(guardrail_checks(limits, _context(changes_in_period=1), D("26.00")))["max_changes"]
    reached = _by_name(guardrail_checks(limits, _context(changes_in_period=2), D("26.00")))["max_changes"]
    unchanged = _by_name(guardrail_checks(limits, _context(changes_in_period=2), D("25.00")))["max_changes"]

    # then
    assert under.passed
    assert not reached.passed
    assert "14 days" in reached.limit
    assert unchanged.passed


def test_blank_limits_are_skipped_and_unknown_cost_or_competitor_are_said_not_checked():
    # given
    limits = GuardrailLimits(min_margin=D("0.30"), competitor_band_low=D("0.9"))
    context = _context(unit_cost=None, lowest_competitor_price=None)

    # when
    checks = guardrail_checks(limits, context, D("5.00"))

    # then
    assert [check.name for check in checks] == ["min_margin", "competitor_band"]
    assert all(check.passed and check.message.startswith("Not checked") for check in checks)
    assert guardrail_checks(GuardrailLimits(), context, D("1.00")) == ()


def test_violation_carries_the_failed_checks_and_names_them_in_its_message():
    # given
    limits = GuardrailLimits(price_floor=D("20"), price_ceiling=D("30"), map_price=D("22"))
    failed = failed_checks(guardrail_checks(limits, _context(), D("19.00")))

    # when
    violation = GuardrailViolation(failed)

    # then
    assert {check.name for check in violation.checks} == {"floor", "map"}
    assert "floor" in str(violation) and "advertised" in str(violation)


def test_feasible_range_is_the_intersection_of_every_price_level_limit_in_cents():
    # given: floor 20, margin 30% at cost 12 → 17.15 (rounded up), step 10% → 22.50..27.50,
    # band 0.9..1.1 of 24 → 21.60..26.40, ceiling 29
    limits = GuardrailLimits(
        price_floor=D("20"),
        price_ceiling=D("29"),
        min_margin=D("0.30"),
        max_change_per_step=D("0.10"),
        competitor_band_low=D("0.90"),
        competitor_band_high=D("1.10"),
    )

    # when
    low, high = feasible_range(limits, _context())

    # then
    assert (low, high) == (D("22.50"), D("26.40"))


def test_margin_bound_rounds_up_to_the_cent_so_the_lowest_price_still_passes():
    # given: cost 10, margin 1/3 → 15.000…; cost 10.01 → 15.015 → 15.02
    limits = GuardrailLimits(min_margin=D("0.3333"), price_ceiling=D("40"))
    context = _context(unit_cost=D("10.01"))

    # when
    low, _ = feasible_range(limits, context)

    # then
    assert low == D("15.02")
    assert all(check.passed for check in guardrail_checks(limits, context, low))
    assert not all(check.passed for check in guardrail_checks(limits, context, low - D("0.01")))


@pytest.mark.parametrize(
    "limits",
    [
        GuardrailLimits(price_floor=D("18"), max_change_per_step=D("0.07"), competitor_band_high=D("1.05")),
        GuardrailLimits(min_margin=D("0.45"), max_change_per_week=D("0.12"), map_price=D("21.99")),
        GuardrailLimits(price_ceiling=D("26.66"), competitor_band_low=D("0.951")),
    ],
)
def test_every_price_inside_the_feasible_range_passes_and_a_cent_outside_fails(limits):
    # given: each case bounds both sides with an explicit limit
    context = _context(price_week_ago=D("24.10"))

    # when
    low, high = feasible_range(limits, context)

    # then
    for price in (low, (low + high) / 2, high):
        assert not failed_checks(guardrail_checks(limits, context, price.quantize(D("0.01"))))
    assert failed_checks(guardrail_checks(limits, context, low - D("0.01")))
    assert failed_checks(guardrail_checks(limits, context, high + D("0.01")))


def test_feasible_range_is_none_when_limits_contradict_or_the_change_count_is_used_up():
    # given
    contradicting = GuardrailLimits(price_floor=D("30"), max_change_per_step=D("0.05"))
    counted = GuardrailLimits(max_changes_per_period=3)

    # when / then
    assert feasible_range(contradicting, _context()) is None
    assert feasible_range(counted, _context(changes_in_period=3)) is None
    assert feasible_range(counted, _context(changes_in_period=2)) is not None


def test_without_limits_the_search_stays_within_half_to_one_and_a_half_times_the_price():
    # when
    low, high = feasible_range(GuardrailLimits(), _context())

    # then
    assert (low, high) == (D("12.50"), D("37.50"))


def test_a_floor_above_the_default_range_still_leaves_the_floor_itself():
    # given: the merchant raised the floor to 40 on a 25.00 product
    limits = GuardrailLimits(price_floor=D("40"))

    # when
    low, high = feasible_range(limits, _context())

    # then
    assert low == D("40.00") and high == D("40.00")


def test_a_ceiling_below_the_default_range_still_leaves_the_ceiling_itself():
    # when
    low, high = feasible_range(GuardrailLimits(price_ceiling=D("10")), _context())

    # then
    assert (low, high) == (D("10.00"), D("10.00"))


def test_the_feasible_range_names_the_guardrail_at_each_end():
    # given a 10% step limit, a 30% margin at cost 20.00 and a ceiling, around a price of 30.00
    limits = GuardrailLimits(
        max_change_per_step=Decimal("0.10"), min_margin=Decimal("0.30"), price_ceiling=Decimal("32.00")
    )
    context = GuardrailContext(
        current_price=Decimal("30.00"),
        unit_cost=Decimal("20.00"),
        price_week_ago=Decimal("30.00"),
        changes_in_period=0,
        lowest_competitor_price=None,
    )

    # when
    explained = feasible_range_explained(limits, context)

    # then the margin floor (28.58) beats the step's 27.00, the ceiling beats the step's 33.00
    assert (explained.low, explained.high) == (Decimal("28.58"), Decimal("32.00"))
    assert (explained.low_reason, explained.high_reason) == ("the 30% minimum margin", "the price ceiling")
    assert feasible_range(limits, context) == (explained.low, explained.high)
