import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from events.models import ModelRunStatus
from loyalty.models import DecisionReason, IncentiveKind, RecoveryStatus
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, SessionFactory
from tests.factories.funnel import AbandonmentModelFactory, OfferDecisionFactory, RecoveryMessageFactory

pytestmark = pytest.mark.django_db

# On PostgreSQL the funnel statement runs with JIT off, in a savepoint: five more statements around it.
JIT_GUARD_QUERIES = 5 if connection.vendor == "postgresql" else 0

FUNNEL = reverse("funnel:index")


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _kpi(html: str, name: str) -> str:
    return re.search(rf'data-kpi="{name}">([^<]*)<', html).group(1).strip()


def _shop_sessions(merchant, *, count: int, days_ago: int = 1, device: str = "desktop", ordered: int = 0):
    """`count` sessions that viewed a product and added to the cart; the first `ordered` of them ordered."""
    at = timezone.now() - timedelta(days=days_ago)
    for index in range(count):
        customer = CustomerFactory(merchant=merchant)
        session = SessionFactory(merchant=merchant, customer=customer, started_at=at, device=device)
        for name in ("Product Viewed", "Product Added"):
            EventFactory(merchant=merchant, customer=customer, session=session, name=name, timestamp=at)
        if index < ordered:
            OrderFactory(merchant=merchant, customer=customer, session=session, placed_at=at)


@pytest.fixture
def shop(merchant):
    # 4 desktop carts (2 ordered), 2 mobile carts 10 days ago: 6 sessions, 2 orders, 4 abandoned carts.
    _shop_sessions(merchant, count=4, ordered=2)
    _shop_sessions(merchant, count=2, days_ago=10, device="mobile")
    return merchant


def test_anonymous_visitors_are_sent_to_the_login_page():
    # when
    response = Client().get(FUNNEL)
    # then
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", ["merchant_manager", "support_agent"])
def test_the_shops_managers_and_support_agents_see_its_funnel(shop, role, request):
    # given
    user = request.getfixturevalue(role)
    # when
    response = _login(user).get(FUNNEL)
    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert _kpi(html, "sessions") == "6"
    assert _kpi(html, "conversion") == "33.3%"
    assert _kpi(html, "abandonment") == "66.7%"
    assert 'id="funnel-steps"' in html


def test_another_merchants_manager_sees_only_their_own_shop_whatever_they_ask_for(shop, other_merchant_manager):
    # when
    client = _login(other_merchant_manager)
    own = client.get(FUNNEL)
    asked_for_ours = client.get(FUNNEL, {"merchant": shop.slug})
    # then
    for response in (own, asked_for_ours):
        html = response.content.decode()
        assert response.status_code == 200
        assert _kpi(html, "sessions") == "0"
        assert shop.name not in html


def test_a_platform_admin_picks_the_merchant(shop, platform_admin):
    # given
    client = _login(platform_admin)
    # when
    chooser = client.get(FUNNEL)
    page = client.get(FUNNEL, {"merchant": shop.slug})
    unknown = client.get(FUNNEL, {"merchant": "no-such-shop"})
    # then
    assert chooser.status_code == 200 and shop.name in chooser.content.decode()
    assert 'id="funnel-steps"' not in chooser.content.decode()
    assert page.status_code == 200 and _kpi(page.content.decode(), "sessions") == "6"
    # the period and breakdown links keep the chosen merchant
    assert f"?merchant={shop.slug}&amp;days=7&amp;by=device" in page.content.decode()
    assert unknown.status_code == 404


def test_the_period_picker_narrows_the_window(shop, merchant_manager):
    # when
    week = _login(merchant_manager).get(FUNNEL, {"days": "7"})
    # then: the mobile sessions of 10 days ago fall outside the last 7 days
    html = week.content.decode()
    assert _kpi(html, "sessions") == "4"
    assert 'aria-current="true" data-days="7"' in html


def _breakdown_rows(html: str) -> list[tuple[str, str, str]]:
    return re.findall(
        r'<tr data-group="([^"]+)">\s*<th scope="row">([^<]+)</th>\s*<td class="num" data-figure="sessions">(\d+)', html
    )


def test_the_breakdown_is_by_device_unless_a_tab_asks_otherwise(shop, merchant_manager):
    # when
    client = _login(merchant_manager)
    by_device = client.get(FUNNEL).content.decode()
    by_day = client.get(FUNNEL, {"by": "day", "days": "7"}).content.decode()
    # then
    assert 'data-table="breakdown" data-by="device"' in by_device
    assert _breakdown_rows(by_device) == [("desktop", "Desktop", "4"), ("mobile", "Mobile", "2")]
    day_rows = _breakdown_rows(by_day)
    assert len(day_rows) == 7 and [sessions for *_, sessions in day_rows].count("4") == 1
    assert 'aria-current="true" data-by="day"' in by_day


