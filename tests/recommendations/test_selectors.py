from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.core.cache import cache as django_cache
from django.utils import timezone

from catalog.models import Product
from events.models import AnonymousIdentity
from recommendations import cache
from recommendations.models import ServedRecommendation
from recommendations.selectors import (
    RecommendationRequestError,
    fallback_popularity,
    placement_performance,
    recommendations_for,
    search_rerank,
)
from recommendations.services.placements import placement_item_rule_create, placement_rule_save
from tests.factories.catalog import ProductFactory
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory, SessionFactory
from tests.factories.recommendations import ServedRecommendationFactory, published_version

from .serving_shop import build_shop

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(merchant):
    return build_shop(merchant)


def _viewed(shop, sku, *, customer=None, session=None, name="Product Viewed", minutes_ago=1):
    return EventFactory(
        merchant=shop.merchant,
        customer=customer or shop.alice,
        session=session,
        product=shop.products[sku],
        name=name,
        timestamp=timezone.now() - timedelta(minutes=minutes_ago),
    )


# --- placements -------------------------------------------------------------------------------


def test_home_with_history_and_no_session_keeps_the_personal_order(shop):
    # given alice, whose personal list is lamp, stove, mug, boots, socks

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=5)

    # then
    assert shop.skus(result.items) == ["LAMP-1", "STOVE-1", "MUG-1", "BOOT-1", "SOCK-1"]
    assert result.source == "model"
    assert result.degraded is False
    assert result.version == 1
    lamp = result.items[0]
    assert lamp.reason == "purchased"
    assert lamp.explanation == "Because you bought Trail Tent"
    assert lamp.because_of.kind == "product" and lamp.because_of.reference == "TENT-1"


def test_home_fills_with_popular_after_the_personal_list(shop):
    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=7)

    # then: the five personal items first, then popular ones she has not bought (not the tent)
    skus = shop.skus(result.items)
    assert skus[:5] == ["LAMP-1", "STOVE-1", "MUG-1", "BOOT-1", "SOCK-1"]
    assert skus[5:] == ["PAD-1", "POT-1"]
    assert [item.reason for item in result.items[5:]] == ["popular", "trending"]
    assert result.items[4].score > result.items[5].score


def test_home_cold_start_mixes_popular_and_trending(shop):
    # given a visitor revopt has never seen

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", anonymous_id="new-device", k=4)

    # then
    skus = shop.skus(result.items)
    assert skus[0] == "SOCK-1"  # the most popular, and the newest arrival
    assert "POT-1" in skus  # trending
    pot = next(item for item in result.items if item.sku == "POT-1")
    assert pot.reason == "trending"
    assert pot.explanation == "Trending in Kitchen"
    assert result.source == "model"


def test_home_cold_start_follows_this_sessions_views(shop):
    # given a new visitor who has just viewed the Trail Tent in this session
    visitor = CustomerFactory(merchant=shop.merchant, external_id=None)
    session = SessionFactory(merchant=shop.merchant, customer=visitor, external_id="s-1")
    _viewed(shop, "TENT-1", customer=visitor, session=session)

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", session_id="s-1", k=3)

    # then the tent's neighbours come first, explained by it
    assert result.items[0].sku == "TENT-2"
    assert result.items[0].reason == "viewed"
    assert result.items[0].explanation == "Because you viewed Trail Tent"


def test_session_views_re_rank_a_customer_with_history(shop):
    # given alice views the boots in her current session; socks are viewed with boots
    session = SessionFactory(merchant=shop.merchant, customer=shop.alice, external_id="alice-now")
    _viewed(shop, "BOOT-1", session=session)

    # when
    with_session = recommendations_for(
        merchant=shop.merchant, placement="home", customer_external_id="alice", session_id="alice-now", k=5
    )

    # then socks (last of her personal list) move up, explained by the boots
    skus = shop.skus(with_session.items)
    assert skus.index("SOCK-1") < 4
    socks = next(item for item in with_session.items if item.sku == "SOCK-1")
    assert socks.explanation == "Because you viewed Hiking Boots"


def test_another_sessions_views_do_not_re_rank(shop):
    # given alice viewed boots in an older session
    old = SessionFactory(merchant=shop.merchant, customer=shop.alice, external_id="alice-old")
    _viewed(shop, "BOOT-1", session=old, minutes_ago=60)
    SessionFactory(merchant=shop.merchant, customer=shop.alice, external_id="alice-now")

    # when
    result = recommendations_for(
        merchant=shop.merchant, placement="home", customer_external_id="alice", session_id="alice-now", k=5
    )

    # then
    assert shop.skus(result.items) == ["LAMP-1", "STOVE-1", "MUG-1", "BOOT-1", "SOCK-1"]


