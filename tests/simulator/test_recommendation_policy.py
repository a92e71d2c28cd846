import re
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command

from events.models import Event
from recommendations import selectors
from recommendations.models import ServedRecommendation
from recommendations.selectors import placement_performance
from revopt.simulator.driver import StorefrontAPIError, StorefrontDriver
from revopt.simulator.policy import CatalogBrowsePolicy, CatalogListing, RecommendationPolicy, SessionContext
from revopt.simulator.services import simulation_run
from revopt.simulator.world import World, WorldConfig
from tests.simulator.fakes import FakeStorefront

STARTED = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def _product(sku: str, category_id: int, path: str, *, in_stock: bool = True) -> dict:
    return {"sku": sku, "price": "10.00", "category": {"id": category_id, "path": path}, "in_stock": in_stock}


LISTING = CatalogListing(
    [
        _product("TENT-1", 3, "Outdoor > Tents"),
        _product("TENT-2", 3, "Outdoor > Tents"),
        _product("TENT-3", 3, "Outdoor > Tents", in_stock=False),
        _product("TENT-4", 3, "Outdoor > Tents"),
        _product("TENT-5", 3, "Outdoor > Tents"),
        _product("MUG-1", 5, "Kitchen > Mugs"),
    ]
)


def _session(*, session_id: str = "s-1", user_id: str | None = None) -> SessionContext:
    return SessionContext(
        session_id=session_id,
        anonymous_id="anon-1",
        user_id=user_id,
        device="mobile",
        started_at=STARTED,
        category_path="Outdoor > Tents",
    )


class RecordingApi:
    """Answers GET /api/v1/recommendations with fixed SKUs, remembering what it was asked."""

    def __init__(self, skus: list[str], *, fail: bool = False) -> None:
        self.skus = skus
        self.fail = fail
        self.requests: list[tuple[str, dict]] = []

    def get(self, path: str, params: dict | None = None) -> dict:
        self.requests.append((path, params or {}))
        if self.fail:
            raise StorefrontAPIError("/api/v1/recommendations answered 503")
        return {
            "recommendation_id": "rec-1",
            "placement": "home",
            "items": [{"sku": sku, "product_id": sku} for sku in self.skus],
        }

    def post(self, path: str, payload: dict) -> dict:
        raise AssertionError("the policy only reads")


def test_recommended_products_come_first_then_the_rest_of_the_category():
    # given: the API recommends a tent, an out-of-stock tent and a mug from another category
    api = RecordingApi(["TENT-4", "TENT-3", "MUG-1", "TENT-2"])
    policy = RecommendationPolicy(max_products=4, transport=api)

    # when
    shown = policy.products_to_show(_session(), LISTING)

    # then
    assert shown == ["TENT-4", "TENT-2", "TENT-1", "TENT-5"]
    assert policy.served_lists == 1
    assert policy.recommended_shown == 2


def test_the_policy_asks_for_the_home_placement_filtered_to_the_page_category():
    # given
    api = RecordingApi(["TENT-1"])
    policy = RecommendationPolicy(max_products=60, transport=api)

    # when
    policy.products_to_show(_session(user_id=None), LISTING)
    policy.products_to_show(_session(session_id="s-2", user_id="u-9"), LISTING)

    # then
    (path, anonymous), (_, logged_in) = api.requests
    assert path == "/api/v1/recommendations"
    assert anonymous == {
        "placement": "home",
        "anonymous_id": "anon-1",
        "session_id": "s-1",
        "k": 60,
        "device": "mobile",
        "at": STARTED.isoformat(),
        "category": 3,
    }
    assert "customer_id" not in anonymous
    assert logged_in["customer_id"] == "u-9"


def test_only_products_opened_from_the_current_recommended_list_carry_its_id():
    # given
    policy = RecommendationPolicy(transport=RecordingApi(["TENT-4"]))
    session = _session()
    policy.products_to_show(session, LISTING)

    # then
    assert policy.recommendation_id_for(session, "TENT-4") == "rec-1"
    assert policy.recommendation_id_for(session, "TENT-1") is None
    assert policy.recommendation_id_for(_session(session_id="another"), "TENT-4") is None


