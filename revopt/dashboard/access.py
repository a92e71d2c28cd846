"""Who may open a merchant screen: the one access rule every server-rendered merchant page applies."""

from __future__ import annotations

from collections.abc import Sequence

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from revopt.tenancy.models import Merchant

from .selectors import DashboardAccess, dashboard_access_for


def merchant_screen_access(
    request: HttpRequest, *, allowed_roles: Sequence[str], forbidden_template: str
) -> tuple[DashboardAccess | None, HttpResponse | None]:
    """The merchant whose screen this is, or the response that replaces the screen: 404 for an unknown
    merchant, 403 for staff without a shop or in a role the screen is not for, the merchant chooser for
    a platform admin who has not picked one."""
    try:
        access = dashboard_access_for(user=request.user, requested_slug=request.GET.get("merchant"))
    except Merchant.DoesNotExist as error:
        raise Http404("No such merchant") from error
    if not access.allowed:
        return None, render(request, "dashboard/no_access.html", status=403)
    if access.role not in allowed_roles:
        return None, render(request, forbidden_template, {"access": access}, status=403)
    if access.merchant is None:
        return None, render(request, "dashboard/choose_merchant.html", {"access": access})
    return access, None