def test_pdp_shows_the_products_neighbours_never_itself(shop):
    # when
    result = recommendations_for(merchant=shop.merchant, placement="pdp", product_ids=["TENT-1"], k=3)

    # then
    skus = shop.skus(result.items)
    assert skus[0] == "TENT-2"
    assert "TENT-1" not in skus
    assert result.items[0].reason in ("viewed_together", "similar")
    assert result.items[0].explanation == "Customers who viewed Trail Tent also viewed this"
    assert "PAD-1" in skus


def test_pdp_of_a_product_without_neighbours_falls_back_to_popular(shop):
    # when
    result = recommendations_for(merchant=shop.merchant, placement="pdp", product_ids=["SOCK-1"], k=3)

    # then
    assert shop.skus(result.items) == ["MUG-1", "BOOT-1", "PAD-1"]
    assert {item.reason for item in result.items} == {"popular"}


def test_cart_shows_what_is_bought_with_the_cart_never_the_cart(shop):
    # when
    result = recommendations_for(merchant=shop.merchant, placement="cart", cart_product_ids=["STOVE-1", "MUG-1"], k=2)

    # then
    assert shop.skus(result.items) == ["FUEL-1", "POT-1"]
    assert result.items[0].reason == "bought_together"
    assert result.items[0].explanation == "Often bought with Camp Stove"


def test_post_purchase_uses_the_last_orders_items(shop):
    # given alice's latest order holds the stove
    order = OrderFactory(merchant=shop.merchant, customer=shop.alice, placed_at=timezone.now())
    OrderLineFactory(order=order, product=shop.products["STOVE-1"])

    # when
    result = recommendations_for(merchant=shop.merchant, placement="post_purchase", customer_external_id="alice", k=2)

    # then
    assert shop.skus(result.items) == ["FUEL-1", "POT-1"]
    assert "STOVE-1" not in shop.skus(result.items)


def test_email_with_history_uses_the_personal_list(shop):
    # when
    result = recommendations_for(merchant=shop.merchant, placement="email", customer_external_id="alice", k=2)

    # then
    assert shop.skus(result.items) == ["LAMP-1", "STOVE-1"]


def test_product_references_accept_the_external_id(shop):
    # given
    Product.objects.filter(pk=shop.id("TENT-1")).update(external_id="shopify-1")

    # when
    result = recommendations_for(merchant=shop.merchant, placement="pdp", product_ids=["shopify-1"], k=1)

    # then
    assert shop.skus(result.items) == ["TENT-2"]


# --- business rules ---------------------------------------------------------------------------


def test_a_product_whose_stock_hits_zero_disappears_at_once(shop):
    # given the published lists still hold the lamp
    before = recommendations_for(
        merchant=shop.merchant, placement="home", customer_external_id="alice", k=3, record=False
    )
    assert "LAMP-1" in shop.skus(before.items)

    # when its inventory hits zero
    Product.objects.filter(pk=shop.id("LAMP-1")).update(inventory=0)
    after = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)

    # then
    assert shop.skus(after.items) == ["STOVE-1", "MUG-1", "BOOT-1"]


def test_inactive_products_are_never_recommended(shop):
    # given
    Product.objects.filter(pk=shop.id("STOVE-1")).update(is_active=False)

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)

    # then
    assert shop.skus(result.items) == ["LAMP-1", "MUG-1", "BOOT-1"]


def test_already_bought_products_are_left_out(shop):
    # given alice bought the mug
    order = OrderFactory(merchant=shop.merchant, customer=shop.alice)
    OrderLineFactory(order=order, product=shop.products["MUG-1"])

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)

    # then
    assert shop.skus(result.items) == ["LAMP-1", "STOVE-1", "BOOT-1"]


def test_consumables_may_be_recommended_again(shop):
    # given alice bought fuel, and Kitchen (fuel's parent category) is repurchasable on the cart
    order = OrderFactory(merchant=shop.merchant, customer=shop.alice)
    OrderLineFactory(order=order, product=shop.products["FUEL-1"])
    placement_rule_save(
        merchant=shop.merchant, placement="cart", repurchasable_category_ids=[shop.categories["kitchen"].pk]
    )

    # when
    result = recommendations_for(
        merchant=shop.merchant, placement="cart", customer_external_id="alice", cart_product_ids=["STOVE-1"], k=2
    )

    # then
    assert shop.skus(result.items) == ["FUEL-1", "POT-1"]


