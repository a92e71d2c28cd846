"""The merchant's recommendations screen: how each placement performs, the model versions, and a
preview of what one customer would be shown right now and why.

Views stay thin: who may see which merchant comes from the dashboard's access rule, the figures from
`selectors.placement_performance`, the preview from `selectors.recommendations_for(record=False)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from revopt.dashboard.access import merchant_screen_access
from revopt.dashboard.selectors import DashboardAccess
from revopt.tenancy.models import Merchant, Role

from .models import Placement, RecommenderVersion
from .screen_selectors import (
    PreviewVisitor,
    any_version_training,
    preview_visitor_find,
    recommender_versions_recent,
)
from .selectors import (
    PlacementDay,
    PlacementPerformance,
    RecommendationRequestError,
    RecommendationResult,
    placement_figures_sum,
    placement_performance,
    recommendations_for,
)

WINDOW_DAYS = 30
PREVIEW_K = 8
PREVIEW_REFERENCE_MAX_LENGTH = 200
ALLOWED_ROLES = (Role.MERCHANT_MANAGER, Role.PLATFORM_ADMIN)


@dataclass(frozen=True)
class VersionRow:
    version: RecommenderVersion
    ndcg: float | None  # offline NDCG@10 on the version's temporal holdout


@dataclass(frozen=True)
class PreviewPlacement:
    placement: str
    label: str
    context: str  # what the preview assumed: "on the page of X", "with X in the cart"
    result: RecommendationResult | None
    unavailable: str = ""  # why this placement shows nothing (no product to stand on)


@dataclass(frozen=True)
class Preview:
    reference: str
    visitor: PreviewVisitor | None
    placements: list[PreviewPlacement]
    error: str = ""


def _access(request: HttpRequest) -> tuple[DashboardAccess | None, HttpResponse | None]:
    return merchant_screen_access(
        request, allowed_roles=ALLOWED_ROLES, forbidden_template="recommendations/forbidden.html"
    )


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    merchant = access.merchant
    performance = placement_performance(merchant=merchant, days=WINDOW_DAYS)
    chosen = request.GET.get("placement", "")
    chart_placement = next((item for item in performance if item.placement == chosen), None)
    versions = recommender_versions_recent(merchant=merchant)
    preview = None
    if "customer" in request.GET:
        preview = _preview(merchant=merchant, reference=request.GET.get("customer", ""))
    return render(
        request,
        "recommendations/overview.html",
        {
            "access": access,
            "merchant": merchant,
            "performance": performance,
            "totals": _totals(performance),
            "chart_placement": chart_placement,
            "chart_days": chart_placement.days if chart_placement else _daily_totals(performance),
            "versions": _version_rows(versions),
            "training": any_version_training(versions),
            "preview": preview,
            "window_days": WINDOW_DAYS,
        },
    )


@login_required
@require_GET
def versions(request: HttpRequest) -> HttpResponse:
    """The versions table alone: the overview reloads it every few seconds while a training runs."""
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    recent = recommender_versions_recent(merchant=access.merchant)
    return render(
        request,
        "recommendations/_versions.html",
        {
            "access": access,
            "merchant": access.merchant,
            "versions": _version_rows(recent),
            "training": any_version_training(recent),
        },
    )


def _version_rows(versions: list[RecommenderVersion]) -> list[VersionRow]:
    rows = []
    for version in versions:
        ndcg = (version.metrics or {}).get("ndcg@10")
        rows.append(VersionRow(version=version, ndcg=float(ndcg) if isinstance(ndcg, int | float) else None))
    return rows


def _totals(performance: list[PlacementPerformance]) -> PlacementPerformance:
    return PlacementPerformance(placement="all", label="All placements", days=[], **placement_figures_sum(performance))


def _daily_totals(performance: list[PlacementPerformance]) -> list[PlacementDay]:
    """Every placement's figures added up per day (the selector gives each placement the same days)."""
    return [
        PlacementDay(day=same_day[0].day, **placement_figures_sum(same_day))
        for same_day in zip(*(item.days for item in performance), strict=True)
    ]


def _preview(*, merchant: Merchant, reference: str) -> Preview:
    reference = reference.strip()
    if not reference:
        return Preview(reference="", visitor=None, placements=[], error="Enter a customer id, email or anonymous id.")
    if len(reference) > PREVIEW_REFERENCE_MAX_LENGTH:
        return Preview(reference="", visitor=None, placements=[], error="That is too long to be a customer id.")
    visitor = preview_visitor_find(merchant=merchant, reference=reference)
    if visitor is None:
        return Preview(
            reference=reference,
            visitor=None,
            placements=[],
            error=f"No customer of {merchant.name} has the id, email or anonymous id “{reference}”.",
        )
    who = {"customer_external_id": visitor.customer_external_id, "anonymous_id": visitor.anonymous_id}
    viewed = visitor.last_viewed
    carted = visitor.last_carted or visitor.last_viewed
    no_product = "This customer has not viewed a product yet, so there is no page to preview."
    placements = [
        _preview_placement(merchant=merchant, placement=Placement.HOME, who=who),
        _preview_placement(
            merchant=merchant,
            placement=Placement.PDP,
            who=who,
            context=f"On the page of {viewed[1]}, the product they viewed last" if viewed else "",
            page={"product_ids": [viewed[0]]} if viewed else None,
            unavailable="" if viewed else no_product,
        ),
        _preview_placement(
            merchant=merchant,
            placement=Placement.CART,
            who=who,
            context=f"With {carted[1]} in the cart" if carted else "",
            page={"cart_product_ids": [carted[0]]} if carted else None,
            unavailable="" if carted else no_product,
        ),
        _preview_placement(
            merchant=merchant, placement=Placement.POST_PURCHASE, who=who, context="After their last order"
        ),
        _preview_placement(merchant=merchant, placement=Placement.EMAIL, who=who),
    ]
    return Preview(reference=reference, visitor=visitor, placements=placements)


def _preview_placement(
    *,
    merchant: Merchant,
    placement: str,
    who: dict[str, str | None],
    context: str = "",
    page: dict[str, list[str]] | None = None,
    unavailable: str = "",
) -> PreviewPlacement:
    label = str(Placement(placement).label)
    if unavailable:
        return PreviewPlacement(placement=placement, label=label, context=context, result=None, unavailable=unavailable)
    try:
        result = recommendations_for(
            merchant=merchant, placement=placement, k=PREVIEW_K, record=False, **who, **(page or {})
        )
    except RecommendationRequestError as error:
        return PreviewPlacement(
            placement=placement, label=label, context=context, result=None, unavailable=error.reason
        )
    return PreviewPlacement(placement=placement, label=label, context=context, result=result)
