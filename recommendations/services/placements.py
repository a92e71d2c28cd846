"""Writes of the serving side: served lists, and the placement rules merchandisers edit."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Field

from catalog.models import Category, Product
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

from .. import cache
from ..models import ItemRuleAction, Placement, PlacementItemRule, PlacementRule, ServedRecommendation

logger = logging.getLogger(__name__)

PLACEMENT_RULE_FIELDS = (
    "exclude_purchased",
    "max_per_category",
    "mmr_lambda",
    "impression_discount",
    "impression_window_days",
    "default_k",
)


def served_recommendation_record(
    *,
    merchant: Merchant,
    placement: str,
    product_ids: Sequence[int],
    source: str,
    created_at: datetime,
    customer_id: int | None = None,
    anonymous_id: str = "",
    session_external_id: str = "",
    version_id: int | None = None,
) -> ServedRecommendation:
    """Store one answered list; its id is the recommendation_id events bring back.

    One INSERT on the request path: no transaction block and no audit row (a served list is a
    record of its own, written hundreds of times a second).
    """
    served = ServedRecommendation(
        id=uuid.uuid4(),
        merchant=merchant,
        placement=placement,
        customer_id=customer_id,
        anonymous_id=(anonymous_id or "")[:100],
        session_external_id=(session_external_id or "")[:100],
        product_ids=list(product_ids),
        item_count=len(product_ids),
        version_id=version_id,
        source=source,
        created_at=created_at,
    )
    # A raw INSERT of the fields' own database values: the ORM's insert compiler cost more than the
    # statement itself here.
    with connection.cursor() as cursor:
        cursor.execute(
            _served_insert_sql(),
            [field.get_db_prep_save(getattr(served, field.attname), connection) for field in _served_fields()],
        )
    served._state.adding = False
    served._state.db = connection.alias
    return served


def _served_fields() -> list[Field]:
    return [field for field in ServedRecommendation._meta.concrete_fields]


@functools.cache
def _served_insert_sql() -> str:
    quote = connection.ops.quote_name
    fields = _served_fields()
    return (
        f"INSERT INTO {quote(ServedRecommendation._meta.db_table)} "
        f"({', '.join(quote(field.column) for field in fields)}) VALUES ({', '.join(['%s'] * len(fields))})"
    )


def placement_rules_cache_invalidate(*, merchant: Merchant) -> None:
    """Drop the cached rules so the next request reads them again; call after any rule change.

    The cached copy expires within a minute anyway, so a cache that is down is not an error here.
    """
    try:
        cache.config_invalidate(merchant_id=merchant.pk)
    except cache.CacheUnavailable:
        logger.warning("could not invalidate the cached placement rules of merchant %s", merchant.pk)


def _rules_changed(merchant: Merchant) -> None:
    # Now, and again after commit: a request between the two may have cached the old rules.
    placement_rules_cache_invalidate(merchant=merchant)
    transaction.on_commit(lambda: placement_rules_cache_invalidate(merchant=merchant))


def _categories(merchant: Merchant, category_ids: Iterable[int]) -> list[Category]:
    wanted = set(category_ids)
    found = list(Category.objects.for_merchant(merchant).filter(pk__in=wanted))
    if len(found) != len(wanted):
        raise ValueError(f"unknown categories: {sorted(wanted - {category.pk for category in found})}")
    return found


@transaction.atomic
def placement_rule_save(
    *,
    merchant: Merchant,
    placement: str,
    actor: AbstractBaseUser | None = None,
    repurchasable_category_ids: Iterable[int] | None = None,
    allowed_category_ids: Iterable[int] | None = None,
    **fields: Any,
) -> PlacementRule:
    """Create or update a placement's rules; fields not passed keep their value."""
    if placement not in Placement.values:
        raise ValueError(f"unknown placement {placement!r}")
    unknown = set(fields) - set(PLACEMENT_RULE_FIELDS)
    if unknown:
        raise ValueError(f"unknown placement rule fields: {sorted(unknown)}")
    rule, created = (
        PlacementRule.objects.for_merchant(merchant)
        .select_for_update()
        .get_or_create(merchant=merchant, placement=placement, defaults=fields)
    )
    if not created and fields:
        for name, value in fields.items():
            setattr(rule, name, value)
    rule.full_clean(exclude=["merchant"])
    rule.save()
    if repurchasable_category_ids is not None:
        rule.repurchasable_categories.set(_categories(merchant, repurchasable_category_ids))
    if allowed_category_ids is not None:
        rule.allowed_categories.set(_categories(merchant, allowed_category_ids))
    audit_log_write(
        merchant=merchant,
        actor=actor,
        action="placement_rule.saved",
        target=rule,
        detail={
            "placement": placement,
            **{name: fields[name] for name in fields},
            **({"repurchasable": sorted(repurchasable_category_ids)} if repurchasable_category_ids is not None else {}),
            **({"allowed": sorted(allowed_category_ids)} if allowed_category_ids is not None else {}),
        },
    )
    _rules_changed(merchant)
    return rule


@transaction.atomic
def placement_item_rule_create(
    *,
    merchant: Merchant,
    product: Product,
    action: str,
    placement: str = "",
    position: int | None = None,
    boost: float | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    actor: AbstractBaseUser | None = None,
) -> PlacementItemRule:
    if product.merchant_id != merchant.pk:
        raise ValueError("the product belongs to another merchant")
    if action == ItemRuleAction.PIN and not position:
        raise ValueError("a pin needs a position")
    if action == ItemRuleAction.BOOST and boost is None:
        raise ValueError("a boost needs a multiplier")
    if starts_at and ends_at and ends_at <= starts_at:
        raise ValueError("the rule must end after it starts")
    rule = PlacementItemRule(
        merchant=merchant,
        product=product,
        action=action,
        placement=placement,
        position=position,
        boost=boost,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    rule.full_clean(exclude=["merchant", "product"])
    rule.save()
    audit_log_write(
        merchant=merchant,
        actor=actor,
        action="placement_item_rule.created",
        target=rule,
        detail={"product": product.sku, "action": action, "placement": placement, "position": position, "boost": boost},
    )
    _rules_changed(merchant)
    return rule


@transaction.atomic
def placement_item_rule_delete(*, rule: PlacementItemRule, actor: AbstractBaseUser | None = None) -> None:
    merchant = rule.merchant
    audit_log_write(
        merchant=merchant,
        actor=actor,
        action="placement_item_rule.deleted",
        target=rule,
        detail={"product_id": rule.product_id, "action": rule.action, "placement": rule.placement},
    )
    rule.delete()
    _rules_changed(merchant)