def test_exclude_purchased_can_be_turned_off(shop):
    # given alice bought the pad, usually recommended with her tent
    order = OrderFactory(merchant=shop.merchant, customer=shop.alice)
    OrderLineFactory(order=order, product=shop.products["PAD-1"])
    kwargs = {"merchant": shop.merchant, "placement": "pdp", "customer_external_id": "alice", "product_ids": ["TENT-1"]}
    assert "PAD-1" not in shop.skus(recommendations_for(**kwargs, k=5).items)

    # when
    placement_rule_save(merchant=shop.merchant, placement="pdp", exclude_purchased=False)
    result = recommendations_for(**kwargs, k=5)

    # then
    assert "PAD-1" in shop.skus(result.items)


def test_category_filter_includes_subcategories(shop):
    # when: Outdoor includes Tents
    result = recommendations_for(
        merchant=shop.merchant, placement="home", anonymous_id="new", category_ids=[shop.categories["outdoor"].pk], k=10
    )

    # then
    categories = {shop.products[sku].category.path for sku in shop.skus(result.items)}
    assert categories <= {"Outdoor", "Outdoor > Tents"}
    assert "Outdoor > Tents" in categories


def test_several_categories_filter_together(shop):
    # when
    result = recommendations_for(
        merchant=shop.merchant,
        placement="home",
        anonymous_id="new",
        category_ids=[shop.categories["tents"].pk, shop.categories["kitchen"].pk],
        k=10,
    )

    # then
    categories = {shop.products[sku].category.path for sku in shop.skus(result.items)}
    assert categories <= {"Outdoor > Tents", "Kitchen", "Kitchen > Fuel"}
    assert {"Outdoor > Tents", "Kitchen"} <= categories


def test_request_categories_intersect_the_placements_allowed_categories(shop):
    # given home only shows Outdoor
    placement_rule_save(merchant=shop.merchant, placement="home", allowed_category_ids=[shop.categories["outdoor"].pk])

    # when asked for Kitchen and Tents
    result = recommendations_for(
        merchant=shop.merchant,
        placement="home",
        customer_external_id="alice",
        category_ids=[shop.categories["kitchen"].pk, shop.categories["tents"].pk],
        k=10,
    )

    # then only tents remain (kitchen is not allowed; alice bought TENT-1)
    assert shop.skus(result.items) == ["TENT-2"]


def test_allowed_categories_apply_without_a_request_filter(shop):
    # given
    placement_rule_save(merchant=shop.merchant, placement="home", allowed_category_ids=[shop.categories["kitchen"].pk])

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=10)

    # then
    assert {shop.products[sku].category.name for sku in shop.skus(result.items)} <= {"Kitchen", "Fuel"}
    assert shop.skus(result.items)[:2] == ["STOVE-1", "MUG-1"]


def test_pins_boosts_and_blocks(shop):
    # given the fuel pinned to position 2 on home, boots boosted ×3 everywhere, the stove blocked on home
    placement_item_rule_create(
        merchant=shop.merchant, product=shop.products["FUEL-1"], action="pin", placement="home", position=2
    )
    placement_item_rule_create(merchant=shop.merchant, product=shop.products["BOOT-1"], action="boost", boost=3.0)
    placement_item_rule_create(
        merchant=shop.merchant, product=shop.products["STOVE-1"], action="block", placement="home"
    )

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=4)

    # then
    assert shop.skus(result.items) == ["BOOT-1", "FUEL-1", "LAMP-1", "MUG-1"]
    assert result.items[1].reason == "pinned"
    assert result.items[1].explanation == "Featured"


def test_item_rules_of_another_placement_or_outside_their_window_do_not_apply(shop):
    # given a block on email only, and a pin that starts tomorrow
    placement_item_rule_create(
        merchant=shop.merchant, product=shop.products["LAMP-1"], action="block", placement="email"
    )
    placement_item_rule_create(
        merchant=shop.merchant,
        product=shop.products["FUEL-1"],
        action="pin",
        position=1,
        starts_at=timezone.now() + timedelta(days=1),
    )

    # when
    home = recommendations_for(
        merchant=shop.merchant, placement="home", customer_external_id="alice", k=2, record=False
    )
    email = recommendations_for(merchant=shop.merchant, placement="email", customer_external_id="alice", k=2)
    tomorrow = recommendations_for(
        merchant=shop.merchant,
        placement="home",
        customer_external_id="alice",
        k=2,
        at=timezone.now() + timedelta(days=1, hours=1),
        record=False,
    )

    # then
    assert shop.skus(home.items) == ["LAMP-1", "STOVE-1"]
    assert shop.skus(email.items) == ["STOVE-1", "MUG-1"]
    assert shop.skus(tomorrow.items)[0] == "FUEL-1"


