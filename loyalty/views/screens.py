"""The merchant's loyalty screen: KPIs, segments and clusters, cohort retention, the CLV distribution and
the churn-risk list, on one page.

The view stays thin: who may see which merchant comes from the dashboard's access rule (managers and platform
admins; support agents are refused; another shop is "not found"), the figures from `selectors.screens`, and
the charts from `revopt.charts`.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from revopt import charts
from revopt.dashboard.access import merchant_screen_access
from revopt.dashboard.templatetags.revopt_ui import _money_text
from revopt.tenancy.models import Role

from ..models import RetentionCandidate
from ..selectors.insights import ClvDistribution
from ..selectors.screens import ChurnMetrics, Clusters, CohortRow, Histogram, loyalty_overview
from ..services.churn import NO_OFFER, OFFERS

ALLOWED_ROLES = (Role.MERCHANT_MANAGER, Role.PLATFORM_ADMIN)
OFFER_LABELS = {offer.key: offer.label for offer in OFFERS} | {NO_OFFER: "No offer"}


def _risk_rows(candidates: list[RetentionCandidate]) -> list[tuple[RetentionCandidate, str]]:
    """Each candidate with its offer in words ("10% off the next order", not "percent_10")."""
    return [
        (candidate, OFFER_LABELS.get(candidate.offer, candidate.offer.replace("_", " ").capitalize()))
        for candidate in candidates
    ]


def _cohort_label(row: CohortRow) -> str:
    return f"{row.month:%b %Y}"


def _heatmap(cohorts: list[CohortRow], months: list[int]) -> SafeString:
    # charts.* escape every label and title themselves.
    return mark_safe(
        charts.heatmap_chart(
            [(_cohort_label(row), row.shares) for row in cohorts],
            columns=[str(month) for month in months],
            title="Share of each monthly cohort ordering again, by months since the first order",
            chart_id="cohort-retention",
            empty_message="No orders in the last 12 months",
        )
    )


def _clv_chart(distribution: ClvDistribution | None, currency: str) -> SafeString:
    money = lambda value: _money_text(value, currency, decimals=0)  # noqa: E731
    bins = []
    if distribution is not None:
        bins = list(zip(distribution.edges[:-1], distribution.edges[1:], distribution.counts, strict=True))
    return mark_safe(
        charts.histogram_chart(
            bins,
            title="Customers by 12-month lifetime value",
            chart_id="clv-distribution",
            marker=("Median", distribution.median) if distribution is not None else None,
            x_format=money,
            open_ended=bool(distribution and distribution.clipped),
            empty_message="No lifetime values yet",
        )
    )


def _p_alive_chart(histogram: Histogram) -> SafeString:
    return mark_safe(
        charts.histogram_chart(
            histogram.bins,
            title="Customers by probability of still being active",
            chart_id="p-alive-distribution",
            height=180,
            marker=("Median", histogram.median) if histogram.median is not None else None,
            x_format="{:.0%}",
            empty_message="No lifetime values yet",
        )
    )


def _silhouette_chart(clusters: Clusters) -> SafeString:
    return mark_safe(
        charts.bar_chart(
            [(f"k={k}", score) for k, score in clusters.silhouette],
            title="Silhouette score per number of clusters",
            chart_id="cluster-silhouette",
            height=180,
            value_format="{:.2f}",
            empty_message="No clustering yet",
        )
    )


def _reliability_chart(churn: ChurnMetrics) -> SafeString:
    return mark_safe(
        charts.reliability_chart(
            churn.calibration,
            title="Predicted churn against observed churn",
            chart_id="churn-reliability",
            empty_message="No churn model yet",
        )
    )


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    access, refusal = merchant_screen_access(
        request, allowed_roles=ALLOWED_ROLES, forbidden_template="loyalty/forbidden.html"
    )
    if refusal is not None:
        return refusal
    screen = loyalty_overview(merchant=access.merchant)
    return render(
        request,
        "loyalty/overview.html",
        {
            "access": access,
            "merchant": access.merchant,
            "screen": screen,
            "cohort_chart": _heatmap(screen.cohorts, screen.months),
            "clv_chart": _clv_chart(screen.clv, access.merchant.currency),
            "p_alive_chart": _p_alive_chart(screen.p_alive),
            "silhouette_chart": _silhouette_chart(screen.clusters),
            "reliability_chart": _reliability_chart(screen.churn),
            "risk_rows": _risk_rows(screen.candidates),
            "merchant_query": f"?merchant={access.merchant.slug}" if access.is_platform_admin else "",
        },
    )
