from datetime import UTC, datetime

from revopt.simulator.driver import StorefrontAPIError, StorefrontDriver
from revopt.simulator.policy import PRICES_PATH, CatalogListing, PricingPolicy, SessionContext
from revopt.simulator.world import World, WorldConfig
from tests.simulator.fakes import FakeStorefront

STARTED = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def _listing(count: int, *, price: str = "10.00") -> CatalogListing:
    return CatalogListing(
        [
            {"sku": f"SKU-{n:04d}", "price": price, "category": {"id": 1, "path": "Outdoor > Tents"}, "in_stock": True}
            for n in range(count)
        ]
    )


def _session(session_id: str) -> SessionContext:
    return SessionContext(
        session_id=session_id,
        anonymous_id=f"anon-{session_id}",
        user_id=None,
        device="mobile",
        started_at=STARTED,
        category_path="Outdoor > Tents",
    )


class PriceApi:
    """Answers GET /api/v1/prices with a fixed price per SKU, remembering every request."""

    def __init__(self, prices: dict[str, str], *, fail_calls: frozenset[int] = frozenset()) -> None:
        self.prices = prices
        self.fail_calls = fail_calls
        self.requests: list[tuple[str, dict]] = []

    def get(self, path: str, params: dict | None = None) -> dict:
        self.requests.append((path, dict(params or {})))
        if len(self.requests) - 1 in self.fail_calls:
            raise StorefrontAPIError(f"{path} answered 503")
        skus = params["products"].split(",")
        return {
            "prices": [
                {"sku": sku, "price": self.prices[sku], "experiment": None} for sku in skus if sku in self.prices
            ],
            "unknown": [sku for sku in skus if sku not in self.prices],
        }

    def post(self, path: str, payload: dict) -> dict:
        raise AssertionError("the policy only reads")


def test_prices_are_fetched_once_per_listing_in_batches_of_200_and_charged_to_every_shopper():
    # given: 450 products whose live price is 12.50, a listing at the catalog's 10.00
    listing = _listing(450)
    api = PriceApi({product["sku"]: "12.50" for product in listing.products})
    policy = PricingPolicy(max_products=60, transport=api)

    # when: three shoppers open the category on the same day
    for session_id in ("s-1", "s-2", "s-3"):
        policy.products_to_show(_session(session_id), listing)
    charged = {policy.price_of(product) for product in listing.products}

    # then: three calls (200 + 200 + 50 SKUs) for the whole day, and one price for everyone
    assert [path for path, _ in api.requests] == [PRICES_PATH] * 3
    assert [len(params["products"].split(",")) for _, params in api.requests] == [200, 200, 50]
    # no shopper parameter reaches the price API: nothing could make a price depend on who asks
    assert all(set(params) == {"products"} for _, params in api.requests)
    assert charged == {12.5}
    assert policy.failures == 0


def test_a_new_days_listing_fetches_the_prices_again():
    # given: yesterday's prices were fetched, then the engine changed one
    first_day, second_day = _listing(3), _listing(3)
    api = PriceApi({"SKU-0000": "9.00", "SKU-0001": "11.00", "SKU-0002": "10.00"})
    policy = PricingPolicy(transport=api)
    policy.products_to_show(_session("s-1"), first_day)
    api.prices["SKU-0001"] = "11.90"

    # when
    policy.products_to_show(_session("s-2"), second_day)

    # then
    assert len(api.requests) == 2
    assert policy.price_of(second_day.by_sku["SKU-0001"]) == 11.90
    assert policy.price_of(second_day.by_sku["SKU-0000"]) == 9.00


def test_a_failed_batch_falls_back_to_the_catalog_price_and_is_counted():
    # given: the second of two calls fails
    listing = _listing(250, price="10.00")
    api = PriceApi({product["sku"]: "8.00" for product in listing.products}, fail_calls=frozenset({1}))
    policy = PricingPolicy(transport=api)

    # when
    policy.products_to_show(_session("s-1"), listing)

    # then: the first 200 at the live price, the last 50 at the catalog's
    assert policy.failures == 1
    assert policy.price_of(listing.products[0]) == 8.00
    assert policy.price_of(listing.products[-1]) == 10.00


def test_a_product_the_api_does_not_know_keeps_its_catalog_price():
    # given
    listing = _listing(2, price="10.00")
    policy = PricingPolicy(transport=PriceApi({"SKU-0000": "7.00"}))

    # when
    policy.products_to_show(_session("s-1"), listing)

    # then
    assert policy.price_of(listing.by_sku["SKU-0000"]) == 7.00
    assert policy.price_of(listing.by_sku["SKU-0001"]) == 10.00
    assert policy.failures == 0


class StorefrontWithPrices(FakeStorefront):
    """The fake storefront, also answering the price API: every product at 90% of its catalog price."""

    def get(self, path: str, params: dict | None = None) -> dict:
        if path != PRICES_PATH:
            return super().get(path, params)
        skus = params["products"].split(",")
        by_sku = {product["sku"]: product for product in self.products}
        return {"prices": [{"sku": sku, "price": f"{float(by_sku[sku]['price']) * 0.9:.2f}"} for sku in skus]}


def test_the_driver_connects_the_policy_and_shoppers_pay_the_live_price():
    # given: a tiny world driven through a storefront whose live prices are 10% below the catalog
    world = World.generate(
        WorldConfig(
            seed=3, n_sessions=200, days=2, n_products=30, n_categories=3, start_date=datetime(2026, 1, 5).date()
        )
    )
    storefront = StorefrontWithPrices(world)
    policy = PricingPolicy(max_products=world.config.listing_size)
    catalog_price = {product["sku"]: float(product["price"]) for product in storefront.products}

    # when
    StorefrontDriver(world=world, transport=storefront, policy=policy).run()

    # then: every viewed price is the live one, and prices were fetched once a day
    viewed = [event["properties"] for event in storefront.events if event.get("event") == "Product Viewed"]
    assert viewed
    assert all(abs(item["price"] - round(catalog_price[item["sku"]] * 0.9, 2)) < 0.006 for item in viewed)
    assert policy.price_requests == 2
    assert policy.failures == 0