def test_items_shown_again_and_again_without_a_click_sink(shop):
    # given home discounts each unclicked impression by half
    placement_rule_save(merchant=shop.merchant, placement="home", impression_discount=0.5)

    # when alice is shown her list three times
    lists = [
        recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)
        for _ in range(3)
    ]

    # then the lamp, first at first, sinks below items she has not been shown as often
    assert lists[0].items[0].sku == "LAMP-1"
    assert lists[2].items[0].sku != "LAMP-1"
    assert shop.skus(lists[2].items) != shop.skus(lists[0].items)


def test_a_click_resets_the_impression_discount(shop):
    # given the lamp was shown twice and then clicked
    placement_rule_save(merchant=shop.merchant, placement="home", impression_discount=0.5)
    for _ in range(2):
        recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)
    _viewed(shop, "LAMP-1", name="Product Clicked", minutes_ago=-1)

    # when
    result = recommendations_for(
        merchant=shop.merchant,
        placement="home",
        customer_external_id="alice",
        k=3,
        at=timezone.now() + timedelta(minutes=2),
    )

    # then
    assert result.items[0].sku == "LAMP-1"


def test_max_per_category_caps_the_list(shop):
    # given at most one product per category on home
    placement_rule_save(merchant=shop.merchant, placement="home", max_per_category=1)

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=5)

    # then lamp (Outdoor) and stove (Kitchen) and then one of each remaining category
    skus = shop.skus(result.items)
    assert skus[:2] == ["LAMP-1", "STOVE-1"]
    categories = [shop.products[sku].category_id for sku in skus]
    assert len(categories) == len(set(categories))


def test_mmr_spreads_the_list_over_the_item_vectors(merchant):
    # given stove and mug point the same way, lamp elsewhere
    shop = build_shop(merchant, publish=False)
    vectors = {shop.id("LAMP-1"): [1.0, 0.0], shop.id("STOVE-1"): [0.0, 1.0], shop.id("MUG-1"): [0.0, 1.0]}
    vectors[shop.id("BOOT-1")] = [1.0, 0.0]
    shop.precomputed.item_vectors = vectors
    published_version(merchant=merchant, precomputed=shop.precomputed)
    placement_rule_save(merchant=merchant, placement="home", mmr_lambda=0.3)

    # when
    result = recommendations_for(merchant=merchant, placement="home", customer_external_id="alice", k=3)

    # then after lamp and stove, the mug (like the stove) gives way to a product unlike both picked
    assert shop.skus(result.items)[:2] == ["LAMP-1", "STOVE-1"]
    assert result.items[2].sku == "SOCK-1"


# --- opt-out, fallback, warming, isolation ----------------------------------------------------


def test_opted_out_customers_get_the_non_personal_mix(shop):
    # given alice opted out of personalization, and views boots in this session
    shop.alice.personalization_opt_out = True
    shop.alice.save()
    session = SessionFactory(merchant=shop.merchant, customer=shop.alice, external_id="alice-now")
    _viewed(shop, "BOOT-1", session=session)

    # when
    result = recommendations_for(
        merchant=shop.merchant, placement="home", customer_external_id="alice", session_id="alice-now", k=3
    )
    cold = recommendations_for(merchant=shop.merchant, placement="home", anonymous_id="someone", k=3, record=False)

    # then the same list as a stranger's, nothing from her history or session
    assert result.source == "non_personal"
    assert shop.skus(result.items) == shop.skus(cold.items)
    assert all(item.reason not in ("viewed", "purchased", "for_you") for item in result.items)


def test_opted_out_cart_still_gets_bought_together(shop):
    # given
    shop.alice.personalization_opt_out = True
    shop.alice.save()

    # when
    result = recommendations_for(
        merchant=shop.merchant, placement="cart", customer_external_id="alice", cart_product_ids=["STOVE-1"], k=2
    )

    # then
    assert shop.skus(result.items) == ["FUEL-1", "POT-1"]
    assert result.source == "non_personal"


def _popularity_data(shop):
    now = timezone.now()
    for _ in range(3):
        _viewed(shop, "BOOT-1", customer=shop.alice)
    _viewed(shop, "MUG-1", customer=shop.alice)
    bob = CustomerFactory(merchant=shop.merchant, external_id="bob")
    order = OrderFactory(merchant=shop.merchant, customer=bob, placed_at=now - timedelta(days=2))
    OrderLineFactory(order=order, product=shop.products["POT-1"], quantity=1)
    old = OrderFactory(merchant=shop.merchant, customer=bob, placed_at=now - timedelta(days=40))
    OrderLineFactory(order=old, product=shop.products["LAMP-1"], quantity=9)


