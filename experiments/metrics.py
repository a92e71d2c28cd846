"""The metrics an experiment can be judged on: what each one means, no database code.

Every metric is measured per unit (a customer exposed to the experiment) from the moment of the unit's
first exposure until the analysis (or the experiment's stop), from events and orders:

- a PROPORTION is the share of units for which something happened (two-proportion z test);
- a MEAN is a per-unit amount averaged over all exposed units, zeros included (Welch t test);
- a RATIO divides two per-unit sums, e.g. revenue / orders for AOV, whose units are not independent
  of each other, so its variance comes from the delta method.

Selectors compute the per-unit values with database aggregation (`experiments.selectors`), keyed by
the names of `numerator` and `denominator` below.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MetricKind(StrEnum):
    PROPORTION = "proportion"
    MEAN = "mean"
    RATIO = "ratio"


class MetricUnit(StrEnum):
    SHARE = "share"
    CURRENCY = "currency"
    COUNT = "count"


class UnitValue(StrEnum):
    """The per-unit quantities the selectors compute (one column each)."""

    ORDERED = "ordered"  # 1 if the unit placed a completed order, else 0
    REVENUE = "revenue"  # sum of completed orders' totals (winsorized for MEAN metrics)
    # Merchandise sold after discounts (subtotal − discount: tax and shipping are passed through) minus the cost
    # of the goods sold (order lines' unit_cost) and what redeemed incentives cost beyond the discount (the
    # order's incentive_cost: free shipping's carrier fee, bonus points' value).
    MARGIN = "margin"
    ORDERS = "orders"  # number of completed orders
    ITEMS = "items"  # units of product bought
    CARTED = "carted"  # 1 if the unit added a product to a cart
    ABANDONED = "abandoned"  # 1 if the unit added to a cart and placed no order
    BUYER = "buyer"  # same as ORDERED, the denominator of repeat purchase
    REPEATED = "repeated"  # 1 if the unit placed two or more orders
    REFUNDED_ORDERS = "refunded_orders"  # orders later refunded
    ALL_ORDERS = "all_orders"  # completed + refunded orders (the refund rate's denominator)
    UNSUBSCRIBED = "unsubscribed"  # 1 if the unit sent an "Unsubscribed" event


@dataclass(frozen=True)
class MetricDefinition:
    key: str
    label: str
    kind: MetricKind
    unit: MetricUnit
    higher_is_better: bool
    numerator: UnitValue
    denominator: UnitValue | None = None  # RATIO only
    description: str = ""
    # Revenue-like amounts are capped at the experiment's winsorize percentile.
    winsorized: bool = False


METRICS: dict[str, MetricDefinition] = {
    metric.key: metric
    for metric in (
        MetricDefinition(
            key="revenue_per_user",
            label="Revenue per active user",
            kind=MetricKind.MEAN,
            unit=MetricUnit.CURRENCY,
            higher_is_better=True,
            numerator=UnitValue.REVENUE,
            winsorized=True,
            description="Completed orders' revenue per exposed shopper (RPAU, revopt's north star).",
        ),
        MetricDefinition(
            key="conversion",
            label="Conversion",
            kind=MetricKind.PROPORTION,
            unit=MetricUnit.SHARE,
            higher_is_better=True,
            numerator=UnitValue.ORDERED,
            description="Share of exposed shoppers who placed an order.",
        ),
        MetricDefinition(
            key="margin_per_user",
            label="Margin per active user",
            kind=MetricKind.MEAN,
            unit=MetricUnit.CURRENCY,
            higher_is_better=True,
            numerator=UnitValue.MARGIN,
            winsorized=True,
            description="Sales after discounts, less tax and shipping, minus cost of goods and what redeemed "
            "offers cost beyond their discount (free shipping, bonus points), per exposed shopper.",
        ),
        MetricDefinition(
            key="aov",
            label="Average order value",
            kind=MetricKind.RATIO,
            unit=MetricUnit.CURRENCY,
            higher_is_better=True,
            numerator=UnitValue.REVENUE,
            denominator=UnitValue.ORDERS,
            description="Revenue per order.",
        ),
        MetricDefinition(
            key="items_per_order",
            label="Items per order",
            kind=MetricKind.RATIO,
            unit=MetricUnit.COUNT,
            higher_is_better=True,
            numerator=UnitValue.ITEMS,
            denominator=UnitValue.ORDERS,
            description="Units of product per order.",
        ),
        MetricDefinition(
            key="cart_abandonment",
            label="Cart abandonment",
            kind=MetricKind.RATIO,
            unit=MetricUnit.SHARE,
            higher_is_better=False,
            numerator=UnitValue.ABANDONED,
            denominator=UnitValue.CARTED,
            description="Share of shoppers with a cart who did not order.",
        ),
        MetricDefinition(
            key="repeat_purchase",
            label="Repeat purchase",
            kind=MetricKind.RATIO,
            unit=MetricUnit.SHARE,
            higher_is_better=True,
            numerator=UnitValue.REPEATED,
            denominator=UnitValue.BUYER,
            description="Share of buyers who ordered again.",
        ),
        MetricDefinition(
            key="refund_rate",
            label="Refund rate",
            kind=MetricKind.RATIO,
            unit=MetricUnit.SHARE,
            higher_is_better=False,
            numerator=UnitValue.REFUNDED_ORDERS,
            denominator=UnitValue.ALL_ORDERS,
            description="Share of orders refunded (returns).",
        ),
        MetricDefinition(
            key="unsubscribe_rate",
            label="Unsubscribe rate",
            kind=MetricKind.PROPORTION,
            unit=MetricUnit.SHARE,
            higher_is_better=False,
            numerator=UnitValue.UNSUBSCRIBED,
            description="Share of exposed shoppers who unsubscribed from messages.",
        ),
    )
}

DEFAULT_GUARDRAILS: tuple[dict, ...] = (
    {"metric": "refund_rate", "max_relative_change": 0.10},
    {"metric": "unsubscribe_rate", "max_relative_change": 0.10},
)


def metric_definition(key: str) -> MetricDefinition:
    try:
        return METRICS[key]
    except KeyError:
        raise ValueError(f"unknown metric {key!r}; choose one of {', '.join(METRICS)}") from None
