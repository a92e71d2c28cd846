"""The merchant's pricing screens: the overview (KPIs, the demand model, the proposals queue, recent
changes) and one product's page (elasticity, guardrails, curves, the pending proposal, what-if).

Views stay thin: who may see which merchant comes from the dashboard's access rule (managers and platform
admins; support agents are refused; another shop's rows are "not found"), reads from `selectors.screens`,
writes from `services.approval` and the fit task. Every POST redirects (PRG) with a message; a refusal
(a guardrail, a stale proposal, a forbidden decider) is the message, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST

from catalog.models import Product
from revopt import charts
from revopt.charts import CurveMarker, IntervalRow
from revopt.dashboard.access import merchant_screen_access
from revopt.dashboard.selectors import DashboardAccess
from revopt.dashboard.templatetags.revopt_ui import _money_text
from revopt.tenancy.models import Role

from .forms import DecisionForm, RollbackForm, WhatIfForm
from .guardrails import DEFAULT_SEARCH_SHARE, GuardrailViolation
from .models import PriceChange, PriceProposal
from .selectors.screens import (
    ChangeDay,
    GridPoint,
    PricingOverview,
    ProductPricing,
    change_for_rollback,
    checks_at,
    grid_point,
    model_status,
    pricing_overview,
    product_for_screen,
    product_pricing,
    proposal_for_decision,
)
from .services.approval import (
    PriceDecisionRefused,
    price_change_rollback,
    price_proposal_approve,
    price_proposal_reject,
)
from .tasks import demand_model_fit_task

ALLOWED_ROLES = (Role.MERCHANT_MANAGER, Role.PLATFORM_ADMIN)


def _access(request: HttpRequest) -> tuple[DashboardAccess | None, HttpResponse | None]:
    return merchant_screen_access(request, allowed_roles=ALLOWED_ROLES, forbidden_template="pricing/forbidden.html")


def _merchant_query(access: DashboardAccess) -> str:
    return f"?merchant={access.merchant.slug}" if access.is_platform_admin else ""


def _back(request: HttpRequest, access: DashboardAccess, default: str) -> HttpResponseRedirect:
    """Back to the page the form was on (`next`, a pricing page of this site), else `default`."""
    target = request.POST.get("next", "")
    overview = reverse("pricing:index")
    if not (
        target.startswith(overview)
        and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False)
    ):
        target = default + _merchant_query(access)
    return HttpResponseRedirect(target)


def _product_url(product: Product) -> str:
    return reverse("pricing:product", args=[product.sku])


# --- charts -----------------------------------------------------------------------------------


def _elasticity_chart(screen: PricingOverview) -> SafeString:
    rows = [
        IntervalRow(
            label=f"{category.name} ({category.products} product{'s' if category.products != 1 else ''})",
            estimate=category.mean,
            low=category.low,
            high=category.high,
            tone="neutral",
            key=str(category.category_id or "none"),
        )
        for category in screen.categories
    ]
    # charts.* escape every label and title themselves.
    return mark_safe(
        charts.interval_chart(
            rows,
            title="Price elasticity by category",
            chart_id="elasticity-by-category",
            value_format="{:.2f}",
            tick_format="{:g}",
            interval_name="spread across its products (90%)",
            empty_message="No demand fit in service yet",
        )
    )


def _changes_chart(days: list[ChangeDay]) -> SafeString:
    return mark_safe(
        charts.updown_bar_chart(
            [(f"{day.day.day} {day.day:%b}", day.up, day.down) for day in days],
            title="Price changes per day, last 90 days",
            chart_id="price-changes-per-day",
            up_name="rises",
            down_name="cuts",
            empty_message="No price changes in the last 90 days",
        )
    )


def _curve_markers(screen: ProductPricing, shown: GridPoint | None) -> list[CurveMarker]:
    markers = [CurveMarker(label="Current", x=float(screen.product.price), kind="current")]
    if screen.pending is not None:
        markers.append(CurveMarker(label="Proposed", x=float(screen.pending.proposed_price), kind="proposed"))
    if screen.competitors:
        cheapest = screen.competitors[0]
        markers.append(CurveMarker(label=cheapest.competitor, x=float(cheapest.price), kind="competitor"))
    if shown is not None:
        markers.append(CurveMarker(label="What if", x=shown.price, kind="what-if"))
    return markers


def _curve_charts(screen: ProductPricing, shown: GridPoint | None, currency: str) -> tuple[SafeString, SafeString]:
    money = lambda value: _money_text(value, currency)  # noqa: E731
    markers = _curve_markers(screen, shown)
    shade = (float(screen.feasible[0]), float(screen.feasible[1])) if screen.feasible else None
    common = {"markers": markers, "shade": shade, "shade_label": "Allowed by the guardrails", "x_format": money}
    demand = charts.curve_chart(
        [(point.price, point.units, point.units_lower, point.units_upper) for point in screen.grid],
        title="Units per week by price",
        chart_id="demand-curve",
        value_format=lambda value: f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}",
        empty_message="No demand estimate for this product",
        **common,
    )
    profit = charts.curve_chart(
        [(point.price, point.profit, point.profit_lower, point.profit_upper) for point in screen.grid],
        title="Profit per week by price" if screen.product.cost is not None else "Revenue per week by price",
        chart_id="profit-curve",
        value_format=money,
        empty_message="No demand estimate for this product",
        **common,
    )
    return mark_safe(demand), mark_safe(profit)


def _signed(value: float, text: Callable[[float], str]) -> str:
    # The same minus sign as the page's script, so the figures do not jump when the slider takes over.
    return ("+" if value >= 0 else "−") + text(abs(value))


def _deltas(shown: GridPoint | None, baseline: GridPoint | None, currency: str) -> dict[str, str]:
    """The what-if against keeping today's price (expected values)."""
    if shown is None or baseline is None:
        return {}
    money = lambda value: _money_text(value, currency)  # noqa: E731
    return {
        "units": _signed(shown.units - baseline.units, lambda value: f"{value:,.1f}"),
        "revenue": _signed(shown.revenue - baseline.revenue, money),
        "profit": _signed(shown.profit - baseline.profit, money),
    }


