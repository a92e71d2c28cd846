from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from revopt.tenancy.models import Merchant

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
    overview = merchant_overview(merchant=access.merchant)
    return render(
        request,
        "dashboard/home.html",
        {"access": access, "merchant": access.merchant, "overview": overview, "kpis": overview.kpis},
    )
