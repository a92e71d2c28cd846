"""The live price of each product, as the storefront shows it to every shopper alike.

The live price is the product's price (the catalog's, or the last one revopt set live through an approved
proposal or a rollback), unless the product is in a pricing experiment's price-test arm, which multiplies it
(kept inside the product's guardrails). Nothing here takes a shopper: the answer is the same for everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from catalog.models import Product
from experiments.models import Experiment
from revopt.tenancy.models import Merchant

from ..guardrails import feasible_range
from ..models import PriceChange
from .experiments import MULTIPLIER, PricingArm, pricing_arms_for_products
from .guardrails import guardrail_contexts_for_products, guardrail_limits_for_products

CENT = Decimal("0.01")
MAX_SKUS = 200


class PriceSource(StrEnum):
    CATALOG = "catalog"  # the shop's own price, untouched by revopt
    REVOPT = "revopt"  # set live by revopt (an approved or auto-approved proposal, or a rollback)
    EXPERIMENT = "experiment"  # a pricing experiment's price test


@dataclass(frozen=True)
class LivePrice:
    product_id: int
    sku: str
    price: Decimal
    currency: str
    compare_at_price: Decimal | None  # only when above the price (a strike-through price below it would mislead)
    source: PriceSource
    experiment_key: str | None  # the pricing experiment the product is in, whatever its arm
    variant_key: str | None
    changed_at: datetime | None  # when this price took effect; None for a catalog price (revopt cannot know)


@dataclass(frozen=True)
class LivePrices:
    prices: tuple[LivePrice, ...]  # in the order asked, duplicates collapsed
    unknown: tuple[str, ...]  # SKUs the merchant has no active product under

    def by_sku(self) -> dict[str, LivePrice]:
        return {price.sku: price for price in self.prices}


def _experiment_started(*, merchant: Merchant, keys: set[str]) -> dict[str, datetime | None]:
    """experiment key → when its current arms took effect (the roll-out, else the start)."""
    rows = (
        Experiment.objects.for_merchant(merchant).filter(key__in=keys).values_list("key", "started_at", "rolled_out_at")
    )
    return {key: rolled_out_at or started_at for key, started_at, rolled_out_at in rows}


def _multiplied(
    *, merchant: Merchant, products: Sequence[Product], arms: dict[int, PricingArm], now: datetime
) -> dict[int, Decimal]:
    """product id → its price-test price, rounded to the cent and clipped into the guardrails' feasible range;
    absent when the guardrails allow no change now (the product keeps its price)."""
    tested = [product for product in products if product.pk in arms and arms[product.pk].rule == MULTIPLIER]
    if not tested:
        return {}
    limits = guardrail_limits_for_products(merchant=merchant, products=tested)
    contexts = guardrail_contexts_for_products(merchant=merchant, products=tested, now=now, limits=limits)
    prices: dict[int, Decimal] = {}
    for product in tested:
        multiplier = Decimal(str(arms[product.pk].multiplier))
        price = (product.price * multiplier).quantize(CENT, rounding=ROUND_HALF_UP)
        allowed = feasible_range(limits[product.pk], contexts[product.pk])
        if allowed is None:
            continue
        low, high = allowed
        prices[product.pk] = min(max(price, low), high)
    return prices


def live_prices(*, merchant: Merchant, skus: Sequence[str], now: datetime | None = None) -> LivePrices:
    """The live price of each product asked for by SKU, the same for every shopper.

    One query for the products and their last price change, plus (only while a pricing experiment is live) one
    for the experiments' start and, for products in a price-test arm, the guardrail reads: a handful of
    queries however many SKUs (the caller bounds them, see MAX_SKUS).
    """
    now = now or timezone.now()
    wanted = list(dict.fromkeys(sku for sku in skus if sku))
    if not wanted:
        return LivePrices(prices=(), unknown=())
    last_change = PriceChange.objects.filter(merchant_id=merchant.pk, product_id=OuterRef("pk")).order_by(
        "-created_at", "-pk"
    )
    products = list(
        Product.objects.for_merchant(merchant)
        .filter(sku__in=wanted, is_active=True)
        .only("pk", "merchant_id", "sku", "price", "cost", "currency", "compare_at_price", "category_id")
        .annotate(
            last_change_to=Subquery(last_change.values("to_price")[:1]),
            last_change_at=Subquery(last_change.values("created_at")[:1]),
        )
    )
    by_sku = {product.sku: product for product in products}
    arms = pricing_arms_for_products(merchant=merchant, products=products)
    tested_prices = _multiplied(merchant=merchant, products=products, arms=arms, now=now)
    started = _experiment_started(merchant=merchant, keys={arm.experiment_key for arm in arms.values()}) if arms else {}

    prices: list[LivePrice] = []
    for sku in wanted:
        product = by_sku.get(sku)
        if product is None:
            continue
        # The price revopt set is still live unless the shop changed it since (e.g. a catalog re-import).
        set_by_revopt = product.last_change_to is not None and product.last_change_to == product.price
        price = product.price
        source = PriceSource.REVOPT if set_by_revopt else PriceSource.CATALOG
        changed_at = product.last_change_at if set_by_revopt else None
        arm = arms.get(product.pk)
        if arm is not None and product.pk in tested_prices and tested_prices[product.pk] != product.price:
            price = tested_prices[product.pk]
            source = PriceSource.EXPERIMENT
            start = started.get(arm.experiment_key)
            changed_at = max((at for at in (start, changed_at) if at is not None), default=None)
        compare_at = product.compare_at_price
        prices.append(
            LivePrice(
                product_id=product.pk,
                sku=sku,
                price=price,
                currency=product.currency,
                compare_at_price=compare_at if compare_at is not None and compare_at > price else None,
                source=source,
                experiment_key=arm.experiment_key if arm is not None else None,
                variant_key=arm.variant_key if arm is not None else None,
                changed_at=changed_at,
            )
        )
    return LivePrices(prices=tuple(prices), unknown=tuple(sku for sku in wanted if sku not in by_sku))
