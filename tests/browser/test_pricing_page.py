"""A merchant manager reads a product's demand and profit curves, slides the what-if, approves the
proposal, and reads the pricing overview, in a real browser.

Drives Debian's system Chromium through Playwright, like the other browser tests. Screenshots land in
var/screenshots/. Rows are made in a fixture before the browser starts, and the tests check what was
written through the pages only (see test_experiments_page.py for why).
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from pricing.models import GuardrailScope, PriceChange, PriceChangeSource
from revopt.tenancy.models import Role
from revopt.tenancy.services import merchant_create, staff_member_create
from tests.browser.chromium import BROWSER_TEST, PASSWORD, SCREENSHOTS, logged_in_page
from tests.factories.catalog import CategoryFactory, CompetitorPriceObservationFactory, ProductFactory
from tests.factories.pricing import (
    DemandModelRunFactory,
    ElasticityEstimateFactory,
    GuardrailFactory,
    PriceProposalFactory,
)

pytestmark = BROWSER_TEST


@pytest.fixture
def shop(transactional_db):
    """A tent shop with a demand fit in service, guardrails, a competitor and a pending proposal."""
    merchant = merchant_create(name="Demo Outdoor Co.", slug="demo-outdoor")
    staff_member_create(username="casey", password=PASSWORD, role=Role.MERCHANT_MANAGER, merchant=merchant)
    now = timezone.now()
    run = DemandModelRunFactory(
        merchant=merchant, products_fitted=6, product_days=1080,
        history_start=(now - timedelta(days=180)).date(), history_end=(now - timedelta(days=1)).date(),
    )  # fmt: skip
    tents, packs = CategoryFactory(merchant=merchant, name="Tents"), CategoryFactory(merchant=merchant, name="Packs")
    tent = ProductFactory(
        merchant=merchant, category=tents, sku="TENT-2P", title="Alpine 2P Tent", price=Decimal("289.00"),
        cost=Decimal("150.00"), inventory=900,
    )  # fmt: skip
    ElasticityEstimateFactory(
        merchant=merchant, run=run, product=tent, category=tents, elasticity=-1.6, elasticity_sd=0.25,
        lower=-2.1, upper=-1.1, base_units_per_day=3.0, pooling_weight=0.35, log_base_se=0.12,
    )  # fmt: skip
    for index, (category, elasticity) in enumerate([(tents, -2.2), (packs, -1.2), (packs, -0.9), (packs, -1.5)]):
        ElasticityEstimateFactory(
            merchant=merchant, run=run, category=category, elasticity=elasticity,
            product=ProductFactory(merchant=merchant, category=category, sku=f"OTHER-{index}"),
        )  # fmt: skip
    GuardrailFactory(merchant=merchant, min_margin=Decimal("0.25"), max_change_per_step=Decimal("0.10"))
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.CATEGORY, category=tents, price_ceiling=Decimal("329"))
    CompetitorPriceObservationFactory(merchant=merchant, product=tent, competitor="Peak Supply", price=Decimal("279"))
    PriceProposalFactory(
        merchant=merchant, product=tent, proposed_price=Decimal("305.00"), profit_change=84.0,
        profit_change_lower=12.0, profit_change_upper=160.0, confidence=0.87,
        reasons=["Demand for this tent is less elastic than the price assumes: a higher price earns more margin."],
    )  # fmt: skip
    pack = ProductFactory(merchant=merchant, category=packs, sku="PACK-35", title="Ridge 35L Daypack")
    for days_ago, old, new in ((40, "109.00", "115.00"), (12, "115.00", "119.00"), (3, "119.00", "117.00")):
        PriceChange.objects.create(
            merchant=merchant, product=pack, from_price=Decimal(old), to_price=Decimal(new),
            source=PriceChangeSource.APPROVED, reason="Approved proposal", created_at=now - timedelta(days=days_ago),
        )  # fmt: skip
    return merchant


@pytest.mark.django_db(transaction=True)
def test_manager_slides_the_what_if_and_approves_the_proposal(live_server, shop, browser):
    # given
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = logged_in_page(browser, live_server.url)
    page.goto(f"{live_server.url}/pricing/products/TENT-2P/")

    # then: both curves render with their markers and the allowed range
    for chart in ("demand-curve", "profit-curve"):
        svg = page.locator(f"svg#{chart}")
        svg.wait_for(state="visible")
        assert svg.locator("path.chart-line").count() == 1
        assert svg.locator('[data-marker="proposed"]').count() == 1
        assert svg.locator("rect.chart-shade").bounding_box()["width"] > 10
    profit = page.locator('[data-what-if-result] [data-figure="profit"]')
    at_current = profit.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "pricing_product.png"), full_page=True)

    # when: the slider moves to the top of its range
    slider = page.locator("#what-if-slider")
    assert slider.is_visible()  # the script showed it
    slider.focus()
    page.keyboard.press("End")

    # then: the figures follow it at once, and the price breaks the ceiling
    assert profit.inner_text() != at_current
    assert page.locator('[data-figure="what-if-price"]').inner_text() == "$" + page.input_value("#id_price")
    assert page.locator('[data-figure="what-if-is-current"]').inner_text() == ""
    assert "breaks" in page.locator('[data-figure="what-if-guardrails"]').inner_text()
    marker = page.locator('svg#profit-curve [data-marker="what-if"] line')
    assert marker.get_attribute("x1") == "100%"
    page.locator('[data-section="what-if"]').screenshot(path=str(SCREENSHOTS / "pricing_what_if.png"))

    # when: the manager approves the proposal with a note
    page.fill("#approve-note", "Peak season")
    page.click('[data-action="approve"]')
    page.wait_for_selector('[data-message="success"]')

    # then: the price is live, in the history, and the proposal is gone
    assert "Alpine 2P Tent is now $305.00 (was $289.00)." in page.locator('[data-message="success"]').inner_text()
    assert page.locator('[data-figure="current-price"]').inner_text() == "$305.00"
    assert page.locator('[data-table="price-changes"] tr[data-direction="up"]').count() == 1
    assert page.locator('[data-action="approve"]').count() == 0


@pytest.mark.django_db(transaction=True)
def test_manager_reads_the_overview_with_its_charts(live_server, shop, browser):
    # given
    page = logged_in_page(browser, live_server.url)

    # when
    page.click("nav.nav >> text=Pricing")
    page.wait_for_url(f"{live_server.url}/pricing/")

    # then
    assert page.locator('[data-kpi="pending"]').inner_text() == "1"
    assert page.locator('[data-kpi="profit-outlook"]').inner_text() == "+$84.00"
    elasticity = page.locator("svg#elasticity-by-category")
    elasticity.wait_for(state="visible")
    assert elasticity.locator("g.interval").count() == 2
    changes = page.locator("svg#price-changes-per-day")
    assert changes.locator("rect.bar-up").count() == 2 and changes.locator("rect.bar-down").count() == 1
    assert page.locator('[data-table="queue"] tr[data-proposal]').count() == 1
    assert page.locator('[data-table="price-changes"] [data-action="roll-back"]').count() == 1
    page.screenshot(path=str(SCREENSHOTS / "pricing_overview.png"), full_page=True)

    # and the narrow layout still holds together
    page.set_viewport_size({"width": 390, "height": 844})
    assert elasticity.is_visible() and changes.is_visible()
    page.screenshot(path=str(SCREENSHOTS / "pricing_overview_mobile.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})

    # and the queue leads to the product page
    page.click('[data-table="queue"] a.product-title')
    page.wait_for_url(f"{live_server.url}/pricing/products/TENT-2P/")