# --- pages ------------------------------------------------------------------------------------


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    screen = pricing_overview(merchant=access.merchant)
    return render(
        request,
        "pricing/overview.html",
        {
            "access": access,
            "merchant": access.merchant,
            "screen": screen,
            "elasticity_chart": _elasticity_chart(screen),
            "changes_chart": _changes_chart(screen.change_days),
            "merchant_query": _merchant_query(access),
            "here": request.get_full_path(),
        },
    )


@login_required
@require_GET
def product(request: HttpRequest, sku: str) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    try:
        item = product_for_screen(merchant=access.merchant, sku=sku)
    except Product.DoesNotExist as error:
        # Another shop's SKU is "not found", never "forbidden": it is not ours to confirm.
        raise Http404("No such product") from error
    screen = product_pricing(merchant=access.merchant, product=item)
    asked = "price" in request.GET
    form = WhatIfForm(request.GET if asked else None, initial={"price": item.price}, max_price=screen.max_what_if_price)
    tried: GridPoint | None = None
    if asked and form.is_valid() and screen.pricing_input is not None:
        price = form.cleaned_data["price"]
        tried = grid_point(screen.pricing_input, price, limits=screen.limits, context=screen.context)
    shown = tried or screen.baseline
    currency = access.merchant.currency
    demand_chart, profit_chart = _curve_charts(screen, shown, currency)
    return render(
        request,
        "pricing/product.html",
        {
            "access": access,
            "merchant": access.merchant,
            "screen": screen,
            "product": item,
            "form": form,
            "tried": tried,
            "deltas": _deltas(shown, screen.baseline, currency),
            "proposal_checks": (
                checks_at(screen=screen, price=screen.pending.proposed_price) if screen.pending is not None else ()
            ),
            "default_search_percent": f"{DEFAULT_SEARCH_SHARE:.0%}",
            "demand_chart": demand_chart,
            "profit_chart": profit_chart,
            "grid": [point.as_dict() for point in screen.grid],
            "baseline": screen.baseline.as_dict() if screen.baseline else None,
            "merchant_query": _merchant_query(access),
            "here": request.get_full_path(),
        },
        status=400 if asked and not form.is_valid() else 200,
    )


