"""Reads behind the merchant's recommendations screen that the serving selectors do not cover:
the model versions, and who a "preview as customer" request means.

Every query is scoped by the merchant; a fixed, small number of queries per page.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from events.models import Customer, Event
from revopt.tenancy.models import Merchant

from .models import RecommenderVersion, VersionStatus

RECENT_VERSIONS = 10
# The events that name the product a shopper is looking at, newest first, for the preview's pdp and cart.
_PRODUCT_PAGE_EVENTS = ("Product Viewed", "Product Clicked")
_CART_EVENTS = ("Product Added",)


def recommender_versions_recent(*, merchant: Merchant, limit: int = RECENT_VERSIONS) -> list[RecommenderVersion]:
    """The newest versions, without their (large) artifacts."""
    versions: QuerySet[RecommenderVersion] = (
        RecommenderVersion.objects.for_merchant(merchant).defer("artifact").order_by("-number")
    )
    return list(versions[:limit])


def any_version_training(versions: list[RecommenderVersion]) -> bool:
    return any(version.status == VersionStatus.TRAINING for version in versions)


@dataclass(frozen=True)
class PreviewVisitor:
    """The customer a preview shows, the ids the serving selector takes for them, and a page context."""

    customer: Customer
    customer_external_id: str | None
    anonymous_id: str | None
    # The product the customer looked at last (the preview's product page) and last put in a cart:
    # (storefront reference, title).
    last_viewed: tuple[str, str] | None
    last_carted: tuple[str, str] | None

    @property
    def label(self) -> str:
        if self.customer.external_id:
            return self.customer.external_id
        return self.customer.email or f"anonymous visitor {self.anonymous_id or self.customer.pk}"


def preview_visitor_find(*, merchant: Merchant, reference: str) -> PreviewVisitor | None:
    """The customer whose storefront id, email or anonymous id is `reference`; None when there is none.

    A customer merged into another is shown as the one they were merged into, as the storefront would.
    """
    reference = reference.strip()
    if not reference:
        return None
    customers = Customer.objects.for_merchant(merchant)
    customer = customers.filter(external_id=reference).first()
    if customer is None and "@" in reference:
        customer = customers.filter(email__iexact=reference).order_by("-external_id", "pk").first()
    if customer is None:
        customer = customers.filter(anonymous_identities__anonymous_id=reference).first()
    if customer is None:
        return None
    if customer.merged_into_id is not None:
        customer = customers.filter(pk=customer.merged_into_id).first() or customer
    anonymous_id = None
    if customer.external_id is None:
        anonymous_id = (
            reference
            if customer.anonymous_identities.filter(anonymous_id=reference).exists()
            else customer.anonymous_identities.order_by("-created_at").values_list("anonymous_id", flat=True).first()
        )
    return PreviewVisitor(
        customer=customer,
        customer_external_id=customer.external_id,
        anonymous_id=anonymous_id,
        last_viewed=_last_product(merchant=merchant, customer=customer, names=_PRODUCT_PAGE_EVENTS),
        last_carted=_last_product(merchant=merchant, customer=customer, names=_CART_EVENTS),
    )


def _last_product(*, merchant: Merchant, customer: Customer, names: tuple[str, ...]) -> tuple[str, str] | None:
    """(storefront reference: external id, else SKU; title) of the product of the customer's latest such event."""
    row = (
        Event.objects.for_merchant(merchant)
        .filter(customer=customer, name__in=names, product__isnull=False, product__is_active=True)
        .order_by("-timestamp")
        .values_list("product__external_id", "product__sku", "product__title")
        .first()
    )
    if row is None:
        return None
    external_id, sku, title = row
    return external_id or sku, title
