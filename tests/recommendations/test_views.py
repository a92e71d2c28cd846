import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from recommendations.models import ServedRecommendation, VersionStatus
from tests.factories.catalog import ProductFactory
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory
from tests.factories.recommendations import RecommenderVersionFactory, ServedRecommendationFactory
from tests.recommendations.serving_shop import build_shop

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("recommendations:overview")
VERSIONS = reverse("recommendations:versions")


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _placement_figure(html: str, placement: str, figure: str) -> str:
    card = re.search(rf'data-placement="{placement}".*?</a>', html, re.S)
    assert card, f"no card for {placement}"
    match = re.search(rf'data-figure="{figure}">([^<]*)<', card.group(0))
    assert match, f"no {figure} on the {placement} card"
    return match.group(1).strip()


def _attributed_click(merchant, *, placement: str, title: str, price: str) -> None:
    """A list served on `placement`, a click on its first product, and an order of it an hour later."""
    product = ProductFactory(merchant=merchant, title=title, price=Decimal(price))
    customer = CustomerFactory(merchant=merchant)
    clicked_at = timezone.now() - timedelta(hours=3)
    served = ServedRecommendationFactory(
        merchant=merchant,
        placement=placement,
        customer=customer,
        product_ids=[product.pk, ProductFactory(merchant=merchant).pk],
        created_at=clicked_at - timedelta(minutes=1),
    )
    EventFactory(
        merchant=merchant,
        customer=customer,
        name="Product Clicked",
        product=product,
        timestamp=clicked_at,
        properties={"product_id": product.sku, "recommendation_id": str(served.pk)},
    )
    order = OrderFactory(merchant=merchant, customer=customer, placed_at=clicked_at + timedelta(hours=1))
    OrderLineFactory(order=order, product=product, quantity=2, unit_price=Decimal(price))


def test_anonymous_visitor_is_sent_to_the_login_page():
    # when
    response = Client().get(OVERVIEW)

    # then
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_manager_sees_each_placements_lists_clicks_and_attributed_revenue(merchant, merchant_manager):
    # given
    _attributed_click(merchant, placement="pdp", title="Trail Tent", price="120.00")
    ServedRecommendationFactory(merchant=merchant, placement="home", product_ids=[1, 2, 3])

    # when
    response = _login(merchant_manager).get(OVERVIEW)

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert _placement_figure(html, "pdp", "lists") == "1"
    assert _placement_figure(html, "pdp", "impressions") == "2"
    assert _placement_figure(html, "pdp", "clicks") == "1"
    assert _placement_figure(html, "pdp", "ctr") == "50.00%"
    assert _placement_figure(html, "pdp", "orders") == "1"
    assert _placement_figure(html, "pdp", "revenue") == "$240.00"
    assert _placement_figure(html, "home", "impressions") == "3"
    assert _placement_figure(html, "home", "clicks") == "0"
    assert re.search(r'data-kpi="lists">2<', html)
    assert re.search(r'data-kpi="revenue">\$240.00<', html)
    for chart in ("impressions-per-day", "clicks-per-day", "revenue-per-day"):
        assert f'id="{chart}"' in html


def test_choosing_a_placement_charts_that_placement_alone(merchant, merchant_manager):
    # given
    _attributed_click(merchant, placement="cart", title="Camp Stove", price="60.00")

    # when
    response = _login(merchant_manager).get(OVERVIEW, {"placement": "cart"})

    # then
    html = response.content.decode()
    assert "Cart, by day" in html
    assert re.search(r'data-placement="cart"[^>]*\n?\s*href="[^"]*"\s*aria-current="true"', html)


def test_manager_of_another_shop_sees_only_their_own(merchant, other_merchant, other_merchant_manager):
    # given
    _attributed_click(merchant, placement="home", title="Secret Rival Kayak", price="999.00")
    RecommenderVersionFactory(merchant=merchant, number=7, status=VersionStatus.ACTIVE)

    # when: even asking for the other shop by slug
    response = _login(other_merchant_manager).get(OVERVIEW, {"merchant": merchant.slug})

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert other_merchant.name in html
    assert merchant.name not in html
    assert _placement_figure(html, "home", "lists") == "0"
    assert "$999" not in html
    assert 'data-version="7"' not in html


def test_support_agent_is_refused(support_agent):
    # when
    response = _login(support_agent).get(OVERVIEW)

    # then
    assert response.status_code == 403
    assert "merchant managers and platform admins" in response.content.decode()


def test_platform_admin_picks_a_merchant_first(merchant, platform_admin):
    # given
    client = _login(platform_admin)
    ServedRecommendationFactory(merchant=merchant, placement="email", product_ids=[1, 2])

    # when
    chooser = client.get(OVERVIEW)
    page = client.get(OVERVIEW, {"merchant": merchant.slug})
    unknown = client.get(OVERVIEW, {"merchant": "no-such-shop"})

    # then
    assert "Choose a merchant" in chooser.content.decode()
    assert _placement_figure(page.content.decode(), "email", "impressions") == "2"
    assert unknown.status_code == 404


