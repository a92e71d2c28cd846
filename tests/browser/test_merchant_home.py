"""A merchant manager signs in through the real login form and sees the shop's home page.

Drives Debian's system Chromium (`bin/system-packages chromium`) through Playwright; Playwright never
downloads a browser here. Screenshots land in var/screenshots/ for a human to look at.
"""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from events.models import Event, Order, OrderLine, Session
from experiments.models import ExperimentStatus, Surface
from loyalty.models import InsightKind
from revopt.simulator.models import SimulationRun
from revopt.tenancy.models import Role
from revopt.tenancy.services import merchant_create, staff_member_create
from tests.browser.chromium import BROWSER_TEST, PASSWORD, SCREENSHOTS
from tests.factories.catalog import CategoryFactory, ProductFactory
from tests.factories.events import CustomerFactory, DataQualityReportFactory
from tests.factories.experiments import (
    AnalysisSnapshotFactory,
    experiment_analysis,
    experiment_with_variants,
    metric_result,
)
from tests.factories.loyalty import InsightRunFactory

pytestmark = BROWSER_TEST

PRODUCTS = [
    ("Alpine 2P Tent", "Tents", "289.00"),
    ("Trailhead Hiking Boots", "Footwear", "149.00"),
    ("Summit Down Jacket", "Apparel", "219.00"),
    ("Ridge 35L Daypack", "Packs", "119.00"),
    ("Basecamp Sleeping Bag", "Sleep", "179.00"),
    ("Titanium Camp Mug", "Kitchen", "29.00"),
    ("Trekking Poles (pair)", "Accessories", "89.00"),
    ("Merino Hiking Socks", "Apparel", "24.00"),
]


def _seed_shop(merchant) -> dict[str, int]:
    """Thirty days of plausible traffic; returns what the page should show."""
    rng = random.Random(7)
    now = timezone.now()
    category_names = dict.fromkeys(category for _, category, _ in PRODUCTS)
    categories = {name: CategoryFactory(merchant=merchant, name=name, path=name) for name in category_names}
    products = [
        ProductFactory(
            merchant=merchant,
            title=title,
            sku=f"DOC-{index:03d}",
            category=categories[category],
            price=Decimal(price),
            inventory=0 if index == 6 else 40,
        )
        for index, (title, category, price) in enumerate(PRODUCTS)
    ]
    customers = [
        CustomerFactory(merchant=merchant, external_id=None if index % 3 else f"user-{index}", created_at=now)
        for index in range(24)
    ]
    events, orders = [], []
    sessions_total = 0
    for days_ago in range(30):
        day_start = now - timedelta(days=days_ago)
        # A weekly rhythm plus growth, so the chart looks like a shop and not like noise.
        traffic = int(6 + (30 - days_ago) * 0.25 + (3 if day_start.weekday() >= 5 else 0) + rng.randint(0, 3))
        for visit in range(traffic):
            customer = rng.choice(customers)
            at = day_start - timedelta(minutes=rng.randint(0, 600))
            if at.date() != day_start.date():
                at = day_start
            session = Session.objects.create(
                merchant=merchant, external_id=f"s-{days_ago}-{visit}", customer=customer, started_at=at
            )
            sessions_total += 1
            viewed = rng.sample(products, k=rng.randint(1, 3))
            for product in viewed:
                events.append(("Product Viewed", customer, session, product, at))
            if rng.random() < 0.3:
                events.append(("Product Added", customer, session, viewed[0], at))
                if rng.random() < 0.35:
                    events.append(("Order Completed", customer, session, None, at))
                    orders.append((customer, session, viewed[0], at))
    Event.objects.bulk_create(
        Event(
            merchant=merchant,
            message_id=f"m-{index}",
            name=name,
            customer=customer,
            session=session,
            product=product,
            timestamp=at,
            received_at=at,
        )
        for index, (name, customer, session, product, at) in enumerate(events)
    )
    for index, (customer, session, product, at) in enumerate(orders):
        order = Order.objects.create(
            merchant=merchant,
            external_id=f"o-{index}",
            message_id=f"om-{index}",
            customer=customer,
            session=session,
            placed_at=at,
            subtotal=product.price,
            total=product.price,
        )
        OrderLine.objects.create(
            merchant=merchant,
            order=order,
            product=product,
            sku=product.sku,
            quantity=1,
            unit_price=product.price,
            unit_cost=(product.price * Decimal("0.55")).quantize(Decimal("0.01")),
        )
    DataQualityReportFactory(
        merchant=merchant,
        passed=True,
        checks=[
            {"name": "null_ids", "status": "pass", "value": 0, "limit": 0.01},
            {"name": "volume_drop", "status": "warn", "value": 0.31, "limit": 0.5, "detail": "Sunday traffic dip"},
        ],
    )
    SimulationRun.objects.create(
        merchant=merchant,
        seed=7,
        status=SimulationRun.Status.COMPLETED,
        finished_at=now,
        stats={"sessions": sessions_total, "orders": len(orders), "conversion_rate": len(orders) / sessions_total},
    )
    for weeks_ago, mean in ((8, 212.0), (4, 226.5), (0, 241.0)):
        InsightRunFactory(
            merchant=merchant,
            kind=InsightKind.LIFETIME_VALUE,
            as_of=now - timedelta(weeks=weeks_ago),
            summary={"clv_12m_mean": mean},
        )
    experiment = experiment_with_variants(
        merchant=merchant, surface=Surface.PRICING, status=ExperimentStatus.RUNNING, name="Charm prices"
    )
    AnalysisSnapshotFactory(
        experiment=experiment,
        analysis=experiment_analysis(
            experiment, metrics=[metric_result(relative_lift=0.046, half_width=0.021, significant=True)]
        ).as_dict(),
    )
    return {"events": len(events), "orders": len(orders)}


