from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from events.validation import parse_event
from revopt.simulator.driver import StorefrontAPIError, StorefrontDriver
from revopt.simulator.policy import CatalogBrowsePolicy, StorefrontPolicy
from revopt.simulator.world import World, WorldConfig
from tests.simulator.fakes import FakeStorefront

CONFIG = WorldConfig(seed=5, n_sessions=1500, n_products=120, days=10, start_date=date(2026, 3, 2))
NOW = datetime(2026, 3, 20, tzinfo=UTC)


def _drive(config: WorldConfig, **kwargs) -> tuple[FakeStorefront, StorefrontDriver]:
    world = World.generate(config)
    storefront = FakeStorefront(world, **kwargs)
    driver = StorefrontDriver(world=world, transport=storefront, now=lambda: NOW)
    driver.run()
    return storefront, driver


@pytest.fixture(scope="module")
def driven() -> tuple[FakeStorefront, StorefrontDriver]:
    return _drive(CONFIG)


def test_same_seed_sends_the_same_event_stream(driven):
    # given
    storefront, _ = driven

    # when
    again, _ = _drive(CONFIG)

    # then
    assert again.events == storefront.events


def test_another_seed_sends_another_event_stream(driven):
    # given
    storefront, _ = driven

    # when
    other, _ = _drive(replace(CONFIG, seed=6))

    # then
    assert {e["messageId"] for e in other.events}.isdisjoint({e["messageId"] for e in storefront.events})
    assert [e.get("event") for e in other.events[:200]] != [e.get("event") for e in storefront.events[:200]]


def test_every_event_passes_the_ingest_validation(driven):
    # given
    storefront, _ = driven

    # when
    parsed = [
        parse_event(event, index=i, now=NOW, future_skew=timedelta(0)) for i, event in enumerate(storefront.events)
    ]

    # then
    assert all(hasattr(event, "message_id") for event in parsed), [e for e in parsed if not hasattr(e, "message_id")][
        :3
    ]


def test_batches_hold_at_most_a_thousand_events_and_the_catalog_is_read_once_a_day(driven):
    # given
    storefront, driver = driven

    # then
    assert max(len(batch) for batch in storefront.batches) <= 1000
    assert storefront.catalog_requests == CONFIG.days
    assert driver.accepted == len(storefront.events) == driver.simulator.stats.events


def test_sessions_look_like_a_shop(driven):
    # given
    storefront, driver = driven
    by_session: dict[str, list[dict]] = defaultdict(list)
    for event in storefront.events:
        by_session[event["sessionId"]].append(event)

    # then
    assert len(by_session) == CONFIG.n_sessions
    for events in by_session.values():
        assert events[0]["type"] == "page"
        names = [e.get("event") for e in events]
        assert 1 <= names.count("Product Viewed") <= 5
        assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
        assert len({e["timestamp"][:10] for e in events}) == 1
        assert len({e["anonymousId"] for e in events}) == 1
        assert {e["context"]["device"]["type"] for e in events} <= {"mobile", "desktop", "tablet"}
        if "Order Completed" in names:
            order = events[names.index("Order Completed")]["properties"]
            assert order["total"] == pytest.approx(
                order["subtotal"] - order["discount"] + order["shipping"] + order["tax"]
            )
            assert names.index("Checkout Started") < names.index("Order Completed")
    first, last = min(e["timestamp"] for e in storefront.events), max(e["timestamp"] for e in storefront.events)
    assert first >= "2026-03-02" and last < "2026-03-12"
    assert driver.simulator.stats.orders == sum(e.get("event") == "Order Completed" for e in storefront.events)


def test_registered_shoppers_log_in_mid_session(driven):
    # given
    storefront, _ = driven
    by_session: dict[str, list[dict]] = defaultdict(list)
    for event in storefront.events:
        by_session[event["sessionId"]].append(event)

    # when: sessions that start anonymous and continue with a userId after an identify call
    stitched = [events for events in by_session.values() if "userId" not in events[0] and "userId" in events[-1]]

    # then
    assert stitched
    for events in stitched:
        identify = next(i for i, e in enumerate(events) if e["type"] == "identify")
        assert all("userId" not in e for e in events[:identify])
        assert all("userId" in e for e in events[identify:])
        assert events[identify]["traits"]["email"].endswith("@shoppers.example")


def test_a_rejected_event_stops_the_run_with_its_errors():
    # when / then
    with pytest.raises(StorefrontAPIError, match="Product Viewed.*rejected by the fake"):
        _drive(replace(CONFIG, n_sessions=200), reject_event="Product Viewed")


def test_a_period_ending_in_the_future_is_refused():
    # given
    world = World.generate(replace(CONFIG, n_sessions=100, start_date=NOW.date()))
    driver = StorefrontDriver(world=world, transport=FakeStorefront(world), now=lambda: NOW)

    # when / then
    with pytest.raises(ValueError, match="future"):
        driver.run()


class _ExpensiveShop(CatalogBrowsePolicy):
    def price_of(self, product: dict) -> float:
        return super().price_of(product) * 1.5


def test_the_policy_decides_prices_and_higher_prices_sell_less(driven):
    # given
    storefront, driver = driven
    assert isinstance(_ExpensiveShop(), StorefrontPolicy)
    world = World.generate(CONFIG)
    expensive_storefront = FakeStorefront(world)
    expensive = StorefrontDriver(world=world, transport=expensive_storefront, policy=_ExpensiveShop(), now=lambda: NOW)

    # when
    stats = expensive.run()

    # then
    added = next(e for e in expensive_storefront.events if e.get("event") == "Product Added")["properties"]
    listed = next(p for p in expensive_storefront.products if p["sku"] == added["sku"])
    assert added["price"] == pytest.approx(float(listed["price"]) * 1.5, abs=0.01)
    assert stats.carts < driver.simulator.stats.carts


def test_session_start_times_do_not_pile_up_on_one_instant(driven):
    # given
    storefront, _ = driven

    # when: the first event of each session is when it started
    first_event_at = {}
    for event in storefront.events:
        first_event_at.setdefault(event["sessionId"], event["timestamp"])
    sessions_per_instant = Counter(first_event_at.values())

    # then: start times are spread over the day, not stacked on a cut-off
    assert len(first_event_at) == CONFIG.n_sessions
    assert max(sessions_per_instant.values()) <= 2
