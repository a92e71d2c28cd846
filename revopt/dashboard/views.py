from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from revopt.tenancy.models import Merchant

from .revenue import PERIOD_CHOICES, period_days_from, revenue_page_cached
from .selectors import dashboard_access_for, merchant_overview


@login_required
def home(request: HttpRequest) -> HttpResponse:
    try:
        access = dashboard_access_for(user=request.user, requested_slug=request.GET.get("merchant"))
    except Merchant.DoesNotExist as error:
        raise Http404("No such merchant") from error
    if not access.allowed:
        return render(request, "dashboard/no_access.html", status=403)
    if access.merchant is None:
        return render(request, "dashboard/choose_merchant.html", {"access": access})
    merchant_query = f"?merchant={access.merchant.slug}" if access.is_platform_admin else ""
    # An unknown ?period= shows the default period rather than an error: the home page always opens.
    period_days = period_days_from(request.GET.get("period"))
    revenue = revenue_page_cached(merchant=access.merchant, period_days=period_days, merchant_query=merchant_query)
    overview = merchant_overview(merchant=access.merchant)
    return render(
        request,
        "dashboard/home.html",
        {
            "access": access,
            "merchant": access.merchant,
            "revenue": revenue,
            "overview": overview,
            "kpis": overview.kpis,
            "period_choices": PERIOD_CHOICES,
            "merchant_query": merchant_query,
            "merchant_param": f"&merchant={access.merchant.slug}" if access.is_platform_admin else "",
        },
    )
