"""Guardrail checks on a price: pure rules, no Django.

`pricing.services.guardrails` resolves a product's `GuardrailLimits` from its merchant, category and
product rows and reads the `GuardrailContext` (current price, cost, recent changes, competitor prices);
everything that decides whether a price is allowed lives here, so the optimizer, every approval path and
the screens agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal


@dataclass(frozen=True)
class GuardrailLimits:
    price_floor: Decimal | None = None
    price_ceiling: Decimal | None = None
    min_margin: Decimal | None = None  # share of the price
    max_change_per_step: Decimal | None = None  # share of the current price
    max_change_per_week: Decimal | None = None  # share of the price in force seven days ago
    max_changes_per_period: int | None = None
    period_days: int | None = None
    competitor_band_low: Decimal | None = None  # ratio to the lowest competitor price
    competitor_band_high: Decimal | None = None
    map_price: Decimal | None = None


@dataclass(frozen=True)
class GuardrailContext:
    current_price: Decimal
    unit_cost: Decimal | None
    price_week_ago: Decimal  # the price in force seven days before now
    changes_in_period: int  # live price changes within the last `period_days`
    lowest_competitor_price: Decimal | None  # over the last seven days


@dataclass(frozen=True)
class GuardrailCheck:
    name: str  # floor, ceiling, min_margin, max_change_per_step, max_change_per_week, max_changes, competitor_band, map
    passed: bool
    limit: str  # the limit in words: "at least 12.00", "within ±10% of 25.00"
    message: str  # why it passed or failed, for the merchant

    def as_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "limit": self.limit, "message": self.message}


class GuardrailViolation(Exception):
    """A price breaks at least one guardrail; `checks` holds the failed ones."""

    def __init__(self, checks: tuple[GuardrailCheck, ...]) -> None:
        self.checks = checks
        super().__init__("; ".join(check.message for check in checks))


# Beyond the merchant's limits, a search range that no limit bounds stops at ±50% of the current price: the
# engine never proposes halving or doubling a price on its own.
DEFAULT_SEARCH_SHARE = Decimal("0.5")
# A change-count limit without a period counts over this many days.
DEFAULT_PERIOD_DAYS = 7
CENT = Decimal("0.01")


def _money(value: Decimal) -> str:
    return f"{value.quantize(CENT)}"


def _share(value: Decimal) -> str:
    return f"{(value * 100).normalize():f}%"


def _cents_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_CEILING)


def _cents_down(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_FLOOR)


def period_days_of(limits: GuardrailLimits) -> int:
    """The window the change-count limit counts over."""
    return limits.period_days or DEFAULT_PERIOD_DAYS


def margin_floor(unit_cost: Decimal, min_margin: Decimal) -> Decimal:
    """The lowest price whose margin (price - cost) / price reaches `min_margin` (< 1)."""
    return unit_cost / (1 - min_margin)


def _check(name: str, passed: bool, limit: str, ok: str, failed: str) -> GuardrailCheck:
    return GuardrailCheck(name=name, passed=passed, limit=limit, message=ok if passed else failed)


def guardrail_checks(limits: GuardrailLimits, context: GuardrailContext, price: Decimal) -> tuple[GuardrailCheck, ...]:
    """Every guardrail that applies (limits left blank are skipped), passed or not."""
    checks: list[GuardrailCheck] = []
    shown = _money(price)
    if limits.price_floor is not None:
        floor = limits.price_floor
        checks.append(
            _check(
                "floor",
                price >= floor,
                f"at least {_money(floor)}",
                f"{shown} is at or above the floor {_money(floor)}.",
                f"{shown} is below the price floor {_money(floor)}.",
            )
        )
    if limits.price_ceiling is not None:
        ceiling = limits.price_ceiling
        checks.append(
            _check(
                "ceiling",
                price <= ceiling,
                f"at most {_money(ceiling)}",
                f"{shown} is at or below the ceiling {_money(ceiling)}.",
                f"{shown} is above the price ceiling {_money(ceiling)}.",
            )
        )
    if limits.min_margin is not None:
        if context.unit_cost is None:
            checks.append(
                GuardrailCheck(
                    name="min_margin",
                    passed=True,
                    limit=f"margin at least {_share(limits.min_margin)}",
                    message="Not checked: the product has no unit cost.",
                )
            )
        else:
            lowest = margin_floor(context.unit_cost, limits.min_margin)
            margin = (price - context.unit_cost) / price
            checks.append(
                _check(
                    "min_margin",
                    price >= lowest,
                    f"margin at least {_share(limits.min_margin)} (price at least {_money(_cents_up(lowest))} "
                    f"at cost {_money(context.unit_cost)})",
                    f"The margin at {shown} is {margin:.1%}, at least the minimum {_share(limits.min_margin)}.",
                    f"The margin at {shown} is {margin:.1%}, below the minimum {_share(limits.min_margin)}.",
                )
            )
    if limits.max_change_per_step is not None:
        step, current = limits.max_change_per_step, context.current_price
        low, high = current * (1 - step), current * (1 + step)
        change = price / current - 1
        checks.append(
            _check(
                "max_change_per_step",
                low <= price <= high,
                f"within ±{_share(step)} of {_money(current)} ({_money(_cents_up(low))}–{_money(_cents_down(high))})",
                f"A {change:+.1%} change is within the ±{_share(step)} allowed per step.",
                f"A {change:+.1%} change is more than the ±{_share(step)} allowed per step.",
            )
        )
    if limits.max_change_per_week is not None:
        share, week_ago = limits.max_change_per_week, context.price_week_ago
        low, high = week_ago * (1 - share), week_ago * (1 + share)
        change = price / week_ago - 1
        checks.append(
            _check(
                "max_change_per_week",
                low <= price <= high,
                f"within ±{_share(share)} of {_money(week_ago)}, the price a week ago",
                f"{change:+.1%} against the price a week ago ({_money(week_ago)}) is within ±{_share(share)}.",
                f"{change:+.1%} against the price a week ago ({_money(week_ago)}) is more than the "
                f"±{_share(share)} allowed per week.",
            )
        )
    if limits.max_changes_per_period is not None:
        allowed, days, done = limits.max_changes_per_period, period_days_of(limits), context.changes_in_period
        is_change = price != context.current_price
        checks.append(
            _check(
                "max_changes",
                not is_change or done < allowed,
                f"at most {allowed} changes in {days} days ({done} so far)",
                f"{done} of the {allowed} changes allowed in {days} days are used."
                if is_change
                else "The price does not change.",
                f"{done} of the {allowed} changes allowed in {days} days are used: no more changes until the "
                "period rolls on.",
            )
        )
    band_low, band_high = limits.competitor_band_low, limits.competitor_band_high
    competitor = context.lowest_competitor_price
    if band_low is not None or band_high is not None:
        if competitor is None:
            checks.append(
                GuardrailCheck(
                    name="competitor_band",
                    passed=True,
                    limit=_band_words(band_low, band_high),
                    message="Not checked: no competitor price in the last seven days.",
                )
            )
        else:
            low = competitor * band_low if band_low is not None else None
            high = competitor * band_high if band_high is not None else None
            ratio = price / competitor
            passed = (low is None or price >= low) and (high is None or price <= high)
            checks.append(
                _check(
                    "competitor_band",
                    passed,
                    f"{_band_words(band_low, band_high)} {_money(competitor)}",
                    f"{shown} is {ratio:.0%} of the lowest competitor price {_money(competitor)}, inside the band.",
                    f"{shown} is {ratio:.0%} of the lowest competitor price {_money(competitor)}, outside the band.",
                )
            )
    if limits.map_price is not None:
        checks.append(
            _check(
                "map",
                price >= limits.map_price,
                f"at least the MAP {_money(limits.map_price)}",
                f"{shown} respects the minimum advertised price {_money(limits.map_price)}.",
                f"{shown} is below the minimum advertised price {_money(limits.map_price)}.",
            )
        )
    return tuple(checks)


def _band_words(band_low: Decimal | None, band_high: Decimal | None) -> str:
    if band_low is not None and band_high is not None:
        return f"between {_share(band_low)} and {_share(band_high)} of the lowest competitor price"
    if band_low is not None:
        return f"at least {_share(band_low)} of the lowest competitor price"
    return f"at most {_share(band_high)} of the lowest competitor price"


def failed_checks(checks: tuple[GuardrailCheck, ...]) -> tuple[GuardrailCheck, ...]:
    return tuple(check for check in checks if not check.passed)


@dataclass(frozen=True)
class FeasibleRange:
    low: Decimal
    high: Decimal
    # The guardrail that sets each end, in words ("the 10% step limit"); None when no limit bounds that side.
    low_reason: str | None
    high_reason: str | None


def feasible_range(limits: GuardrailLimits, context: GuardrailContext) -> tuple[Decimal, Decimal] | None:
    """The lowest and highest price (to the cent) passing every price-level guardrail, or None when the limits
    contradict each other or no change is allowed now (the change-count limit is reached).

    A side no limit bounds stops at ±DEFAULT_SEARCH_SHARE of the current price (or at the other side's
    limit, when that lies beyond it)."""
    explained = feasible_range_explained(limits, context)
    return (explained.low, explained.high) if explained is not None else None


def feasible_range_explained(limits: GuardrailLimits, context: GuardrailContext) -> FeasibleRange | None:
    """`feasible_range` with the guardrail that sets each end, so a proposal held there can say which."""
    if limits.max_changes_per_period is not None and context.changes_in_period >= limits.max_changes_per_period:
        return None
    current = context.current_price
    lows: list[tuple[Decimal, str]] = []
    highs: list[tuple[Decimal, str]] = []
    if limits.price_floor is not None:
        lows.append((limits.price_floor, "the price floor"))
    if limits.price_ceiling is not None:
        highs.append((limits.price_ceiling, "the price ceiling"))
    if limits.min_margin is not None and context.unit_cost is not None:
        lows.append(
            (margin_floor(context.unit_cost, limits.min_margin), f"the {_share(limits.min_margin)} minimum margin")
        )
    if limits.max_change_per_step is not None:
        step = f"the {_share(limits.max_change_per_step)} step limit"
        lows.append((current * (1 - limits.max_change_per_step), step))
        highs.append((current * (1 + limits.max_change_per_step), step))
    if limits.max_change_per_week is not None:
        week = f"the {_share(limits.max_change_per_week)} weekly limit"
        lows.append((context.price_week_ago * (1 - limits.max_change_per_week), week))
        highs.append((context.price_week_ago * (1 + limits.max_change_per_week), week))
    competitor = context.lowest_competitor_price
    if competitor is not None and limits.competitor_band_low is not None:
        lows.append((competitor * limits.competitor_band_low, "the competitor band"))
    if competitor is not None and limits.competitor_band_high is not None:
        highs.append((competitor * limits.competitor_band_high, "the competitor band"))
    if limits.map_price is not None:
        lows.append((limits.map_price, "the minimum advertised price (MAP)"))
    low, low_reason = max(lows, key=lambda bound: bound[0]) if lows else (current * (1 - DEFAULT_SEARCH_SHARE), None)
    if highs:
        high, high_reason = min(highs, key=lambda bound: bound[0])
    else:
        high, high_reason = max(current * (1 + DEFAULT_SEARCH_SHARE), low), None
    if not lows and highs:
        low = min(low, high)
    low, high = _cents_up(max(low, CENT)), _cents_down(high)
    if low > high:
        return None
    return FeasibleRange(low=low, high=high, low_reason=low_reason, high_reason=high_reason)
