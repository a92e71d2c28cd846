"""Guardrail checks on a price: pure rules, no Django.

`pricing.services.guardrails` resolves a product's `GuardrailLimits` from its merchant, category and
product rows and reads the `GuardrailContext` (current price, cost, recent changes, competitor prices);
everything that decides whether a price is allowed lives here, so the optimizer, every approval path and
the screens agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


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


def guardrail_checks(limits: GuardrailLimits, context: GuardrailContext, price: Decimal) -> tuple[GuardrailCheck, ...]:
    """Every guardrail that applies (limits left blank are skipped), passed or not."""
    raise NotImplementedError


def feasible_range(limits: GuardrailLimits, context: GuardrailContext) -> tuple[Decimal, Decimal] | None:
    """The lowest and highest price (to the cent) passing every price-level guardrail, or None when the limits
    contradict each other or no change is allowed now (the change-count limit is reached)."""
    raise NotImplementedError
