"""A support agent finds a customer by e-mail, reads their profile and adjusts their points, in a real browser.

Drives Debian's system Chromium through Playwright, like the other browser tests. Rows are made in a fixture
before the browser starts; the test checks what was written through the page only.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from events.models import AnonymousIdentity
from loyalty.models import Segment
from revopt.tenancy.models import Role
from revopt.tenancy.services import merchant_create, staff_member_create
from tests.browser.chromium import BROWSER_TEST, PASSWORD, SCREENSHOTS, logged_in_page
from tests.factories.catalog import ProductFactory
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory, SessionFactory
from tests.factories.experiments import ExposureFactory
from tests.factories.loyalty import CustomerInsightFactory, InsightRunFactory, LoyaltyProgramFactory, TierFactory

pytestmark = BROWSER_TEST


@pytest.fixture
def shop(transactional_db):
    """An outdoor shop with a points program, and Ada: two orders, a browsing session, scores, an experiment."""
    merchant = merchant_create(name="Demo Outdoor Co.", slug="demo-outdoor")
    staff_member_create(username="casey", password=PASSWORD, role=Role.SUPPORT_AGENT, merchant=merchant)
    program = LoyaltyProgramFactory(merchant=merchant)
    TierFactory(merchant=merchant, program=program, name="Silver", threshold_points=500)
    now = timezone.now()
    ada = CustomerFactory(
        merchant=merchant, external_id="shop-ada", email="ada.lovelace@example.com", marketing_consent=True,
        created_at=now - timedelta(days=400),
    )  # fmt: skip
    AnonymousIdentity.objects.create(merchant=merchant, anonymous_id="device-ada", customer=ada)
    tent = ProductFactory(
        merchant=merchant, sku="TENT-2P", title="Alpine 2P Tent", price=Decimal("289.00"), inventory=40
    )
    stove = ProductFactory(merchant=merchant, sku="STOVE", title="Pocket Stove", price=Decimal("49.00"), inventory=40)
    session = SessionFactory(merchant=merchant, customer=ada, started_at=now - timedelta(hours=5), device="mobile")
    for minutes in (290, 285, 280, 275):
        EventFactory(
            merchant=merchant, customer=ada, session=session, product=stove, timestamp=now - timedelta(minutes=minutes)
        )
    for days, product in ((60, tent), (3, stove)):
        order = OrderFactory(
            merchant=merchant, customer=ada, placed_at=now - timedelta(days=days), subtotal=product.price
        )
        OrderLineFactory(order=order, product=product)
    lamp = ProductFactory(merchant=merchant, sku="LAMP", title="Trail Lamp", price=Decimal("19.00"), inventory=40)
    OrderLineFactory(order=OrderFactory(merchant=merchant, placed_at=now - timedelta(days=2)), product=lamp)
    run = InsightRunFactory(
        merchant=merchant, summary={"profiles": [{"cluster": 1, "customers": 40, "means": {}, "label": "Big baskets"}]}
    )
    CustomerInsightFactory(
        merchant=merchant, customer=ada, segment=Segment.LOYAL, cluster=1, segments_run=run, churn_probability=0.18,
        clv_12m=412.0, p_alive=0.93,
    )  # fmt: skip
    ExposureFactory(
        variant__experiment__merchant=merchant, variant__merchant=merchant, variant__experiment__name="Free shipping",
        customer=ada,
    )  # fmt: skip
    return merchant


@pytest.mark.django_db(transaction=True)
def test_agent_finds_a_customer_reads_the_profile_and_adjusts_points(live_server, shop, browser):
    # given
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = logged_in_page(browser, live_server.url)

    # when: the agent searches by the start of the e-mail, in capitals
    page.click("nav.nav >> text=Support")
    page.fill("#id_q", "ADA.LOVE")
    page.click('[data-action="search"]')
    page.wait_for_selector('[data-section="timeline"]')

    # then: the one hit opens the profile with every section
    assert page.locator('[data-figure="email"]').inner_text() == "ada.lovelace@example.com"
    assert page.locator('[data-kpi="orders"]').inner_text() == "2"
    assert page.locator('[data-kpi="segment"]').inner_text() == "Loyal"
    assert page.locator('[data-kpi="cluster"]').inner_text() == "Big baskets"
    assert page.locator('[data-kpi="churn"] [data-level="low"]').count() == 1
    assert page.locator('[data-kpi="clv"]').inner_text() == "$412.00"
    assert page.locator('[data-table="assignments"] tr[data-experiment]').count() == 1
    assert page.locator('[data-list="recommendations"] li[data-product="LAMP"]').count() == 1
    timeline = page.locator('[data-list="timeline"] > li')
    kinds = [timeline.nth(index).get_attribute("data-kind") for index in range(timeline.count())]
    assert kinds == ["event", "session", "order", "order"]  # newest first
    assert "Product Viewed ×4" in timeline.nth(0).inner_text()
    assert page.locator('[data-figure="balance"]').inner_text() == "0 points"
    page.screenshot(path=str(SCREENSHOTS / "support_profile.png"), full_page=True)

    # when: the agent adds points for a late parcel
    page.fill("#id_points", "150")
    page.fill("#id_reason", "Parcel arrived a week late")
    page.click('[data-action="adjust-points"]')
    page.wait_for_selector('[data-message="success"]')

    # then: the balance and the ledger show it
    assert page.locator('[data-figure="balance"]').inner_text() == "150 points"
    ledger = page.locator('[data-table="ledger"] tbody tr').first.inner_text()
    assert "+150" in ledger and "Parcel arrived a week late" in ledger and "casey" in ledger
    # staff adjustments are spendable but do not count towards a tier (only earned points do)
    assert "500 points to Silver" in page.locator('[data-figure="tier-progress"]').inner_text()
