from datetime import UTC, datetime
from unittest import mock

import pytest
from django.core.cache import cache as django_cache
from django.core.exceptions import ValidationError
from django.utils import timezone

from recommendations import cache
from recommendations.models import PlacementItemRule, PlacementRule, ServedRecommendation
from recommendations.selectors import ServingConfig
from recommendations.services.placements import (
    placement_item_rule_create,
    placement_item_rule_delete,
    placement_rule_save,
    served_recommendation_record,
)
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import CategoryFactory, ProductFactory
from tests.factories.events import CustomerFactory
from tests.factories.recommendations import RecommenderVersionFactory

pytestmark = pytest.mark.django_db

MOMENT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _cached_config(merchant):
    return django_cache.get(cache.config_key(merchant.pk))


def _prime_config(merchant):
    cache.config_set(
        merchant_id=merchant.pk,
        config=ServingConfig(policies={}, item_rules=(), categories={}, impression_window_days=7),
    )
    assert _cached_config(merchant) is not None


def test_served_recommendation_record_stores_the_list(merchant):
    # given
    customer = CustomerFactory(merchant=merchant)
    version = RecommenderVersionFactory(merchant=merchant)
    now = timezone.now()

    # when
    served = served_recommendation_record(
        merchant=merchant,
        placement="cart",
        product_ids=[3, 1, 2],
        source="model",
        created_at=now,
        customer_id=customer.pk,
        anonymous_id="a" * 150,
        session_external_id="s-1",
        version_id=version.pk,
    )

    # then
    stored = ServedRecommendation.objects.get(pk=served.pk)
    assert stored.product_ids == [3, 1, 2]
    assert stored.item_count == 3
    assert stored.customer == customer
    assert stored.version == version
    assert stored.anonymous_id == "a" * 100
    assert stored.created_at == now


def test_placement_rule_save_creates_then_updates_and_audits(merchant, merchant_manager):
    # given
    tents = CategoryFactory(merchant=merchant)

    # when
    created = placement_rule_save(
        merchant=merchant, placement="home", actor=merchant_manager, max_per_category=2, allowed_category_ids=[tents.pk]
    )
    updated = placement_rule_save(merchant=merchant, placement="home", actor=merchant_manager, impression_discount=0.5)

    # then
    assert created.pk == updated.pk
    rule = PlacementRule.objects.get(pk=created.pk)
    assert (rule.max_per_category, rule.impression_discount) == (2, 0.5)
    assert list(rule.allowed_categories.all()) == [tents]
    assert AuditLogEntry.objects.filter(merchant=merchant, action="placement_rule.saved").count() == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"placement": "sidebar"},
        {"placement": "home", "colour": "red"},
        {"placement": "home", "impression_discount": 1.5},
        {"placement": "home", "default_k": 0},
    ],
)
def test_placement_rule_save_rejects_bad_values(merchant, kwargs):
    # when / then
    with pytest.raises((ValueError, ValidationError)):
        placement_rule_save(merchant=merchant, **kwargs)
    assert not PlacementRule.objects.filter(merchant=merchant).exists()


def test_placement_rule_save_rejects_another_merchants_categories(merchant, other_merchant):
    # given
    theirs = CategoryFactory(merchant=other_merchant)

    # when / then
    with pytest.raises(ValueError, match="unknown categories"):
        placement_rule_save(merchant=merchant, placement="home", repurchasable_category_ids=[theirs.pk])


def test_saving_a_rule_drops_the_cached_rules(merchant):
    # given
    _prime_config(merchant)

    # when
    placement_rule_save(merchant=merchant, placement="cart", max_per_category=1)

    # then
    assert _cached_config(merchant) is None


def test_item_rules_are_created_audited_and_drop_the_cached_rules(merchant, merchant_manager):
    # given
    product = ProductFactory(merchant=merchant)
    _prime_config(merchant)

    # when
    rule = placement_item_rule_create(
        merchant=merchant, product=product, action="pin", position=1, placement="home", actor=merchant_manager
    )

    # then
    assert PlacementItemRule.objects.get(pk=rule.pk).position == 1
    assert _cached_config(merchant) is None
    assert AuditLogEntry.objects.filter(action="placement_item_rule.created", actor=merchant_manager).exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "pin"}, "position"),
        ({"action": "boost"}, "multiplier"),
        ({"action": "block", "starts_at": MOMENT, "ends_at": MOMENT}, "end after"),
    ],
)
def test_item_rules_need_their_values(merchant, kwargs, message):
    # given
    product = ProductFactory(merchant=merchant)

    # when / then
    with pytest.raises(ValueError, match=message):
        placement_item_rule_create(merchant=merchant, product=product, **kwargs)


def test_an_item_rule_on_another_merchants_product_is_refused(merchant, other_merchant):
    # given
    theirs = ProductFactory(merchant=other_merchant)

    # when / then
    with pytest.raises(ValueError, match="another merchant"):
        placement_item_rule_create(merchant=merchant, product=theirs, action="block")


def test_deleting_an_item_rule_audits_and_drops_the_cached_rules(merchant):
    # given
    rule = placement_item_rule_create(merchant=merchant, product=ProductFactory(merchant=merchant), action="block")
    _prime_config(merchant)

    # when
    placement_item_rule_delete(rule=rule)

    # then
    assert not PlacementItemRule.objects.exists()
    assert _cached_config(merchant) is None
    assert AuditLogEntry.objects.filter(action="placement_item_rule.deleted").exists()


def test_a_cache_that_is_down_does_not_stop_a_rule_change(merchant):
    # given
    with mock.patch.object(django_cache, "delete", side_effect=ConnectionError("down")):
        # when
        rule = placement_rule_save(merchant=merchant, placement="email", default_k=4)

    # then
    assert PlacementRule.objects.get(pk=rule.pk).default_k == 4