@pytest.mark.parametrize("params", [{"days": "365"}, {"days": "abc"}, {"by": "colour"}, {"by": ""}])
def test_bad_period_or_breakdown_falls_back_to_the_defaults(shop, merchant_manager, params):
    # when
    response = _login(merchant_manager).get(FUNNEL, params)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert 'aria-current="true" data-days="30"' in html
    assert 'data-table="breakdown" data-by="device"' in html


def test_offers_recovery_and_predictor_sections_show_their_figures(shop, merchant_manager):
    # given 30 + 30 randomized decisions: offers convert 20/30 at 28 − 8 = 20.00, "none" 10/30 at 28.00
    now = timezone.now() - timedelta(hours=2)
    for kind, converted in ((IncentiveKind.NONE, 10), (IncentiveKind.PERCENT_10, 20)):
        for index in range(30):
            order = OrderFactory(merchant=shop) if index < converted else None
            OfferDecisionFactory(
                merchant=shop, kind=kind, code="" if kind == IncentiveKind.NONE else f"C-{index}",
                cost=Decimal("0") if kind == IncentiveKind.NONE else Decimal("8.00"), decided_at=now,
                randomized=True, reason=DecisionReason.EXPLORATION, converted_order=order,
                redeemed_at=now if order is not None and kind != IncentiveKind.NONE else None,
            )  # fmt: skip
    recovered = OrderFactory(merchant=shop, placed_at=now, subtotal=Decimal("75.00"))
    RecoveryMessageFactory(merchant=shop, status=RecoveryStatus.SENT, sent_at=now, recovered_order=recovered)
    AbandonmentModelFactory(
        merchant=shop, metrics={"auc": 0.812, "auc_baseline": 0.64, "brier": 0.171,
                                "reliability": [{"predicted": 0.3, "observed": 0.28, "count": 50}]},
    )  # fmt: skip
    AbandonmentModelFactory(merchant=shop, status=ModelRunStatus.FAILED, error="not enough carts")
    # when
    html = _login(merchant_manager).get(FUNNEL).content.decode()
    # then: (20 × 20 − 10 × 28) / 30 = 4.00 per decision, over 30 offers issued = 120.00
    assert _kpi(html, "incremental-margin") == "$120.00"
    assert _kpi(html, "recovered-revenue") == "$75.00"
    assert 'data-figure="cost-given">$160.00<' in html
    assert 'data-figure="predictor-auc">0.812<' in html
    assert 'data-run-status="failed"' in html and "not enough carts" in html
    assert 'data-row="all" data-estimate="4"' in html
    assert 'data-predicted="0.3"' in html


def test_with_too_few_randomized_decisions_the_page_says_so(shop, merchant_manager):
    # given
    OfferDecisionFactory(merchant=shop, randomized=True, decided_at=timezone.now() - timedelta(hours=1))
    # when
    html = _login(merchant_manager).get(FUNNEL).content.decode()
    # then
    assert _kpi(html, "incremental-margin") == "—"
    assert "Not enough randomized decisions yet" in html


def test_a_shop_without_recent_sessions_shows_its_last_active_days(merchant, merchant_manager):
    # given
    _shop_sessions(merchant, count=3, days_ago=200, ordered=1)
    # when
    html = _login(merchant_manager).get(FUNNEL).content.decode()
    # then
    assert 'data-notice="anchored"' in html
    assert _kpi(html, "sessions") == "3"


def test_an_empty_shop_renders_with_empty_states(merchant, merchant_manager):
    # when
    response = _login(merchant_manager).get(FUNNEL)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-empty="breakdown"' in html and 'data-empty="predictor"' in html
    assert "No sessions in this period" in html


def test_the_page_costs_the_same_queries_for_6_and_60_sessions(shop, merchant_manager, django_assert_max_num_queries):
    # given
    client = _login(merchant_manager)
    client.get(FUNNEL, {"by": "segment"})
    _shop_sessions(shop, count=54, ordered=10, device="tablet")
    # when / then
    with django_assert_max_num_queries(17 + JIT_GUARD_QUERIES):
        response = client.get(FUNNEL, {"by": "segment"})
    assert _kpi(response.content.decode(), "sessions") == "60"


def test_the_nav_links_the_funnel(merchant_manager):
    # when
    html = _login(merchant_manager).get(reverse("dashboard:home")).content.decode()
    # then
    assert f'href="{FUNNEL}"' in html


def test_only_get_is_allowed(merchant_manager):
    # when
    response = _login(merchant_manager).post(FUNNEL)
    # then
    assert response.status_code == 405
