"""A generated shop behind an experiment, for the analysis tests: thousands of units written in bulk, with
a planted conversion rate, order value and refund share per variant, and optionally a pre-period that
predicts each shopper's spending (what CUPED feeds on)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np

from events.models import Customer, Order, OrderStatus
from experiments.models import Experiment, Exposure


@dataclass(frozen=True)
class Arm:
    units: int
    conversion: float
    order_value: float = 80.0  # the shoppers' spending level, before and during the test
    spend_lift: float = 1.0  # what the variant does to it during the test
    refund_share: float = 0.0  # share of the arm's orders that are refunded


def shop_generate(
    *,
    experiment: Experiment,
    arms: dict[str, Arm],
    start: datetime,
    seed: int = 0,
    exposure_days: float = 5.0,
    pre_period: bool = False,
) -> None:
    """Units exposed over the first `exposure_days` after `start`, each ordering (or not) within 3 days.

    Every shopper has a spending level (log-normal around the arm's order value); with `pre_period` they
    also ordered once in the 14 days before the start, at that same level, so pre and post spending correlate.
    """
    rng = np.random.default_rng(seed)
    merchant_id = experiment.merchant_id
    variants = {variant.key: variant for variant in experiment.variants.all()}
    customers = Customer.objects.bulk_create(
        Customer(merchant_id=merchant_id, external_id=f"{experiment.key}-{key}-{index}", created_at=start)
        for key, arm in arms.items()
        for index in range(arm.units)
    )
    exposures, orders = [], []
    offset = 0
    for key, arm in arms.items():
        for customer in customers[offset : offset + arm.units]:
            exposed_at = start + timedelta(hours=float(rng.uniform(0, exposure_days * 24)))
            exposures.append(
                Exposure(
                    merchant_id=merchant_id,
                    experiment=experiment,
                    variant=variants[key],
                    customer=customer,
                    unit_id=customer.external_id,
                    exposed_at=exposed_at,
                )
            )
            level = arm.order_value * math.exp(float(rng.normal(0, 0.6)) - 0.18)
            if rng.random() < arm.conversion:
                refunded = rng.random() < arm.refund_share
                orders.append(
                    _order(
                        customer,
                        at=exposed_at + timedelta(hours=float(rng.uniform(0, 72))),
                        total=level * arm.spend_lift * float(rng.uniform(0.85, 1.15)),
                        status=OrderStatus.REFUNDED if refunded else OrderStatus.COMPLETED,
                    )
                )
            if pre_period:
                orders.append(
                    _order(
                        customer,
                        at=start - timedelta(days=float(rng.uniform(1, 13))),
                        total=level * float(rng.uniform(0.85, 1.15)),
                        status=OrderStatus.COMPLETED,
                    )
                )
        offset += arm.units
    Exposure.objects.bulk_create(exposures, batch_size=2000)
    Order.objects.bulk_create(orders, batch_size=2000)


def _order(customer: Customer, *, at: datetime, total: float, status: str) -> Order:
    amount = Decimal(f"{total:.2f}")
    reference = f"{customer.external_id}-{at.timestamp():.0f}"
    return Order(
        merchant_id=customer.merchant_id,
        customer=customer,
        external_id=reference,
        message_id=reference,
        placed_at=at,
        subtotal=amount,
        total=amount,
        status=status,
    )
