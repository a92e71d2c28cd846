import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from experiments.models import ExperimentStatus, Surface
from revopt.simulator.models import SimulationRun
from tests.factories.catalog import ProductFactory
from tests.factories.events import DataQualityReportFactory, EventFactory, OrderFactory, SessionFactory
from tests.factories.experiments import AnalysisSnapshotFactory, experiment_with_variants

pytestmark = pytest.mark.django_db

HOME = reverse("dashboard:home")


def _kpi(html: str, name: str) -> str:
    match = re.search(rf'data-kpi="{name}">([^<]*)<', html)
    assert match, f"KPI {name} not on the page"
    return match.group(1).strip()


def _total(html: str, name: str) -> str:
    match = re.search(rf'data-total="{name}">([^<]*)<', html)
    assert match, f"total {name} not on the page"
    return match.group(1).strip()


def _shop(merchant, *, product_title: str, events: int, order_total: str) -> None:
    product = ProductFactory(merchant=merchant, title=product_title)
    session = SessionFactory(merchant=merchant, started_at=timezone.now() - timedelta(hours=3))
    for index in range(events):
        EventFactory(
            merchant=merchant, product=product, session=session, timestamp=timezone.now() - timedelta(days=index % 3)
        )
    OrderFactory(merchant=merchant, session=session, total=Decimal(order_total))


def test_anonymous_visitor_is_sent_to_the_login_page():
    # when
    response = Client().get(HOME)

    # then
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_manager_sees_only_their_merchants_numbers(merchant, other_merchant, manager_client):
    # given
    _shop(merchant, product_title="Trail Tent", events=4, order_total="120.00")
    _shop(other_merchant, product_title="Secret Rival Kayak", events=7, order_total="999.00")

    # when
    response = manager_client.get(HOME)

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert merchant.name in html
    assert _kpi(html, "events-period") == "4"
    assert _kpi(html, "products") == "1"
    assert _total(html, "revenue") == "$120.00"
    assert "Trail Tent" in html
    assert "Secret Rival Kayak" not in html
    assert other_merchant.name not in html
    assert "$999.00" not in html


def test_manager_cannot_switch_to_another_merchant_by_query(merchant, other_merchant, manager_client):
    # given
    _shop(other_merchant, product_title="Secret Rival Kayak", events=7, order_total="999.00")

    # when
    response = manager_client.get(HOME, {"merchant": other_merchant.slug})

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Secret Rival Kayak" not in html
    assert _kpi(html, "events-period") == "0"


def test_support_agent_sees_their_merchant(merchant, support_client):
    # given
    _shop(merchant, product_title="Trail Tent", events=2, order_total="50.00")

    # when
    response = support_client.get(HOME)

    # then
    assert response.status_code == 200
    assert _kpi(response.content.decode(), "events-period") == "2"


def test_platform_admin_gets_a_chooser_then_the_chosen_merchant(merchant, other_merchant, platform_admin_client):
    # given
    _shop(other_merchant, product_title="Rival Kayak", events=3, order_total="10.00")

    # when
    chooser = platform_admin_client.get(HOME)
    chosen = platform_admin_client.get(HOME, {"merchant": other_merchant.slug})

    # then
    chooser_html = chooser.content.decode()
    assert chooser.status_code == 200
    assert f'href="?merchant={merchant.slug}"' in chooser_html
    assert f'href="?merchant={other_merchant.slug}"' in chooser_html
    assert chosen.status_code == 200
    assert _kpi(chosen.content.decode(), "events-period") == "3"
    assert "Rival Kayak" in chosen.content.decode()


def test_platform_admin_asking_for_an_unknown_merchant_gets_404(platform_admin_client):
    # when
    response = platform_admin_client.get(HOME, {"merchant": "no-such-shop"})

    # then
    assert response.status_code == 404


def test_user_without_membership_gets_a_friendly_403():
    # given
    client = Client()
    client.force_login(get_user_model().objects.create_user(username="drifter", password="x"))

    # when
    response = client.get(HOME)

    # then
    assert response.status_code == 403
    assert "not linked to a shop" in response.content.decode()


def test_events_chart_has_one_bar_per_day(merchant, manager_client):
    # given
    _shop(merchant, product_title="Trail Tent", events=6, order_total="80.00")

    # when
    html = manager_client.get(HOME).content.decode()

    # then
    chart = re.search(r'<svg[^>]*id="events-per-day".*?</svg>', html, re.S)
    assert chart, "events chart missing"
    bars = re.findall(r'<rect class="bar"[^>]*data-value="([^"]+)"', chart.group(0))
    assert len(bars) == 30
    assert sum(float(value) for value in bars) == 6
    assert 'role="img"' in chart.group(0)


def test_empty_shop_gets_a_getting_started_card_and_says_its_charts_are_empty(merchant, manager_client):
    # when
    html = manager_client.get(HOME).content.decode()

    # then
    assert "Your shop has no data yet" in html
    assert "No events in these 30 days" in html
    assert '<rect class="bar"' not in html
    assert _kpi(html, "conversion") == "—"
    assert _kpi(html, "rpau") == "—"
    assert "No active users in this period yet" in html


