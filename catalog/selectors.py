"""Catalog reads. Every selector takes the merchant and scopes by it."""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, QuerySet

from revopt.tenancy.models import Merchant

from .models import Category, Product


@dataclass(frozen=True, slots=True)
class ProductRef:
    """What the events ingest needs to know about a referenced product, without a model instance."""

    id: int
    sku: str
    price: Decimal
    cost: Decimal | None
    is_active: bool


@dataclass(frozen=True)
class CatalogCounts:
    products: int
    active: int
    # Active products that cannot be sold right now; inactive ones are out of the shop anyway.
    out_of_stock: int
    categories: int


def category_list(*, merchant: Merchant) -> QuerySet[Category]:
    return Category.objects.for_merchant(merchant).order_by("path")


def category_get(*, merchant: Merchant, category_id: int) -> Category | None:
    return Category.objects.for_merchant(merchant).filter(pk=category_id).first()


def category_descendant_ids(*, merchant: Merchant, category_id: int) -> set[int]:
    """The category and everything below it, walking `parent` links (one query; trees are small)."""
    children: dict[int | None, list[int]] = {}
    for pk, parent_id in Category.objects.for_merchant(merchant).values_list("pk", "parent_id"):
        children.setdefault(parent_id, []).append(pk)
    if not any(category_id in ids for ids in children.values()):
        return set()
    found, frontier = {category_id}, [category_id]
    while frontier:
        next_frontier = [child for pk in frontier for child in children.get(pk, []) if child not in found]
        found.update(next_frontier)
        frontier = next_frontier
    return found


def product_list(
    *,
    merchant: Merchant,
    category_id: int | None = None,
    in_stock: bool | None = None,
    active_only: bool = True,
    search: str | None = None,
) -> QuerySet[Product]:
    """Products of the merchant; `category_id` includes the category's descendants."""
    products = Product.objects.for_merchant(merchant).select_related("category")
    if active_only:
        products = products.filter(is_active=True)
    if category_id is not None:
        products = products.filter(category_id__in=category_descendant_ids(merchant=merchant, category_id=category_id))
    if in_stock is True:
        products = products.filter(inventory__gt=0)
    elif in_stock is False:
        products = products.filter(inventory__lte=0)
    if search:
        products = products.filter(Q(title__icontains=search) | Q(sku__icontains=search))
    return products.order_by("sku")


def product_get_by_sku(*, merchant: Merchant, sku: str, active_only: bool = False) -> Product | None:
    products = Product.objects.for_merchant(merchant).select_related("category").filter(sku=sku)
    if active_only:
        products = products.filter(is_active=True)
    return products.first()


def products_by_reference(*, merchant: Merchant, references: Iterable[str]) -> dict[str, ProductRef]:
    """Map each reference to a product, matching `external_id` first and then `sku`, in one query.

    References that match nothing are absent from the result. Called for every event batch, so it
    reads plain values rather than model instances.
    """
    wanted = {reference for reference in references if reference}
    if not wanted:
        return {}
    rows = (
        Product.objects.for_merchant(merchant)
        .filter(Q(external_id__any_of=list(wanted)) | Q(sku__any_of=list(wanted)))
        .order_by("pk")
        .values_list("pk", "sku", "external_id", "price", "cost", "is_active")
    )
    by_external_id: dict[str, ProductRef] = {}
    by_sku: dict[str, ProductRef] = {}
    for pk, sku, external_id, price, cost, is_active in rows:
        ref = ProductRef(id=pk, sku=sku, price=price, cost=cost, is_active=is_active)
        if external_id in wanted:
            # external_id is not unique; the oldest product wins so the answer is stable.
            by_external_id.setdefault(external_id, ref)
        if sku in wanted:
            by_sku[sku] = ref
    matches: dict[str, ProductRef] = {}
    for reference in wanted:
        ref = by_external_id.get(reference) or by_sku.get(reference)
        if ref is not None:
            matches[reference] = ref
    return matches


def catalog_counts(*, merchant: Merchant) -> CatalogCounts:
    totals = Product.objects.for_merchant(merchant).aggregate(
        products=Count("pk"),
        active=Count("pk", filter=Q(is_active=True)),
        out_of_stock=Count("pk", filter=Q(is_active=True, inventory__lte=0)),
    )
    return CatalogCounts(categories=Category.objects.for_merchant(merchant).count(), **totals)