def test_with_the_cache_down_the_database_answers_and_says_so(shop):
    # given purchases and views of the last 30 days, and the stock of the boots at zero
    _popularity_data(shop)
    Product.objects.filter(pk=shop.id("BOOT-1")).update(inventory=0)

    # when Redis is down
    with mock.patch.object(django_cache, "get_many", side_effect=ConnectionError("redis down")):
        result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=5)

    # then: pot (1 purchase × 8 + 0) beats mug (1 view); the tent alice bought and the boots out of stock
    # are left out; the 40-day-old lamp order does not count
    assert result.source == "fallback"
    assert result.degraded is True
    assert result.version is None
    assert shop.skus(result.items) == ["POT-1", "MUG-1"]
    assert ServedRecommendation.objects.get(pk=result.recommendation_id).source == "fallback"


def test_a_cache_failure_on_write_still_answers(shop):
    # when every cache call fails
    with (
        mock.patch.object(django_cache, "get_many", side_effect=ConnectionError("down")),
        mock.patch.object(django_cache, "set_many", side_effect=ConnectionError("down")),
    ):
        result = recommendations_for(merchant=shop.merchant, placement="cart", cart_product_ids=["STOVE-1"], k=3)

    # then
    assert result.source == "fallback"
    assert "STOVE-1" not in shop.skus(result.items)


def test_nothing_published_answers_from_the_database(merchant):
    # given a shop without a trained model
    shop = build_shop(merchant, publish=False)
    _popularity_data(shop)

    # when
    result = recommendations_for(merchant=merchant, placement="home", anonymous_id="x", k=3)

    # then: the tent alice bought and the pot bob bought (8 each, by id), boots viewed 3 times
    assert result.source == "fallback"
    assert result.degraded is True
    assert shop.skus(result.items) == ["TENT-1", "POT-1", "BOOT-1"]


def test_a_cold_cache_is_warmed_from_the_active_versions_artifact(shop):
    # given the cache lost the version's lists (restart, eviction)
    django_cache.delete(cache.version_key(shop.merchant.pk, 1, "global"))
    django_cache.delete(cache.version_key(shop.merchant.pk, 1, f"c:{shop.alice.pk}"))

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=2)

    # then
    assert result.source == "model"
    assert shop.skus(result.items) == ["LAMP-1", "STOVE-1"]
    assert django_cache.get(cache.version_key(shop.merchant.pk, 1, "global")) is not None


def test_only_one_process_warms_a_version_at_a_time(shop):
    # given another process holds the warming lock
    django_cache.delete(cache.version_key(shop.merchant.pk, 1, "global"))
    assert cache.warm_lock_acquire(merchant_id=shop.merchant.pk, number=1)

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=2)

    # then this request does not warm; it answers from the database
    assert result.source == "fallback"
    assert django_cache.get(cache.version_key(shop.merchant.pk, 1, "global")) is None


def test_another_merchants_products_are_unknown(shop, other_merchant):
    # given the other shop has a product with the same SKU pattern
    ProductFactory(merchant=other_merchant, sku="THEIRS-1")

    # when / then
    with pytest.raises(RecommendationRequestError) as error:
        recommendations_for(merchant=shop.merchant, placement="pdp", product_ids=["THEIRS-1"])
    assert error.value.field == "product_id"


def test_another_merchants_customer_and_lists_are_not_served(shop, other_merchant):
    # given the other shop has its own "alice" and no model
    CustomerFactory(merchant=other_merchant, external_id="alice")

    # when
    result = recommendations_for(merchant=other_merchant, placement="home", customer_external_id="alice", k=5)

    # then
    assert result.source == "fallback"
    assert not set(item.product_id for item in result.items) & {p.pk for p in shop.products.values()}


# --- recording, validation, query count -------------------------------------------------------


def test_the_served_list_is_recorded_for_attribution(shop):
    # when
    result = recommendations_for(
        merchant=shop.merchant, placement="home", customer_external_id="alice", session_id="s-9", k=3
    )

    # then
    served = ServedRecommendation.objects.get(pk=result.recommendation_id)
    assert served.merchant == shop.merchant
    assert served.placement == "home"
    assert served.customer == shop.alice
    assert served.session_external_id == "s-9"
    assert served.product_ids == [item.product_id for item in result.items]
    assert served.item_count == 3
    assert served.version == shop.version
    assert served.source == "model"


def test_previews_are_not_recorded(shop):
    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", record=False)

    # then
    assert result.recommendation_id is None
    assert not ServedRecommendation.objects.exists()


