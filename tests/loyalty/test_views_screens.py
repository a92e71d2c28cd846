import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from loyalty.models import InsightKind, RetentionCandidate, RunStatus, Segment
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.loyalty import CustomerInsightFactory, InsightRunFactory

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("loyalty:index")


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _kpi(html: str, name: str) -> str:
    return re.search(rf'data-kpi="{name}">([^<]*)<', html).group(1).strip()


@pytest.fixture
def scored(merchant):
    """Two customers with orders a month apart, scores from every run, and one on the retention list."""
    now = timezone.now()
    segments = InsightRunFactory(
        merchant=merchant, kind=InsightKind.SEGMENTS,
        summary={"silhouette": {"2": 0.31, "3": 0.44, "4": 0.40}, "clusters": 3, "profiles": [
            {"cluster": 0, "customers": 1, "means": {"orders": 2.0}, "label": "Frequent buyers"},
        ]},
    )  # fmt: skip
    lifetime_value = InsightRunFactory(merchant=merchant, kind=InsightKind.LIFETIME_VALUE)
    churn = InsightRunFactory(
        merchant=merchant, kind=InsightKind.CHURN,
        summary={"auc": 0.782, "precision": 0.61, "recall": 0.55, "threshold": 0.5,
                 "calibration": [[0.1, 0.12, 40], [0.5, 0.45, 30], [0.9, 0.8, 10]],
                 "base_rate": 0.31, "brier": 0.181, "test_customers": 400, "budget": 50.0, "budget_spent": 8.0,
                 "offers": 1},
    )  # fmt: skip
    customers = []
    scores = ((Segment.CHAMPIONS, 240.0, 0.2), (Segment.AT_RISK, 60.0, 0.8))
    for index, (segment, clv, probability) in enumerate(scores):
        customer = CustomerFactory(merchant=merchant, email=f"shopper{index}@example.com")
        OrderFactory(merchant=merchant, customer=customer, placed_at=now - timedelta(days=40))
        if index == 0:
            OrderFactory(merchant=merchant, customer=customer, placed_at=now - timedelta(days=5))
        CustomerInsightFactory(
            merchant=merchant, customer=customer, segment=segment, revenue=Decimal("160"), clv_12m=clv, p_alive=0.7,
            churn_probability=probability, segments_run=segments, churn_run=churn, lifetime_value_run=lifetime_value,
        )  # fmt: skip
        customers.append(customer)
    candidate = RetentionCandidate.objects.create(
        merchant=merchant, customer=customers[1], run=churn, churn_probability=0.8, clv_12m=60.0,
        offer="percent_10", offer_cost=Decimal("8.00"), expected_value=14.5, reason="No order for 40 days",
        created_at=now,
    )  # fmt: skip
    return customers, candidate


def test_anonymous_visitors_are_sent_to_the_login_page():
    # when
    response = Client().get(OVERVIEW)

    # then
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_support_agents_are_refused(scored, support_agent):
    # when
    response = _login(support_agent).get(OVERVIEW)

    # then
    assert response.status_code == 403
    html = response.content.decode()
    assert "Loyalty insights are for the shop" in html and "shopper1@example.com" not in html


def test_another_merchants_manager_sees_only_their_own_shop_whatever_they_ask_for(
    scored, merchant, other_merchant_manager
):
    # when
    client = _login(other_merchant_manager)
    own = client.get(OVERVIEW)
    asked_for_ours = client.get(OVERVIEW, {"merchant": merchant.slug})

    # then
    for response in (own, asked_for_ours):
        html = response.content.decode()
        assert response.status_code == 200 and _kpi(html, "customers") == "0"
        assert "shopper1@example.com" not in html and "Other Shop" in html


def test_a_platform_admin_picks_the_merchant(scored, merchant, platform_admin):
    # given
    customers, _ = scored
    client = _login(platform_admin)

    # when
    chooser = client.get(OVERVIEW)
    page = client.get(OVERVIEW, {"merchant": merchant.slug})
    unknown = client.get(OVERVIEW, {"merchant": "no-such-shop"})

    # then
    assert chooser.status_code == 200 and "shopper1@example.com" not in chooser.content.decode()
    assert page.status_code == 200
    # the customer link keeps the merchant, or the admin would land on the chooser
    profile = reverse("support:profile", args=[customers[1].pk])
    assert f'href="{profile}?merchant={merchant.slug}"' in page.content.decode()
    assert unknown.status_code == 404