@pytest.fixture
def shop(transactional_db):
    """The seeded shop. Made before `browser` starts: ORM calls while Playwright's event loop runs get
    a connection of their own that the test teardown cannot close, which blocks dropping the test DB."""
    merchant = merchant_create(name="Demo Outdoor Co.", slug="demo-outdoor")
    staff_member_create(username="casey", password=PASSWORD, role=Role.MERCHANT_MANAGER, merchant=merchant)
    return _seed_shop(merchant)


@pytest.mark.django_db(transaction=True)
def test_manager_logs_in_and_sees_the_events_chart(live_server, shop, browser):
    # given
    expected = shop
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1366, "height": 900})

    # when: an unauthenticated visit is sent to the login form
    page.goto(f"{live_server.url}/")
    page.wait_for_url("**/accounts/login/**")
    page.screenshot(path=str(SCREENSHOTS / "login.png"))
    page.fill("#id_username", "casey")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    # then
    chart = page.locator("svg#events-per-day")
    chart.wait_for(state="visible")
    assert chart.is_visible()
    assert chart.locator("rect.bar").count() == 30
    assert page.locator('[data-kpi="events-period"]').inner_text() == f"{expected['events']:,}"
    assert page.locator('[data-total="orders"]').inner_text() == f"{expected['orders']:,}"
    # the revenue page: RPAU as the hero chart, a point for each of the 5 weeks with traffic (of the
    # default 90 days), and each feature's measured lift
    rpau_chart = page.locator("svg#rpau-over-time")
    assert rpau_chart.is_visible()
    assert rpau_chart.locator("circle.point").count() == 5
    assert page.locator('[data-kpi="rpau"]').inner_text().startswith("$")
    assert page.locator('[data-kpi-card="margin_per_active_user"]').is_visible()
    lift = page.locator('[data-section="feature-lift"]')
    assert lift.locator('svg#feature-lift g.interval[data-row="pricing"]').count() == 1
    assert "+4.6%" in lift.locator('[data-lift="pricing"]').inner_text()
    assert "Not measured yet" in lift.locator('[data-lift="offers"]').inner_text()
    page.locator('[data-section="rpau"]').screenshot(path=str(SCREENSHOTS / "revenue_rpau_chart.png"))
    lift.screenshot(path=str(SCREENSHOTS / "revenue_feature_lift.png"))
    assert "Demo Outdoor Co." in page.locator("header.topbar").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "merchant_home.png"), full_page=True)

    # and the narrow layout still holds together
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.locator("svg#events-per-day").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "merchant_home_mobile.png"), full_page=True)
    assert page.locator("svg#rpau-over-time").is_visible()
    page.locator("section#events-card").screenshot(path=str(SCREENSHOTS / "events_chart_mobile.png"))

    # and the admin carries the revopt branding with a way back home
    page.set_viewport_size({"width": 1366, "height": 900})
    page.click("nav.nav >> text=Admin")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert page.locator("a.revopt-home-link").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "admin.png"))
    page.click("a.revopt-home-link")
    page.wait_for_url(f"{live_server.url}/")
