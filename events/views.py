"""The merchant's funnel screen: sessions → product view → cart → checkout → order over 7, 30 or 90 days, broken
down by day, device, source or customer segment, with abandonment, what the incentives cost against the margin
they bring, the revenue cart recovery won back and how well the abandonment predictor does.

The view stays thin: who may see which merchant comes from the dashboard's access rule (the shop's managers and
support agents, platform admins choosing a merchant; another shop is "not found"), the figures from
`selectors.funnel`, and the charts from `revopt.charts`.
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from revopt import charts
from revopt.dashboard.access import merchant_screen_access
from revopt.dashboard.selectors import DashboardAccess
from revopt.dashboard.templatetags.revopt_ui import _money_text
from revopt.tenancy.models import Role

from .selectors.funnel import (
    BREAKDOWNS,
    PERIOD_CHOICES,
    STEP_LABELS,
    STEPS,
    FunnelScreen,
    FunnelSteps,
    OfferEconomics,
    funnel_period_last_days,
    funnel_screen,
)

ALLOWED_ROLES = (Role.MERCHANT_MANAGER, Role.SUPPORT_AGENT, Role.PLATFORM_ADMIN)
DEFAULT_DAYS = 30
DEFAULT_BREAKDOWN = "device"
BREAKDOWN_LABELS = {"day": "Day", "device": "Device", "source": "Source", "segment": "Segment"}
# The conversion of each step from the one before it, as the lines over days are named.
STEP_RATE_LABELS = {
    "view": "Session → product view",
    "cart": "Product view → cart",
    "checkout": "Cart → checkout",
    "order": "Checkout → order",
}
KIND_LABELS = {
    "free_shipping": "Free shipping",
    "percent_5": "5% off",
    "percent_10": "10% off",
    "points": "Bonus points",
}


def _choice(raw: str | None, allowed: tuple, default: object) -> object:
    """A query parameter among the allowed values; anything else (a typo, a hand-edited URL) gets the default."""
    for value in allowed:
        if raw is not None and raw == str(value):
            return value
    return default


def _query(access: DashboardAccess, **params: object) -> str:
    if access.is_platform_admin:
        params = {"merchant": access.merchant.slug, **params}
    return "?" + urlencode(params)


def _day_label(day: date) -> str:
    return f"{day.day} {day:%b}"


def _funnel_chart(steps: FunnelSteps) -> SafeString:
    return mark_safe(
        charts.funnel_chart(
            [(STEP_LABELS[step], count) for step, count in zip(STEPS, steps.total.reached, strict=True)],
            title="Sessions reaching each step",
            chart_id="funnel-steps",
            empty_message="No sessions in this period",
        )
    )


def _conversion_chart(daily: FunnelSteps) -> SafeString:
    labels = [_day_label(date.fromisoformat(group.key)) for group in daily.groups]
    series = [
        (STEP_RATE_LABELS[step], [group.step_conversion[index] for group in daily.groups])
        for index, step in enumerate(STEPS[1:])
    ]
    return mark_safe(
        charts.multi_line_chart(
            labels,
            series,
            title="Step conversion per day",
            chart_id="step-conversion",
            value_format="{:.0%}",
            empty_message="No sessions in this period",
        )
    )


def _abandonment_chart(screen: FunnelScreen) -> SafeString:
    days = screen.abandonment
    return mark_safe(
        charts.multi_line_chart(
            [_day_label(day.day) for day in days],
            [("Cart abandonment", [day.rate for day in days])],
            title="Share of carts abandoned per day",
            chart_id="abandonment-by-day",
            height=200,
            value_format="{:.0%}",
            empty_message="No carts in this period",
        )
    )


def _offer_chart(offers: OfferEconomics, currency: str) -> SafeString:
    money = lambda value: _money_text(value, currency)  # noqa: E731
    rows = []
    estimates = [("All offers", "all", offers.incremental)] + [
        (KIND_LABELS.get(kind, kind), kind, estimate) for kind, _, estimate in offers.incremental_by_kind
    ]
    for label, key, estimate in estimates:
        if estimate is None:
            continue
        tone = "positive" if estimate.low > 0 else "negative" if estimate.high < 0 else "neutral"
        rows.append(
            charts.IntervalRow(
                label=label, estimate=estimate.per_decision, low=estimate.low, high=estimate.high, tone=tone, key=key
            )
        )
    return mark_safe(
        charts.interval_chart(
            rows,
            title="Incremental margin per decision, offer against no offer",
            chart_id="offer-incremental-margin",
            value_format=money,
            tick_format=lambda value: _money_text(value, currency, decimals=0 if float(value).is_integer() else 2),
            empty_message="Not enough randomized decisions yet",
        )
    )


def _cost_vs_margin_chart(offers: OfferEconomics, currency: str) -> SafeString:
    series = []
    if offers.offers_issued:
        series.append(("Cost given", float(offers.cost_given)))
        if offers.incremental_total is not None:
            series.append(("Incremental margin", offers.incremental_total[0]))
    return mark_safe(
        charts.bar_chart(
            series,
            title="Offer cost against the margin the offers brought",
            chart_id="offer-cost-vs-margin",
            height=200,
            value_format=lambda value: _money_text(value, currency, decimals=0),
            empty_message="No offers issued in this period",
        )
    )


def _recovery_chart(screen: FunnelScreen, currency: str) -> SafeString:
    series = [(_day_label(day.day), day.recovered_revenue) for day in screen.recovery.by_day]
    if not any(value for _, value in series):
        series = []
    return mark_safe(
        charts.bar_chart(
            series,
            title="Revenue of recovered carts per day",
            chart_id="recovered-revenue",
            height=200,
            value_format=lambda value: _money_text(value, currency, decimals=0),
            empty_message="No recovered carts in this period",
        )
    )


def _reliability_chart(screen: FunnelScreen) -> SafeString:
    return mark_safe(
        charts.reliability_chart(
            screen.predictor.reliability,
            title="Predicted abandonment against observed abandonment",
            chart_id="abandonment-reliability",
            unit="carts",
            empty_message="No abandonment model yet",
        )
    )


def _breakdown_rows(breakdown: FunnelSteps) -> list[dict]:
    """Per group: its figures and the inline bar width (overall conversion against the best group's)."""
    best = max((group.overall_conversion or 0.0 for group in breakdown.groups), default=0.0)
    return [
        {
            "group": group,
            "steps": list(zip(group.reached[1:], group.step_conversion, strict=True)),
            "bar": round(100 * (group.overall_conversion or 0.0) / best) if best else 0,
        }
        for group in breakdown.groups
    ]


@login_required
@require_GET
def funnel_overview(request: HttpRequest) -> HttpResponse:
    access, refusal = merchant_screen_access(
        request, allowed_roles=ALLOWED_ROLES, forbidden_template="funnel/forbidden.html"
    )
    if refusal is not None:
        return refusal
    merchant = access.merchant
    days = _choice(request.GET.get("days"), PERIOD_CHOICES, DEFAULT_DAYS)
    by = _choice(request.GET.get("by"), BREAKDOWNS, DEFAULT_BREAKDOWN)
    period = funnel_period_last_days(merchant=merchant, days=days)
    screen = funnel_screen(merchant=merchant, period=period, by=by)
    currency = merchant.currency
    return render(
        request,
        "funnel/overview.html",
        {
            "access": access,
            "merchant": merchant,
            "screen": screen,
            "total": screen.daily.total,
            "days": days,
            "by": by,
            "period_links": [(choice, _query(access, days=choice, by=by)) for choice in PERIOD_CHOICES],
            "breakdown_links": [(key, BREAKDOWN_LABELS[key], _query(access, days=days, by=key)) for key in BREAKDOWNS],
            "breakdown_label": BREAKDOWN_LABELS[by],
            "step_headers": [STEP_LABELS[step] for step in STEPS[1:]],
            "breakdown_rows": _breakdown_rows(screen.breakdown),
            "funnel_chart": _funnel_chart(screen.daily),
            "conversion_chart": _conversion_chart(screen.daily),
            "conversion_legend": list(STEP_RATE_LABELS.values()),
            "abandonment_chart": _abandonment_chart(screen),
            "offer_chart": _offer_chart(screen.offers, currency),
            "cost_chart": _cost_vs_margin_chart(screen.offers, currency),
            "recovery_chart": _recovery_chart(screen, currency),
            "reliability_chart": _reliability_chart(screen),
        },
    )
