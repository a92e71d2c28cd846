"""A merchant manager opens the recommendations screen, reads the chart and previews a customer.

Drives Debian's system Chromium through Playwright, like test_merchant_home.py. Screenshots land in
var/screenshots/.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from recommendations.models import VersionStatus
from revopt.tenancy.models import Role
from revopt.tenancy.services import merchant_create, staff_member_create
from tests.browser.chromium import BROWSER_TEST, PASSWORD, SCREENSHOTS, logged_in_page
from tests.factories.events import CustomerFactory, EventFactory
from tests.factories.recommendations import RecommenderVersionFactory, ServedRecommendationFactory
from tests.recommendations.serving_shop import build_shop

pytestmark = BROWSER_TEST


@pytest.fixture
def shop(transactional_db):
    """Two weeks of served lists and clicks on a shop with a published model. Made before the browser
    starts (see test_merchant_home.py for why)."""
    merchant = merchant_create(name="Demo Outdoor Co.", slug="demo-outdoor")
    staff_member_create(username="casey", password=PASSWORD, role=Role.MERCHANT_MANAGER, merchant=merchant)
    built = build_shop(merchant)
    RecommenderVersionFactory(
        merchant=merchant, number=2, status=VersionStatus.REJECTED, metrics={"ndcg@10": 0.05}, status_reason="worse"
    )
    shopper = CustomerFactory(merchant=merchant)
    products = list(built.products.values())
    now = timezone.now()
    impressions = 0
    for days_ago in range(14):
        for index in range(3 + days_ago % 4):
            served = ServedRecommendationFactory(
                merchant=merchant,
                placement="home" if index % 2 else "pdp",
                product_ids=[product.pk for product in products[:5]],
                created_at=now - timedelta(days=days_ago, minutes=index),
            )
            impressions += 5
            if index % 3 == 0:
                EventFactory(
                    merchant=merchant,
                    customer=shopper,
                    name="Product Clicked",
                    product=products[0],
                    timestamp=served.created_at + timedelta(seconds=30),
                    properties={"recommendation_id": str(served.pk)},
                )
    return {"impressions": impressions}


@pytest.mark.django_db(transaction=True)
def test_manager_reads_the_chart_and_previews_a_customer(live_server, shop, browser):
    # given
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = logged_in_page(browser, live_server.url)

    # when: the manager follows the nav link
    page.click("nav.nav >> text=Recommendations")
    page.wait_for_url(f"{live_server.url}/recommendations/")

    # then: the chart has a bar per day and the totals match what was served
    chart = page.locator("svg#impressions-per-day")
    chart.wait_for(state="visible")
    assert chart.locator("rect.bar").count() == 30
    assert page.locator('[data-kpi="impressions"]').inner_text() == f"{shop['impressions']:,}"
    assert page.locator('tr[data-version="1"] .badge').inner_text() == "Active"
    assert page.locator('tr[data-version="2"] .badge').inner_text() == "Rejected"
    page.screenshot(path=str(SCREENSHOTS / "recommendations.png"), full_page=True)

    # when: the manager previews Alice
    page.fill("#preview-customer", "alice")
    page.click("#preview button[type=submit]")
    page.wait_for_url(re.compile(r".*customer=alice.*"))

    # then: each placement shows what she would see, and why
    home = page.locator('[data-preview-placement="home"]')
    home.wait_for(state="visible")
    first = home.locator("li").first
    assert first.get_attribute("data-product") == "LAMP-1"
    assert first.locator(".preview-reason").inner_text() == "Because you bought Trail Tent"
    assert page.locator('[data-preview-placement="post_purchase"] li').count() > 0
    page.locator("#preview").screenshot(path=str(SCREENSHOTS / "recommendations_preview.png"))

    # when: an unknown customer is asked for
    page.fill("#preview-customer", "nobody-here")
    page.click("#preview button[type=submit]")

    # then
    message = page.locator('[data-preview="not-found"]')
    message.wait_for(state="visible")
    assert "nobody-here" in message.inner_text()

    # and the narrow layout still holds together
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.locator("svg#impressions-per-day").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "recommendations_mobile.png"), full_page=True)