def test_default_k_comes_from_the_placement_rule(shop):
    # given
    placement_rule_save(merchant=shop.merchant, placement="home", default_k=2)

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice")

    # then
    assert len(result.items) == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"placement": "sidebar"}, "placement"),
        ({"placement": "home", "k": 0}, "k"),
        ({"placement": "home", "k": 101}, "k"),
        ({"placement": "pdp"}, "product_id"),
        ({"placement": "cart"}, "cart"),
        ({"placement": "cart", "cart_product_ids": ["STOVE-1", "NOPE"]}, "cart"),
        ({"placement": "pdp", "product_ids": ["NOPE"]}, "product_id"),
        ({"placement": "home", "category_ids": [999999]}, "category"),
    ],
)
def test_bad_requests_name_the_field(shop, kwargs, field):
    # when / then
    with pytest.raises(RecommendationRequestError) as error:
        recommendations_for(merchant=shop.merchant, **kwargs)
    assert error.value.field == field


def test_a_warm_request_runs_a_small_fixed_number_of_queries(shop, django_assert_max_num_queries):
    # given a warm cache (the rules and the pointer are cached by a first request)
    session = SessionFactory(merchant=shop.merchant, customer=shop.alice, external_id="alice-now")
    _viewed(shop, "BOOT-1", session=session)
    recommendations_for(merchant=shop.merchant, placement="pdp", customer_external_id="alice", product_ids=["TENT-1"])

    # when / then: references, customer with purchases, events, products, insert
    with django_assert_max_num_queries(5):
        result = recommendations_for(
            merchant=shop.merchant,
            placement="pdp",
            customer_external_id="alice",
            session_id="alice-now",
            product_ids=["TENT-1"],
            k=10,
        )
    assert result.items


def test_fallback_popularity_is_one_query(shop, django_assert_num_queries):
    # given
    _popularity_data(shop)

    # when / then
    with django_assert_num_queries(1):
        ranked = fallback_popularity(merchant_id=shop.merchant.pk)
    assert [(shop.sku(product_id), score) for product_id, score in ranked] == [
        ("TENT-1", 8.0),
        ("POT-1", 8.0),
        ("BOOT-1", 3.0),
        ("MUG-1", 1.0),
    ]


# --- search re-rank ---------------------------------------------------------------------------


def test_search_rerank_puts_the_customers_products_first_and_reports_unknown_ids(shop):
    # when
    result = search_rerank(
        merchant=shop.merchant,
        product_ids=["PAD-1", "TENT-2", "NOPE", "STOVE-1", "LAMP-1"],
        customer_external_id="alice",
    )

    # then: lamp and stove are on her personal list; the unknown id is reported
    assert [item.reference for item in result.items][:2] == ["LAMP-1", "STOVE-1"]
    assert sorted(item.reference for item in result.items) == ["LAMP-1", "PAD-1", "STOVE-1", "TENT-2"]
    assert result.unknown_product_ids == ["NOPE"]
    assert ServedRecommendation.objects.get(pk=result.recommendation_id).placement == "search"


def test_search_rerank_without_a_customer_orders_by_popularity_then_given_order(shop):
    # when
    result = search_rerank(merchant=shop.merchant, product_ids=["TENT-2", "LAMP-1", "SOCK-1"])

    # then: socks (the most popular) first, the lamp (a little popular) before the tent (not at all)
    assert [item.reference for item in result.items] == ["SOCK-1", "LAMP-1", "TENT-2"]
    assert result.source == "model"


def test_decimal_price_is_kept(shop):
    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=1)

    # then
    assert result.items[0].price == Decimal("25.00")


# --- placement performance ------------------------------------------------------------------


def _at(day, hour, minute=0):
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def _click(merchant, customer, product, recommendation_id, moment):
    properties = {} if recommendation_id is None else {"recommendation_id": recommendation_id}
    return EventFactory(
        merchant=merchant,
        customer=customer,
        product=product,
        name="Product Clicked",
        timestamp=moment,
        properties=properties,
    )


def _order(merchant, customer, moment, lines, status="completed"):
    order = OrderFactory(merchant=merchant, customer=customer, placed_at=moment, status=status)
    for product, quantity, unit_price in lines:
        OrderLineFactory(order=order, product=product, quantity=quantity, unit_price=Decimal(unit_price))
    return order