def test_versions_show_status_ndcg_and_a_progress_bar_while_training(merchant, merchant_manager):
    # given
    RecommenderVersionFactory(
        merchant=merchant,
        number=1,
        status=VersionStatus.ACTIVE,
        metrics={"ndcg@10": 0.0912},
        activated_at=timezone.now(),
    )
    RecommenderVersionFactory(
        merchant=merchant,
        number=2,
        status=VersionStatus.TRAINING,
        progress=0.4,
        progress_message="co-views",
        metrics={},
    )

    # when
    html = _login(merchant_manager).get(OVERVIEW).content.decode()
    fragment = _login(merchant_manager).get(VERSIONS).content.decode()

    # then
    active = re.search(r'data-version="1" data-status="active">.*?</tr>', html, re.S).group(0)
    training = re.search(r'data-version="2" data-status="training">.*?</tr>', html, re.S).group(0)
    assert "0.0912" in active
    assert 'aria-valuenow="40"' in training
    assert "co-views" in training
    assert 'data-training="true"' in html
    assert f'data-refresh-url="{VERSIONS}"' in html
    assert 'data-version="2" data-status="training"' in fragment
    assert "<html" not in fragment


def test_no_refresh_when_nothing_trains(merchant, merchant_manager):
    # given
    RecommenderVersionFactory(merchant=merchant, number=1, status=VersionStatus.ACTIVE)

    # when
    html = _login(merchant_manager).get(OVERVIEW).content.decode()

    # then
    assert 'data-training="true"' not in html


def test_preview_shows_what_a_customer_would_see_and_why_without_recording_it(merchant, merchant_manager):
    # given: Alice bought the Trail Tent; her personal list opens with the Camp Lamp because of it
    build_shop(merchant)

    # when
    response = _login(merchant_manager).get(OVERVIEW, {"customer": "alice"})

    # then
    html = response.content.decode()
    assert response.status_code == 200
    home = re.search(r'data-preview-placement="home">.*?</article>', html, re.S).group(0)
    assert 'data-source="model"' in home
    first = re.search(r'<li data-product="([^"]+)">.*?data-reason="([^"]+)">([^<]+)<', home, re.S)
    assert first.group(1) == "LAMP-1"
    assert first.group(3).strip() == "Because you bought Trail Tent"
    assert 'data-product="TENT-1"' not in home  # bought, so never recommended back
    assert ServedRecommendation.objects.for_merchant(merchant).count() == 0


def test_preview_finds_a_customer_by_email(merchant, merchant_manager):
    # given
    shop = build_shop(merchant)
    shop.alice.email = "Alice@Example.com"
    shop.alice.save(update_fields=["email"])

    # when
    html = _login(merchant_manager).get(OVERVIEW, {"customer": "alice@example.com"}).content.decode()

    # then
    assert re.search(r'data-preview="customer">\s*Showing <strong>alice</strong>', html)


def test_preview_without_a_viewed_product_explains_the_missing_product_page(merchant, merchant_manager):
    # given
    build_shop(merchant)

    # when
    html = _login(merchant_manager).get(OVERVIEW, {"customer": "alice"}).content.decode()

    # then
    pdp = re.search(r'data-preview-placement="pdp">.*?</article>', html, re.S).group(0)
    assert "has not viewed a product yet" in pdp


def test_preview_of_an_unknown_customer_says_so(merchant, merchant_manager):
    # when
    response = _login(merchant_manager).get(OVERVIEW, {"customer": "nobody@example.com"})

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-preview="not-found"' in html
    assert "No customer of Acme Outdoor has the id, email or anonymous id" in html


def test_preview_never_finds_another_shops_customer(merchant, other_merchant, other_merchant_manager):
    # given
    build_shop(merchant)

    # when
    html = _login(other_merchant_manager).get(OVERVIEW, {"customer": "alice"}).content.decode()

    # then
    assert 'data-preview="not-found"' in html
    assert "Camp Lamp" not in html


@pytest.mark.parametrize("reference", ["", "   ", "x" * 500])
def test_preview_rejects_empty_or_absurd_input_with_a_message(merchant, merchant_manager, reference):
    # when
    response = _login(merchant_manager).get(OVERVIEW, {"customer": reference})

    # then
    assert response.status_code == 200
    assert 'data-preview="not-found"' in response.content.decode()


def test_the_dashboard_nav_links_to_recommendations(merchant_manager):
    # when
    html = _login(merchant_manager).get(reverse("dashboard:home")).content.decode()

    # then
    assert f'href="{OVERVIEW}"' in html