def test_when_the_api_fails_the_page_shows_the_catalog_order_and_the_failure_is_counted():
    # given
    policy = RecommendationPolicy(max_products=60, transport=RecordingApi([], fail=True))

    # when
    shown = policy.products_to_show(_session(), LISTING)

    # then
    assert shown == CatalogBrowsePolicy(max_products=60).products_to_show(_session(), LISTING)
    assert policy.failures == 1
    assert policy.recommendation_id_for(_session(), "TENT-1") is None


def test_the_driver_connects_its_transport_to_the_policy():
    # given
    world = World.generate(
        WorldConfig(seed=3, n_sessions=20, days=1, n_products=30, n_categories=3, start_date=STARTED.date())
    )
    storefront = FakeStorefront(world)
    policy = RecommendationPolicy()

    # when
    StorefrontDriver(world=world, transport=storefront, policy=policy)

    # then
    assert policy.transport is storefront


def test_the_catalog_policy_sends_no_clicks():
    # given
    world = World.generate(
        WorldConfig(seed=3, n_sessions=60, days=2, n_products=30, n_categories=3, start_date=STARTED.date())
    )
    storefront = FakeStorefront(world)

    # when
    StorefrontDriver(world=world, transport=storefront, now=lambda: datetime(2026, 4, 1, tzinfo=UTC)).run()

    # then
    assert storefront.events
    assert not [event for event in storefront.events if event.get("event") == "Product Clicked"]


@pytest.mark.django_db
def test_a_simulated_run_with_the_policy_feeds_attribution_and_the_merchant_screen(merchant, monkeypatch):
    # given: no model yet, so the API answers from the database's popularity; a simulated week passes in
    # seconds, so the fallback's one-minute memo would keep day one's empty answer for the whole run
    monkeypatch.setattr(selectors, "FALLBACK_MEMO_SECONDS", 0.0)
    config = WorldConfig(seed=11, n_sessions=300, days=5, n_products=80, n_categories=4)
    policy = RecommendationPolicy(max_products=config.listing_size)

    # when
    simulation_run(merchant=merchant, config=config, policy=policy, progress=False)

    # then
    served = {str(row.pk): row for row in ServedRecommendation.objects.for_merchant(merchant)}
    clicks = list(Event.objects.for_merchant(merchant).filter(name="Product Clicked").select_related("product"))
    assert policy.failures == 0
    assert len(served) == policy.served_lists > 0
    assert clicks
    for click in clicks:
        served_list = served[click.properties["recommendation_id"]]
        assert click.product_id in served_list.product_ids
    added = Event.objects.for_merchant(merchant).filter(name="Product Added", properties__has_key="recommendation_id")
    assert added.exists()
    home = next(item for item in placement_performance(merchant=merchant) if item.placement == "home")
    assert home.lists_served == len(served)
    assert home.impressions == sum(row.item_count for row in served.values())
    assert home.clicks == len(clicks)


@pytest.mark.django_db
def test_the_simulate_command_selects_the_recommendation_policy(merchant, monkeypatch):
    # given
    monkeypatch.setattr(selectors, "FALLBACK_MEMO_SECONDS", 0.0)
    out = StringIO()

    # when
    call_command(
        "simulate",
        "--merchant",
        merchant.slug,
        "--sessions",
        "40",
        "--days",
        "2",
        "--products",
        "30",
        "--policy",
        "recommendations",
        "--no-progress",
        stdout=out,
    )

    # then
    served = ServedRecommendation.objects.for_merchant(merchant).count()
    assert served > 0
    assert re.search(rf"rec\. lists\s+{served}\n", out.getvalue())
    assert re.search(r"rec\. failures\s+0\n", out.getvalue())