def test_data_quality_and_simulation_cards(merchant, manager_client):
    # given
    DataQualityReportFactory(
        merchant=merchant,
        passed=False,
        checks=[{"name": "future_timestamps", "status": "fail", "value": 0.3, "limit": 0.01}],
    )
    SimulationRun.objects.create(merchant=merchant, seed=7, status="completed", stats={"sessions": 1200, "orders": 31})

    # when
    html = manager_client.get(HOME).content.decode()

    # then
    assert 'data-dq-status="fail"' in html
    assert "future_timestamps" in html
    assert "seed 7" in html
    assert "1,200" in html


def test_page_links_to_admin_and_api_docs_and_logs_out_by_post(manager_client):
    # when
    html = manager_client.get(HOME).content.decode()

    # then
    assert f'href="{reverse("admin:index")}"' in html
    assert f'href="{reverse("api-docs")}"' in html
    assert re.search(rf'<form method="post" action="{reverse("logout")}"', html)


def test_home_page_query_count_is_fixed(merchant, manager_client, django_assert_max_num_queries):
    # given
    for index in range(10):
        _shop(merchant, product_title=f"Product {index}", events=3, order_total="20.00")

    # when / then: session + user + membership + the revenue page's 12 reads + the activity overview's 12
    with django_assert_max_num_queries(27):
        response = manager_client.get(HOME)
    assert response.status_code == 200


def test_admin_is_branded_with_a_link_home(manager_client):
    # when
    html = manager_client.get(reverse("admin:index")).content.decode()

    # then
    assert "revopt" in html
    assert f'href="{HOME}"' in html
    assert "revopt/admin.css" in html


def test_login_page_renders_the_styled_form():
    # when
    html = Client().get(reverse("login")).content.decode()

    # then
    assert 'name="username"' in html and 'name="password"' in html
    assert "revopt/app.css" in html


@pytest.mark.parametrize(
    ("period", "shown"), [("30", "30"), ("180", "180"), ("banana", "90"), ("45", "90"), ("", "90")]
)
def test_period_parameter_picks_the_period_and_a_bad_one_shows_the_default(manager_client, period, shown):
    # when
    response = manager_client.get(HOME, {"period": period})

    # then: a bad value is not an error, the home page opens on the default 90 days
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-period="{shown}"' in html
    assert f"Last {shown} days" in html
    assert re.search(rf'class="segment is-active" href="\?period={shown}"', html)


def test_rpau_chart_kpi_cards_and_unmeasured_features_render(merchant, manager_client):
    # given
    _shop(merchant, product_title="Trail Tent", events=3, order_total="120.00")

    # when
    html = manager_client.get(HOME, {"period": "30"}).content.decode()

    # then
    chart = re.search(r'<svg[^>]*id="rpau-over-time".*?</section>', html, re.S)
    assert chart and 'role="img"' in chart.group(0)
    # One point: the one day with active users ($120 from the session's and the order's customers).
    assert re.findall(r'<circle class="point"[^>]*data-value="([^"]+)"', chart.group(0)) == ["60"]
    for key in ("rpau", "conversion", "aov", "abandonment", "repeat_rate", "clv"):
        assert f'data-kpi-card="{key}"' in html
        assert f'id="spark-{key}"' in html
    assert 'data-section="feature-lift"' in html
    assert html.count("Not measured yet") == 3
    assert f'href="{reverse("experiments:plan")}"' in html
    for link in ("/funnel/", reverse("pricing:index"), reverse("loyalty:index"), reverse("experiments:list")):
        assert f'href="{link}' in html


def test_measured_feature_links_to_its_results_and_other_shops_experiments_stay_hidden(
    merchant, other_merchant, manager_client
):
    # given
    ours = experiment_with_variants(merchant=merchant, surface=Surface.PRICING, status=ExperimentStatus.RUNNING)
    AnalysisSnapshotFactory(experiment=ours)
    theirs = experiment_with_variants(
        merchant=other_merchant, surface=Surface.OFFERS, status=ExperimentStatus.RUNNING, name="Rival secret offer"
    )
    AnalysisSnapshotFactory(experiment=theirs)

    # when
    html = manager_client.get(HOME).content.decode()

    # then
    lift_chart = re.search(r'<svg[^>]*id="feature-lift".*?</svg>', html, re.S)
    assert lift_chart
    assert re.findall(r'data-row="([^"]+)"', lift_chart.group(0)) == ["pricing"]
    assert f'href="{reverse("experiments:results", args=[ours.key])}"' in html
    assert "+4.2%" in html
    assert "Rival secret offer" not in html
    assert html.count("Not measured yet") == 2


def test_platform_admin_links_keep_the_chosen_merchant(merchant, platform_admin_client):
    # given
    experiment = experiment_with_variants(merchant=merchant, surface=Surface.OFFERS, status=ExperimentStatus.STOPPED)
    AnalysisSnapshotFactory(experiment=experiment)

    # when
    html = platform_admin_client.get(HOME, {"merchant": merchant.slug, "period": "180"}).content.decode()

    # then
    assert f'href="?period=30&amp;merchant={merchant.slug}"' in html
    assert f'href="{reverse("experiments:results", args=[experiment.key])}?merchant={merchant.slug}"' in html
    assert 'data-period="180"' in html
