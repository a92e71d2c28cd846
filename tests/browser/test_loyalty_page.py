"""A merchant manager reads the loyalty screen in a real browser: KPIs, segments, clusters, the cohort
heatmap, the CLV distribution and the churn-risk list.

Drives Debian's system Chromium through Playwright, like the other browser tests. Screenshots land in
var/screenshots/. Rows are made in a fixture before the browser starts (see test_experiments_page.py).
"""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.models import EntryKind, InsightKind, PointsEntry, RetentionCandidate, Segment
from revopt.tenancy.models import Role
from revopt.tenancy.services import merchant_create, staff_member_create
from tests.browser.chromium import BROWSER_TEST, PASSWORD, SCREENSHOTS, logged_in_page
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.loyalty import (
    CustomerInsightFactory,
    InsightRunFactory,
    LoyaltyAccountFactory,
    LoyaltyProgramFactory,
)

pytestmark = BROWSER_TEST

COHORTS = 8  # first orders in each of the last 8 months, this one included
PER_COHORT = 9


def _month_start(now: datetime, back: int) -> datetime:
    index = now.year * 12 + now.month - 1 - back
    return datetime(index // 12, index % 12 + 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def shop(transactional_db):
    """72 customers in 8 monthly cohorts, scored by every run, with a points program and a retention list."""
    rng = random.Random(6)
    merchant = merchant_create(name="Demo Outdoor Co.", slug="demo-outdoor")
    staff_member_create(username="casey", password=PASSWORD, role=Role.MERCHANT_MANAGER, merchant=merchant)
    now = timezone.now()
    segments_run = InsightRunFactory(
        merchant=merchant, kind=InsightKind.SEGMENTS, customers=COHORTS * PER_COHORT,
        summary={
            "silhouette": {"2": 0.36, "3": 0.47, "4": 0.43, "5": 0.39, "6": 0.35},
            "clusters": 3,
            "profiles": [
                {"cluster": 0, "customers": 31, "label": "Occasional buyers",
                 "means": {"recency_days": 120.0, "frequency": 0.4, "monetary": 62.0, "tenure_days": 150.0}},
                {"cluster": 1, "customers": 27, "label": "Regulars",
                 "means": {"recency_days": 21.0, "frequency": 3.1, "monetary": 88.0, "tenure_days": 190.0}},
                {"cluster": 2, "customers": 14, "label": "Big spenders",
                 "means": {"recency_days": 35.0, "frequency": 1.8, "monetary": 240.0, "tenure_days": 170.0}},
            ],
        },
    )  # fmt: skip
    customers = COHORTS * PER_COHORT
    lifetime_value = InsightRunFactory(merchant=merchant, kind=InsightKind.LIFETIME_VALUE, customers=customers)
    churn_run = InsightRunFactory(
        merchant=merchant, kind=InsightKind.CHURN, customers=COHORTS * PER_COHORT,
        summary={"auc": 0.774, "precision": 0.58, "recall": 0.66, "threshold": 0.55, "calibration": [
            [0.08, 0.1, 120], [0.25, 0.22, 90], [0.45, 0.5, 60], [0.65, 0.6, 40], [0.85, 0.79, 25],
        ]},
    )  # fmt: skip
    program = LoyaltyProgramFactory(merchant=merchant)
    segments = list(Segment)
    for back in range(COHORTS):
        start = _month_start(now, back)
        for index in range(PER_COHORT):
            customer = CustomerFactory(merchant=merchant, email=f"shopper-{back}-{index}@example.com")
            first = now - timedelta(minutes=5) if back == 0 else start + timedelta(days=index % 20)
            OrderFactory(merchant=merchant, customer=customer, placed_at=first)
            for months_later in range(1, back + 1):
                if rng.random() < 0.45 / months_later**0.5:
                    placed = _month_start(now, back - months_later) + timedelta(days=rng.randint(0, 20))
                    if placed < now:
                        OrderFactory(merchant=merchant, customer=customer, placed_at=placed)
            clv = rng.lognormvariate(4.2, 0.8)
            probability = min(0.97, max(0.03, rng.betavariate(2, 3)))
            CustomerInsightFactory(
                merchant=merchant, customer=customer, segment=rng.choice(segments),
                revenue=Decimal(f"{rng.uniform(40, 600):.2f}"), clv_12m=clv, p_alive=rng.betavariate(4, 2),
                churn_probability=probability, segments_run=segments_run, churn_run=churn_run,
                lifetime_value_run=lifetime_value,
            )  # fmt: skip
            if probability >= 0.55 and rng.random() < 0.6:
                RetentionCandidate.objects.create(
                    merchant=merchant, customer=customer, run=churn_run, churn_probability=probability,
                    clv_12m=clv, offer=rng.choice(["percent_10", "free_shipping", "double_points"]),
                    offer_cost=Decimal("6.95"), expected_value=probability * 0.2 * clv - 6.95,
                    reason="No order for a while, and used to buy every month", created_at=now,
                )  # fmt: skip
            account = LoyaltyAccountFactory(program=program, customer=customer)
            PointsEntry.objects.create(
                merchant=merchant, account=account, kind=EntryKind.EARN, points=rng.randint(20, 400),
                idempotency_key=f"order:{customer.pk}", created_at=now,
            )  # fmt: skip
    return merchant


@pytest.mark.django_db(transaction=True)
def test_manager_reads_the_loyalty_screen(live_server, shop, browser):
    # given
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = logged_in_page(browser, live_server.url)

    # when
    page.click("nav.nav >> text=Loyalty")
    page.wait_for_url(f"{live_server.url}/loyalty/")

    # then: the figures and charts render
    assert page.locator('[data-kpi="customers"]').inner_text() == f"{COHORTS * PER_COHORT}"
    heatmap = page.locator("svg#cohort-retention")
    heatmap.wait_for(state="visible")
    # a cohort N months old has months 0..N observed
    assert heatmap.locator("rect.heat-cell").count() == sum(back + 1 for back in range(COHORTS))
    assert heatmap.locator("g.heat-row").count() == COHORTS
    assert page.locator("section svg.chart").count() >= 3
    for chart in ("clv-distribution", "cluster-silhouette", "churn-reliability"):
        assert page.locator(f"svg#{chart}").is_visible()
    assert page.locator('svg#clv-distribution [data-marker="Median"]').count() == 1
    assert page.locator('[data-table="segments"] tr[data-segment]').count() >= 5
    assert page.locator('[data-table="risk-list"] tr[data-candidate]').count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "loyalty_overview.png"), full_page=True)
    page.locator('[data-section="cohorts"]').screenshot(path=str(SCREENSHOTS / "loyalty_cohorts.png"))

    # and the accessible table behind the heatmap opens
    page.click("details.table-details summary")
    assert page.locator('[data-table="cohorts"] tbody tr').count() == COHORTS

    # and the narrow layout still holds together
    page.set_viewport_size({"width": 390, "height": 844})
    assert heatmap.is_visible()
    page.screenshot(path=str(SCREENSHOTS / "loyalty_overview_mobile.png"), full_page=True)
    page.locator('[data-section="cohorts"]').screenshot(path=str(SCREENSHOTS / "loyalty_cohorts_mobile.png"))