def test_placement_performance_by_day_on_a_hand_checked_example(merchant, other_merchant, django_assert_num_queries):
    # given lists served on the 19th (home ×2, 5 products) and the 20th (pdp, 4 products), one long before
    x, y, z, w = (ProductFactory(merchant=merchant) for _ in range(4))
    alice = CustomerFactory(merchant=merchant)
    bob = CustomerFactory(merchant=merchant)
    served = ServedRecommendationFactory
    home_1 = served(merchant=merchant, placement="home", product_ids=[x.pk, y.pk, w.pk], created_at=_at(19, 10))
    home_2 = served(merchant=merchant, placement="home", product_ids=[y.pk, x.pk], created_at=_at(19, 11))
    pdp = served(merchant=merchant, placement="pdp", product_ids=[z.pk, x.pk, y.pk, w.pk], created_at=_at(20, 9))
    served(merchant=merchant, placement="home", product_ids=[x.pk], created_at=_at(10, 9))
    theirs = served(merchant=other_merchant, placement="email", product_ids=[], created_at=_at(19, 9))
    # and clicks: two from home lists (one id in upper case), one from the pdp, and three that count for nothing
    _click(merchant, alice, x, str(home_1.id), _at(19, 10, 5))
    _click(merchant, bob, y, str(home_2.id).upper(), _at(19, 11, 5))
    _click(merchant, alice, z, str(pdp.id), _at(20, 9, 10))
    _click(merchant, alice, w, "not-a-uuid", _at(19, 12))
    _click(merchant, alice, w, str(theirs.id), _at(19, 12))
    _click(merchant, alice, w, None, _at(19, 12))
    # and orders: alice buys x (2 × 10) the same evening, then x and z the next morning (within 24 h of
    # both clicks); w was never clicked from a list; bob buys y 25 h after his click; a cancelled order
    _order(merchant, alice, _at(19, 20), [(x, 2, "10.00"), (w, 1, "5.00")])
    _order(merchant, alice, _at(20, 10), [(x, 1, "10.00"), (z, 1, "30.00")])
    _order(merchant, bob, _at(20, 12, 6), [(y, 1, "15.00")])
    _order(merchant, alice, _at(20, 11), [(z, 1, "30.00")], status="cancelled")

    # when
    with django_assert_num_queries(3):
        report = placement_performance(merchant=merchant, days=3, today=date(2026, 11, 20))

    # then
    by_placement = {row.placement: row for row in report}
    home, pdp_row = by_placement["home"], by_placement["pdp"]
    assert [day.day for day in home.days] == [date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)]
    assert [(d.lists_served, d.impressions, d.clicks) for d in home.days] == [(0, 0, 0), (2, 5, 2), (0, 0, 0)]
    assert home.days[1].ctr == pytest.approx(0.4)
    assert [(d.attributed_orders, d.attributed_revenue) for d in home.days] == [
        (0, Decimal("0.00")),
        (1, Decimal("20.00")),
        (1, Decimal("10.00")),
    ]
    assert (home.lists_served, home.impressions, home.clicks, home.attributed_orders) == (2, 5, 2, 2)
    assert home.attributed_revenue == Decimal("30.00")
    assert (pdp_row.days[2].lists_served, pdp_row.days[2].impressions, pdp_row.days[2].clicks) == (1, 4, 1)
    assert pdp_row.ctr == pytest.approx(0.25)
    assert (pdp_row.attributed_orders, pdp_row.attributed_revenue) == (1, Decimal("30.00"))
    assert by_placement["email"].lists_served == 0
    assert by_placement["email"].clicks == 0


def test_placement_performance_days_follow_the_merchants_time_zone(merchant):
    # given a shop in Tokyo (UTC+9) and a list served at 20:00 UTC on the 19th: the 20th in Tokyo
    merchant.timezone = "Asia/Tokyo"
    merchant.save()
    ServedRecommendationFactory(merchant=merchant, placement="cart", product_ids=[1, 2], created_at=_at(19, 20))

    # when
    report = placement_performance(merchant=merchant, days=2, today=date(2026, 11, 20))

    # then
    cart = next(row for row in report if row.placement == "cart")
    assert [day.lists_served for day in cart.days] == [0, 1]


def test_a_real_redis_that_refuses_connections_falls_back(shop, settings):
    # given the cache points at a port where no Redis listens
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    }

    # when
    result = recommendations_for(merchant=shop.merchant, placement="cart", cart_product_ids=["STOVE-1"], k=3)

    # then
    assert result.source == "fallback"
    assert result.degraded is True
    assert result.recommendation_id is not None


def test_a_corrupt_artifact_falls_back_instead_of_failing(shop):
    # given the cache lost the lists and the artifact cannot be read
    type(shop.version).objects.filter(pk=shop.version.pk).update(artifact=b"not a pickle")
    django_cache.delete(cache.version_key(shop.merchant.pk, 1, "global"))

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=2)

    # then
    assert result.source == "fallback"


def test_an_anonymous_id_resolves_to_its_customer_following_merges(shop):
    # given a device whose anonymous customer was merged into alice
    merged = CustomerFactory(merchant=shop.merchant, external_id=None, merged_into=shop.alice)
    AnonymousIdentity.objects.create(merchant=shop.merchant, anonymous_id="device-7", customer=merged)

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", anonymous_id="device-7", k=2)

    # then alice's personal list
    assert shop.skus(result.items) == ["LAMP-1", "STOVE-1"]
    assert result.customer_id == shop.alice.pk


