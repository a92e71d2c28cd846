"""Reads behind every guardrail check: the limits in force for a product and the facts they are judged on.

Limits inherit field by field: a blank field of the product's own row falls back to its category's row,
then to the nearest ancestor category's, then to the shop's. Everything is read in a constant number of
queries however many products are asked about, so proposals for 10k products do not mean 10k queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Min

from catalog.models import Category, CompetitorPriceObservation, Product
from revopt.tenancy.models import Merchant

from ..guardrails import GuardrailContext, GuardrailLimits, period_days_of
from ..models import Guardrail, GuardrailScope, PriceChange, PricingSettings

LIMIT_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(GuardrailLimits))
COMPETITOR_WINDOW = timedelta(days=7)
WEEK = timedelta(days=7)
# Up to this many products the queries name them; beyond, they read the merchant's recent rows in the time
# window and keep the products asked about (one query either way, and no parameter-count limits).
_NAMED_PRODUCTS_MAX = 500


@dataclass(frozen=True)
class ResolvedLimits:
    """A product's limits and, per limit set, the guardrail row it comes from (for the screens)."""

    limits: GuardrailLimits
    sources: Mapping[str, Guardrail]


def pricing_settings_for(*, merchant: Merchant) -> PricingSettings:
    """The merchant's pricing settings, created with the defaults on first use."""
    found = PricingSettings.objects.for_merchant(merchant).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return PricingSettings.objects.create(merchant=merchant)
    except IntegrityError:  # another request created it meanwhile
        return PricingSettings.objects.for_merchant(merchant).get()


def _category_parents(*, merchant: Merchant) -> dict[int, int | None]:
    return dict(Category.objects.for_merchant(merchant).values_list("pk", "parent_id"))


def _ancestry(category_id: int | None, parents: Mapping[int, int | None]) -> list[int]:
    """The category and its ancestors, nearest first (cycles in bad data stop the walk)."""
    chain: list[int] = []
    while category_id is not None and category_id not in chain:
        chain.append(category_id)
        category_id = parents.get(category_id)
    return chain


def _resolve(
    *, product: Product, by_product: Mapping[int, Guardrail], by_category: Mapping[int, Guardrail],
    shop: Guardrail | None, parents: Mapping[int, int | None],
) -> ResolvedLimits:  # fmt: skip
    rows = [by_product.get(product.pk)]
    rows += [by_category.get(category_id) for category_id in _ancestry(product.category_id, parents)]
    rows.append(shop)
    values: dict[str, object] = {}
    sources: dict[str, Guardrail] = {}
    for name in LIMIT_FIELDS:
        for row in rows:
            if row is not None and getattr(row, name) is not None:
                values[name], sources[name] = getattr(row, name), row
                break
    return ResolvedLimits(limits=GuardrailLimits(**values), sources=sources)


def guardrail_limits_resolved_for_products(
    *, merchant: Merchant, products: Sequence[Product]
) -> dict[int, ResolvedLimits]:
    """Like `guardrail_limits_for_products`, with where each limit comes from. Two queries."""
    by_product: dict[int, Guardrail] = {}
    by_category: dict[int, Guardrail] = {}
    shop: Guardrail | None = None
    for row in Guardrail.objects.for_merchant(merchant).select_related("category", "product"):
        if row.scope == GuardrailScope.PRODUCT:
            by_product[row.product_id] = row
        elif row.scope == GuardrailScope.CATEGORY:
            by_category[row.category_id] = row
        else:
            shop = row
    parents = _category_parents(merchant=merchant) if by_category else {}
    return {
        product.pk: _resolve(
            product=product, by_product=by_product, by_category=by_category, shop=shop, parents=parents
        )
        for product in products
    }


def guardrail_limits_for_products(*, merchant: Merchant, products: Sequence[Product]) -> dict[int, GuardrailLimits]:
    """The limits in force for each product (by product id), in two queries."""
    resolved = guardrail_limits_resolved_for_products(merchant=merchant, products=products)
    return {product_id: item.limits for product_id, item in resolved.items()}


def guardrail_limits_for(*, merchant: Merchant, product: Product) -> GuardrailLimits:
    return guardrail_limits_for_products(merchant=merchant, products=[product])[product.pk]


def _scoped_to(queryset, products: Sequence[Product]):
    if len(products) <= _NAMED_PRODUCTS_MAX:
        return queryset.filter(product_id__in=[product.pk for product in products])
    return queryset


def guardrail_contexts_for_products(
    *,
    merchant: Merchant,
    products: Sequence[Product],
    now: datetime,
    limits: Mapping[int, GuardrailLimits] | None = None,
) -> dict[int, GuardrailContext]:
    """The facts each product's guardrails are judged on at `now`, in a constant number of queries.

    - the price a week ago: the `from_price` of the first live change in the last seven days (the price then
      in force), else today's price;
    - changes in the period: live changes (approvals, auto-approvals and rollbacks) within each product's
      `period_days` (7 when blank);
    - the lowest competitor price observed in the last seven days.
    Pass `limits` when the caller already holds them (saves two queries).
    """
    if not products:
        return {}
    if limits is None:
        limits = guardrail_limits_for_products(merchant=merchant, products=products)
    wanted = {product.pk for product in products}
    periods = {product.pk: timedelta(days=period_days_of(limits[product.pk])) for product in products}
    since = now - max([WEEK, *periods.values()])
    first_change_in_week: dict[int, Decimal] = {}
    change_times: dict[int, list[datetime]] = {}
    changes = _scoped_to(PriceChange.objects.for_merchant(merchant), products).filter(
        created_at__gt=since, created_at__lte=now
    )
    for product_id, from_price, created_at in changes.order_by("created_at", "pk").values_list(
        "product_id", "from_price", "created_at"
    ):
        if product_id not in wanted:
            continue
        change_times.setdefault(product_id, []).append(created_at)
        if created_at > now - WEEK:
            first_change_in_week.setdefault(product_id, from_price)
    observations = _scoped_to(CompetitorPriceObservation.objects.for_merchant(merchant), products).filter(
        observed_at__gt=now - COMPETITOR_WINDOW, observed_at__lte=now
    )
    lowest_competitor = {
        product_id: lowest
        for product_id, lowest in observations.values("product_id")
        .annotate(lowest=Min("price"))
        .values_list("product_id", "lowest")
        if product_id in wanted
    }
    return {
        product.pk: GuardrailContext(
            current_price=product.price,
            unit_cost=product.cost,
            price_week_ago=first_change_in_week.get(product.pk, product.price),
            changes_in_period=sum(
                1 for created_at in change_times.get(product.pk, ()) if created_at > now - periods[product.pk]
            ),
            lowest_competitor_price=lowest_competitor.get(product.pk),
        )
        for product in products
    }


def guardrail_context_for(*, merchant: Merchant, product: Product, now: datetime) -> GuardrailContext:
    return guardrail_contexts_for_products(merchant=merchant, products=[product], now=now)[product.pk]
