"""The support screens: find a customer, read their profile, adjust their points, export or erase their data.

Views stay thin: access from the dashboard's rule (support agents, merchant managers and platform admins; erasing
is for managers and platform admins only; another shop's customer is "not found"), reads from
`selectors.profile`, writes from `services.points` and `services.privacy`. Every POST redirects with a message.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from events.models import Customer
from revopt.dashboard.access import merchant_screen_access
from revopt.dashboard.selectors import DashboardAccess
from revopt.tenancy.models import Role

from ..forms import CustomerSearchForm, EraseForm, PointsAdjustForm
from ..selectors.profile import (
    TIMELINE_EVENTS,
    SearchRefused,
    customer_for_support,
    customer_profile,
    customer_search,
)
from ..services.points import LoyaltyError, loyalty_account_for, points_adjust
from ..services.privacy import CustomerAlreadyErased, customer_erase, customer_export

SUPPORT_ROLES = (Role.SUPPORT_AGENT, Role.MERCHANT_MANAGER, Role.PLATFORM_ADMIN)
# Erasure is irreversible: the shop's managers decide it, not its support agents.
ERASE_ROLES = (Role.MERCHANT_MANAGER, Role.PLATFORM_ADMIN)


def _access(
    request: HttpRequest, roles: tuple[str, ...] = SUPPORT_ROLES
) -> tuple[DashboardAccess | None, HttpResponse | None]:
    return merchant_screen_access(request, allowed_roles=roles, forbidden_template="support/forbidden.html")


def _merchant_query(access: DashboardAccess) -> str:
    return f"?merchant={access.merchant.slug}" if access.is_platform_admin else ""


def _customer(access: DashboardAccess, customer_id: int) -> Customer:
    try:
        return customer_for_support(merchant=access.merchant, customer_id=customer_id)
    except Customer.DoesNotExist as error:
        # Another shop's customer is "not found", never "forbidden": it is not ours to confirm.
        raise Http404("No such customer") from error


def _profile_url(access: DashboardAccess, customer: Customer) -> str:
    return reverse("support:profile", args=[customer.pk]) + _merchant_query(access)


def _events_limit(raw: str | None) -> int:
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 7 else TIMELINE_EVENTS


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    form = CustomerSearchForm(request.GET)
    asked = "q" in request.GET
    results: list[Customer] = []
    problem = ""
    if asked:
        if not form.is_valid():
            problem = " ".join(form.errors.get("q", [])) or "Type an e-mail or a customer id."
        else:
            try:
                results = customer_search(merchant=access.merchant, query=form.cleaned_data["q"])
            except SearchRefused as refused:
                problem = str(refused)
            else:
                if len(results) == 1:
                    return HttpResponseRedirect(_profile_url(access, results[0]))
                if not results:
                    problem = f"No customer of {access.merchant.name} matches “{form.cleaned_data['q']}”."
    return render(
        request,
        "support/search.html",
        {
            "access": access,
            "merchant": access.merchant,
            "form": form,
            "asked": asked,
            "results": results,
            "problem": problem,
            "merchant_query": _merchant_query(access),
        },
    )


@login_required
@require_GET
def profile(request: HttpRequest, customer_id: int) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    customer = _customer(access, customer_id)
    screen = customer_profile(
        merchant=access.merchant, customer=customer, event_limit=_events_limit(request.GET.get("events"))
    )
    return render(
        request,
        "support/profile.html",
        {
            "access": access,
            "merchant": access.merchant,
            "profile": screen,
            "customer": customer,
            "adjust_form": PointsAdjustForm(),
            "can_erase": access.role in ERASE_ROLES,
            "merchant_query": _merchant_query(access),
            "merchant_and": f"merchant={access.merchant.slug}&" if access.is_platform_admin else "",
        },
    )


@login_required
@require_POST
def adjust_points(request: HttpRequest, customer_id: int) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    customer = _customer(access, customer_id)
    back = HttpResponseRedirect(_profile_url(access, customer) + "#loyalty")
    if customer.erased_at is not None:
        messages.error(request, "Nothing changed: this customer was erased.")
        return back
    form = PointsAdjustForm(request.POST)
    if not form.is_valid():
        problems = [error for errors in form.errors.values() for error in errors]
        messages.error(request, f"Nothing changed. {' '.join(problems)}")
        return back
    account = loyalty_account_for(merchant=access.merchant, customer=customer)
    if account is None:
        messages.error(request, f"Nothing changed: {access.merchant.name} has no active loyalty program.")
        return back
    points = form.cleaned_data["points"]
    try:
        points_adjust(account=account, points=points, reason=form.cleaned_data["reason"], actor=request.user)
    except LoyaltyError as refused:
        messages.error(request, f"Nothing changed. {refused.reason}")
    else:
        verb = "Added" if points > 0 else "Removed"
        messages.success(request, f"{verb} {abs(points):,} points.")
    return back


@login_required
@require_http_methods(["GET", "POST"])
def export(request: HttpRequest, customer_id: int) -> HttpResponse:
    access, refusal = _access(request)
    if refusal is not None:
        return refusal
    customer = _customer(access, customer_id)
    data = customer_export(merchant=access.merchant, customer=customer, actor=request.user)
    response = HttpResponse(
        json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="customer-{customer.pk}-export.json"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def erase(request: HttpRequest, customer_id: int) -> HttpResponse:
    access, refusal = _access(request, ERASE_ROLES)
    if refusal is not None:
        return refusal
    customer = _customer(access, customer_id)
    if customer.erased_at is not None:
        messages.info(request, f"This customer was already erased on {customer.erased_at:%d %b %Y}: nothing to do.")
        return HttpResponseRedirect(_profile_url(access, customer))
    form = EraseForm(request.POST if request.method == "POST" else None, customer=customer)
    if request.method == "POST" and form.is_valid():
        try:
            customer_erase(merchant=access.merchant, customer=customer, actor=request.user)
        except CustomerAlreadyErased:
            messages.info(request, "This customer was already erased: nothing to do.")
        else:
            messages.success(
                request,
                f"Customer {customer.pk} erased: their e-mail and ids are gone, their activity stays anonymized "
                "and no model will train on it again.",
            )
        return HttpResponseRedirect(_profile_url(access, customer))
    return render(
        request,
        "support/erase_confirm.html",
        {
            "access": access,
            "merchant": access.merchant,
            "customer": customer,
            "form": form,
            "merchant_query": _merchant_query(access),
        },
        status=400 if request.method == "POST" else 200,
    )
