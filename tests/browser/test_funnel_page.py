"""A merchant manager reads the funnel screen in a real browser: the funnel with its drop-offs, step conversion
per day, the breakdown tabs, abandonment, offer economics, recovered revenue and the predictor's calibration.

Drives Debian's system Chromium through Playwright, like the other browser tests. Screenshots land in
var/screenshots/. Rows are made in a fixture before the browser starts (see test_experiments_page.py).
"""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.models import DecisionReason, IncentiveKind, RecoveryStatus, Segment
from revopt.tenancy.models import Role
from revopt.tenancy.services import merchant_create, staff_member_create
from tests.browser.chromium import BROWSER_TEST, PASSWORD, SCREENSHOTS, logged_in_page
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, SessionFactory
from tests.factories.funnel import AbandonmentModelFactory, OfferDecisionFactory, RecoveryMessageFactory
from tests.factories.loyalty import CustomerInsightFactory

pytestmark = BROWSER_TEST

SESSIONS = 240
DEVICES = ("desktop", "mobile", "tablet")
SOURCES = ("", "google", "newsletter", "instagram")
# Chance of going on to each next step: view, cart, checkout, order.
STEP_CHANCES = (0.8, 0.45, 0.6, 0.7)


@pytest.fixture
def shop(transactional_db):
    """240 sessions over the last 30 days going down the funnel at random, 80 randomized offer decisions, a few
    recovered carts and a trained abandonment model."""
    rng = random.Random(7)
    merchant = merchant_create(name="Demo Outdoor Co.", slug="demo-outdoor")
    staff_member_create(username="casey", password=PASSWORD, role=Role.MERCHANT_MANAGER, merchant=merchant)
    now = timezone.now()
    for index in range(SESSIONS):
        customer = CustomerFactory(merchant=merchant)
        if index % 3 == 0:
            CustomerInsightFactory(merchant=merchant, customer=customer, segment=rng.choice(list(Segment)[:5]))
        at = now - timedelta(days=rng.randint(0, 29), hours=rng.randint(0, 20), minutes=5)
        session = SessionFactory(
            merchant=merchant, customer=customer, started_at=at, device=rng.choice(DEVICES),
            utm_source=rng.choice(SOURCES),
        )  # fmt: skip
        for name, chance in zip(("Product Viewed", "Product Added", "Checkout Started"), STEP_CHANCES, strict=False):
            if rng.random() > chance:
                break
            EventFactory(merchant=merchant, customer=customer, session=session, name=name, timestamp=at)
        else:
            if rng.random() < STEP_CHANCES[-1]:
                OrderFactory(merchant=merchant, customer=customer, session=session, placed_at=at)
    for index in range(80):
        kind = IncentiveKind.NONE if index % 2 else IncentiveKind.PERCENT_10
        converted = rng.random() < (0.55 if kind == IncentiveKind.PERCENT_10 else 0.4)
        order = OrderFactory(merchant=merchant) if converted else None
        OfferDecisionFactory(
            merchant=merchant, kind=kind, code="" if kind == IncentiveKind.NONE else f"RVO-DEMO{index:04d}",
            cost=Decimal("0") if kind == IncentiveKind.NONE else Decimal("8.00"), randomized=True,
            reason=DecisionReason.EXPLORATION, decided_at=now - timedelta(days=rng.randint(0, 20)),
            converted_order=order, redeemed_at=now if order is not None and kind != IncentiveKind.NONE else None,
        )  # fmt: skip
    for index in range(6):
        placed = now - timedelta(days=index * 4 + 1)
        recovered = OrderFactory(merchant=merchant, placed_at=placed, subtotal=Decimal(60 + 15 * index))
        RecoveryMessageFactory(
            merchant=merchant, status=RecoveryStatus.SENT, sent_at=placed - timedelta(hours=2),
            recovered_order=recovered,
        )  # fmt: skip
    AbandonmentModelFactory(
        merchant=merchant, train_carts=1800, test_carts=450,
        metrics={"auc": 0.79, "auc_baseline": 0.66, "brier": 0.18, "reliability": [
            {"predicted": 0.15, "observed": 0.18, "count": 60}, {"predicted": 0.35, "observed": 0.31, "count": 90},
            {"predicted": 0.55, "observed": 0.58, "count": 120}, {"predicted": 0.75, "observed": 0.71, "count": 110},
            {"predicted": 0.9, "observed": 0.86, "count": 70},
        ]},
    )  # fmt: skip
    return merchant


@pytest.mark.django_db(transaction=True)
def test_manager_reads_the_funnel_and_switches_the_breakdown(live_server, shop, browser):
    # given
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = logged_in_page(browser, live_server.url)

    # when
    page.click("nav.nav >> text=Funnel")
    page.wait_for_url(f"{live_server.url}/funnel/")

    # then: the funnel draws five steps, the first one all the sessions
    funnel = page.locator("svg#funnel-steps")
    funnel.wait_for(state="visible")
    assert funnel.locator("g.funnel-step").count() == 5
    assert funnel.locator("g.funnel-step").first.get_attribute("data-value") == str(SESSIONS)
    assert page.locator('[data-kpi="sessions"]').inner_text() == str(SESSIONS)
    for chart in ("step-conversion", "abandonment-by-day", "recovered-revenue", "abandonment-reliability"):
        assert page.locator(f"svg#{chart}").is_visible()
    assert page.locator("svg#offer-incremental-margin g.interval").count() >= 1
    table = page.locator('[data-table="breakdown"][data-by="device"]')
    assert sorted(row.get_attribute("data-group") for row in table.locator("tbody tr").all()) == sorted(DEVICES)
    page.screenshot(path=str(SCREENSHOTS / "funnel_overview.png"), full_page=True)

    # when the manager switches the breakdown to the traffic source
    page.click('[data-control="breakdown"] >> text=Source')
    page.wait_for_url("**/funnel/?days=30&by=source")

    # then the table has one row per source ("direct" without one), the tab is marked current, the period is kept
    table = page.locator('[data-table="breakdown"][data-by="source"]')
    table.wait_for(state="visible")
    groups = sorted(row.get_attribute("data-group") for row in table.locator("tbody tr").all())
    assert groups == sorted(source or "direct" for source in SOURCES)
    assert page.locator('[data-control="breakdown"] a[aria-current="true"]').inner_text() == "Source"
    assert page.locator('[data-control="period"] a[aria-current="true"]').inner_text() == "30 days"
    page.locator('[data-section="breakdown"]').screenshot(path=str(SCREENSHOTS / "funnel_breakdown_source.png"))

    # and the period picker keeps the breakdown
    page.click('[data-control="period"] >> text=7 days')
    page.wait_for_url("**/funnel/?days=7&by=source")
    assert int(page.locator('[data-kpi="sessions"]').inner_text()) < SESSIONS

    # and the narrow layout still holds together
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.locator("svg#funnel-steps").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "funnel_overview_mobile.png"), full_page=True)