def test_the_page_shows_kpis_segments_clusters_cohorts_clv_and_the_risk_list(scored, merchant_manager):
    # given
    customers, candidate = scored

    # when
    response = _login(merchant_manager).get(OVERVIEW)

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert _kpi(html, "customers") == "2" and _kpi(html, "repeat-rate") == "50.0%"
    assert _kpi(html, "mean-clv") == "$150.00" and _kpi(html, "at-risk") == "1"
    assert _kpi(html, "points-liability") == "—" and "no points program" in html
    segments = re.search(r'data-table="segments".*?</table>', html, re.S).group(0)
    assert segments.index('data-segment="champions"') < segments.index('data-segment="at_risk"')
    assert 'id="cluster-silhouette"' in html and 'data-figure="clusters-chosen">3<' in html
    assert "Frequent buyers" in html
    heatmap = re.search(r'<svg[^>]*id="cohort-retention".*?</svg>', html, re.S).group(0)
    now, first = timezone.now(), timezone.now() - timedelta(days=40)
    observed_months = (now.year - first.year) * 12 + now.month - first.month + 1
    assert heatmap.count('class="heat-cell"') == observed_months  # one cohort, every month since its first
    assert 'id="clv-distribution"' in html and 'data-marker="Median"' in html
    assert re.search(r'<svg[^>]*id="p-alive-distribution".*?data-value="2".*?</svg>', html, re.S)  # both at 0.7
    assert 'id="churn-reliability"' in html and html.count('class="point reliability-point"') == 3
    assert 'data-figure="churn-auc">0.782<' in html and 'data-figure="churn-recall">55.0%<' in html
    assert "31% of 400 customers left" in html
    budget = re.search(r'data-figure="retention-budget">(.*?)</p>', html).group(1)
    assert re.sub(r"<[^>]+>", "", budget) == "This week's offers: 1, costing $8.00 of the $50.00 weekly budget."
    risk = re.search(r'data-table="risk-list".*?</table>', html, re.S).group(0)
    assert f'data-candidate="{candidate.pk}"' in risk
    assert f'href="{reverse("support:profile", args=[customers[1].pk])}"' in risk
    assert "10% off the next order" in risk and "$14.50" in risk
    assert 'data-run="churn" data-run-status="succeeded"' in html


def test_a_failed_run_says_so_and_keeps_the_scores_in_use(scored, merchant, merchant_manager):
    # given
    InsightRunFactory(
        merchant=merchant, kind=InsightKind.CHURN, status=RunStatus.FAILED, error="Only one class in the labels",
        started_at=timezone.now() + timedelta(seconds=1),
    )  # fmt: skip

    # when
    html = _login(merchant_manager).get(OVERVIEW).content.decode()

    # then
    assert 'data-run="churn" data-run-status="failed"' in html and "Only one class in the labels" in html
    assert 'data-figure="churn-auc">0.782<' in html


def test_an_empty_shop_says_what_will_fill_each_section(merchant, merchant_manager):
    # when
    html = _login(merchant_manager).get(OVERVIEW).content.decode()

    # then
    for section in ("segments", "clusters", "cohorts", "clv", "p-alive", "churn-model", "risk-list"):
        assert f'data-empty="{section}"' in html
    assert "manage.py loyalty_refresh --merchant " + merchant.slug in html
    assert 'data-run-status="never"' in html and "Never run" in html


def test_erased_customers_are_left_out_of_every_section(scored, merchant_manager):
    # given
    customers, _ = scored
    for customer in customers:
        customer.erased_at = timezone.now()
        customer.save()

    # when
    html = _login(merchant_manager).get(OVERVIEW).content.decode()

    # then
    assert _kpi(html, "customers") == "0" and _kpi(html, "mean-clv") == "—"
    assert "shopper1@example.com" not in html
    for section in ("segments", "cohorts", "clv", "risk-list"):
        assert f'data-empty="{section}"' in html


def test_the_page_costs_the_same_queries_for_3_and_30_customers(
    merchant, merchant_manager, django_assert_max_num_queries
):
    # given
    client = _login(merchant_manager)

    def grow(count: int) -> None:
        for _ in range(count):
            customer = CustomerFactory(merchant=merchant)
            OrderFactory(merchant=merchant, customer=customer, placed_at=timezone.now() - timedelta(days=3))
            CustomerInsightFactory(merchant=merchant, customer=customer, segment=Segment.NEW, clv_12m=10.0)

    grow(3)
    client.get(OVERVIEW)  # warm the session and the content types

    # when / then
    with django_assert_max_num_queries(17):
        small = client.get(OVERVIEW)
    grow(27)
    with django_assert_max_num_queries(17):
        large = client.get(OVERVIEW)
    assert _kpi(small.content.decode(), "customers") == "3" and _kpi(large.content.decode(), "customers") == "30"


def test_the_nav_links_loyalty_for_managers_only(merchant_manager, support_agent):
    # when
    manager_home = _login(merchant_manager).get(reverse("dashboard:home")).content.decode()
    agent_home = _login(support_agent).get(reverse("dashboard:home")).content.decode()

    # then
    assert f'href="{OVERVIEW}"' in manager_home
    assert f'href="{OVERVIEW}"' not in agent_home


def test_only_get_is_allowed(merchant_manager):
    # when
    response = _login(merchant_manager).post(OVERVIEW)

    # then
    assert response.status_code == 405