# --- actions ----------------------------------------------------------------------------------


@login_required
@require_POST
def refit(request: HttpRequest) -> HttpResponse:
    """Queue a fit of the demand model once this request commits (one at a time)."""
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    running = model_status(merchant=access.merchant).running
    if running is not None:
        messages.info(request, f"A fit is already running ({running.progress:.0%} done): no second one was queued.")
    else:
        merchant_id = access.merchant.pk
        transaction.on_commit(lambda: demand_model_fit_task.delay(merchant_id))
        messages.success(request, "Refit queued: the demand model is being fitted on your latest sales.")
    return HttpResponseRedirect(reverse("pricing:index") + _merchant_query(access))


def _decide(
    request: HttpRequest, proposal_id: int, decide: Callable[..., object], done: Callable[[PriceProposal], str]
) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    try:
        proposal = proposal_for_decision(merchant=access.merchant, proposal_id=proposal_id)
    except PriceProposal.DoesNotExist as error:
        raise Http404("No such proposal") from error
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Nothing changed. {' '.join(form.errors.get('note', []))}")
        return _back(request, access, _product_url(proposal.product))
    try:
        decide(proposal=proposal, actor=request.user, note=form.cleaned_data["note"])
    except GuardrailViolation as violation:
        messages.error(request, f"Nothing changed: the price would break a guardrail. {violation}")
    except PriceDecisionRefused as refused:
        messages.error(request, f"Nothing changed. {refused.reason}")
    else:
        messages.success(request, done(proposal))
    return _back(request, access, _product_url(proposal.product))


def _money(value: Decimal, currency: str) -> str:
    return _money_text(value, currency)


@login_required
@require_POST
def approve(request: HttpRequest, proposal_id: int) -> HttpResponse:
    return _decide(
        request,
        proposal_id,
        price_proposal_approve,
        lambda proposal: (
            f"{proposal.product.title} is now {_money(proposal.proposed_price, proposal.merchant.currency)} "
            f"(was {_money(proposal.current_price, proposal.merchant.currency)})."
        ),
    )


@login_required
@require_POST
def reject(request: HttpRequest, proposal_id: int) -> HttpResponse:
    return _decide(
        request,
        proposal_id,
        price_proposal_reject,
        lambda proposal: (
            f"Proposal rejected: {proposal.product.title} stays at "
            f"{_money(proposal.current_price, proposal.merchant.currency)}."
        ),
    )


@login_required
@require_POST
def rollback(request: HttpRequest, change_id: int) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    try:
        change: PriceChange = change_for_rollback(merchant=access.merchant, change_id=change_id)
    except PriceChange.DoesNotExist as error:
        raise Http404("No such price change") from error
    back = _product_url(change.product)
    form = RollbackForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Nothing changed. {' '.join(form.errors.get('reason', []))}")
        return _back(request, access, back)
    try:
        restored = price_change_rollback(change=change, actor=request.user, reason=form.cleaned_data["reason"])
    except GuardrailViolation as violation:
        messages.error(request, f"Nothing changed: the old price would break a guardrail now. {violation}")
    except PriceDecisionRefused as refused:
        messages.error(request, f"Nothing changed. {refused.reason}")
    else:
        currency = access.merchant.currency
        messages.success(
            request, f"Rolled back: {change.product.title} is {_money(restored.to_price, currency)} again."
        )
    return _back(request, access, back)