# --- serving performance: round trips and this process's copies ---------------------------------


def test_a_warm_request_reads_the_cache_in_one_round_trip(shop):
    # given this process already knows the pointer and the rules
    recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)

    # when
    with mock.patch.object(django_cache, "get_many", wraps=django_cache.get_many) as get_many:
        result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)

    # then: pointer and rules from memory; lists and impressions in one read
    assert result.source == "model"
    assert get_many.call_count == 1


def test_an_unknown_visitors_session_lists_come_in_the_same_round_trip(shop):
    # given a session that viewed the tent, and the pointer and rules known to this process
    session = SessionFactory(merchant=shop.merchant, external_id="new-visitor-session")
    _viewed(shop, "TENT-1", customer=CustomerFactory(merchant=shop.merchant), session=session)
    recommendations_for(merchant=shop.merchant, placement="home", anonymous_id="stranger", k=3)

    # when
    with mock.patch.object(django_cache, "get_many", wraps=django_cache.get_many) as get_many:
        result = recommendations_for(
            merchant=shop.merchant, placement="home", anonymous_id="stranger", session_id="new-visitor-session", k=3
        )

    # then
    assert get_many.call_count == 1
    read = get_many.call_args.args[0]
    assert cache.version_key(shop.merchant.pk, 1, f"i:{shop.id('TENT-1')}") in read
    assert result.source == "model"


def test_a_rule_saved_in_this_process_applies_to_the_next_request(shop):
    # given the rules copied in this process's memory by a first request
    first = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=4)
    assert "LAMP-1" in shop.skus(first.items)

    # when
    placement_item_rule_create(merchant=shop.merchant, product=shop.products["LAMP-1"], action="block")
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=4)

    # then
    assert "LAMP-1" not in shop.skus(result.items)


def test_another_process_deactivating_the_version_is_seen_when_the_local_copy_expires(shop):
    # given this process's copy of the pointer, then another process marks nothing active in the cache
    recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)
    django_cache.set(cache.active_key(shop.merchant.pk), cache.NO_ACTIVE_VERSION)

    # when
    within = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)
    cache.local_state_forget(merchant_id=shop.merchant.pk)  # what the copy's expiry does
    after = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)

    # then
    assert within.source == "model"
    assert after.source == "fallback"


def test_without_a_local_copy_the_cached_pointer_is_read_every_request(shop, settings):
    # given
    settings.REVOPT = {**settings.REVOPT, "RECOMMENDATION_LOCAL_SECONDS": 0}
    recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)
    django_cache.set(cache.active_key(shop.merchant.pk), cache.NO_ACTIVE_VERSION)

    # when
    result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)

    # then
    assert result.source == "fallback"


def test_fallback_popularity_does_not_remember_an_empty_answer(other_merchant):
    # given a shop where nothing was sold or viewed yet
    product = ProductFactory(merchant=other_merchant, inventory=5)
    assert fallback_popularity(merchant_id=other_merchant.pk) == []

    # when the first view comes in
    EventFactory(
        merchant=other_merchant,
        customer=CustomerFactory(merchant=other_merchant),
        product=product,
        name="Product Viewed",
        timestamp=timezone.now() - timedelta(minutes=1),
    )

    # then it counts at once
    assert [product_id for product_id, _ in fallback_popularity(merchant_id=other_merchant.pk)] == [product.pk]


def test_fallback_popularity_of_another_moment_is_not_the_memo_of_now(shop):
    # given the 30 days before now remembered
    _popularity_data(shop)
    now = timezone.now()
    recent = fallback_popularity(merchant_id=shop.merchant.pk, now=now)

    # when asked about the 30 days before 35 days ago (the lamp's 9 units, 40 days ago)
    earlier = fallback_popularity(merchant_id=shop.merchant.pk, now=now - timedelta(days=35))

    # then
    assert "LAMP-1" not in [shop.sku(product_id) for product_id, _ in recent]
    assert [shop.sku(product_id) for product_id, _ in earlier] == ["LAMP-1"]


def test_a_failing_impressions_write_still_answers_from_the_model(shop):
    # given the pointer and rules known to this process
    recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)

    # when the impressions write fails
    with mock.patch.object(django_cache, "set", side_effect=ConnectionError("down")) as failing_set:
        result = recommendations_for(merchant=shop.merchant, placement="home", customer_external_id="alice", k=3)

    # then
    assert failing_set.called
    assert result.source == "model"
    assert result.items
