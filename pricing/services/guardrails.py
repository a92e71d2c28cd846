"""Writes of guardrail rows: validated, one row per target, every save and delete in the audit log."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.models import Category, Product
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

from ..guardrails import GuardrailLimits
from ..models import Guardrail, GuardrailScope, PricingSettings

SHARE_FIELDS = ("min_margin", "max_change_per_step", "max_change_per_week")
PRICE_FIELDS = ("price_floor", "price_ceiling", "map_price")


def _error(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def guardrail_limits_validate(*, scope: str, limits: GuardrailLimits) -> None:
    """Raise ValidationError naming the first field that makes the limits meaningless or contradictory."""
    for name in PRICE_FIELDS:
        value = getattr(limits, name)
        if value is not None and value <= 0:
            raise _error(name, "Must be a price above zero.")
    for name in SHARE_FIELDS:
        value = getattr(limits, name)
        if value is not None and not Decimal("0") <= value < Decimal("1"):
            raise _error(name, "Must be a share from 0 up to (not including) 1: 0.10 is 10%.")
    floor, ceiling = limits.price_floor, limits.price_ceiling
    if floor is not None and ceiling is not None and floor > ceiling:
        raise _error("price_ceiling", "The ceiling must be at least the floor.")
    for name in ("competitor_band_low", "competitor_band_high"):
        value = getattr(limits, name)
        if value is not None and value <= 0:
            raise _error(name, "Must be a ratio above zero: 0.90 is 90% of the lowest competitor price.")
    low, high = limits.competitor_band_low, limits.competitor_band_high
    if low is not None and high is not None and low > high:
        raise _error("competitor_band_high", "The top of the band must be at least its bottom.")
    if limits.map_price is not None and scope != GuardrailScope.PRODUCT:
        raise _error("map_price", "A minimum advertised price belongs to one product: set it on a product's row.")
    if limits.map_price is not None and limits.price_ceiling is not None and limits.map_price > limits.price_ceiling:
        raise _error("map_price", "The minimum advertised price is above the ceiling: no price could pass.")
    if limits.period_days is not None:
        if limits.period_days < 1:
            raise _error("period_days", "A period is at least one day.")
        if limits.max_changes_per_period is None:
            raise _error("period_days", "A period needs a maximum number of changes to count against.")
    if limits.max_changes_per_period is not None and limits.max_changes_per_period < 0:
        raise _error("max_changes_per_period", "Must be zero or more.")


def _check_target(*, merchant: Merchant, scope: str, category: Category | None, product: Product | None) -> None:
    if scope not in GuardrailScope.values:
        raise _error("scope", f"Unknown scope {scope!r}.")
    if scope == GuardrailScope.CATEGORY and category is None:
        raise _error("category", "A category's guardrails need the category.")
    if scope == GuardrailScope.PRODUCT and product is None:
        raise _error("product", "A product's guardrails need the product.")
    if scope != GuardrailScope.CATEGORY and category is not None:
        raise _error("category", "Only category guardrails name a category.")
    if scope != GuardrailScope.PRODUCT and product is not None:
        raise _error("product", "Only product guardrails name a product.")
    if category is not None and category.merchant_id != merchant.pk:
        raise _error("category", "No such category in this shop.")
    if product is not None and product.merchant_id != merchant.pk:
        raise _error("product", "No such product in this shop.")


def _shown(value: object) -> str | None:
    return None if value is None else str(value)


def guardrail_validate(
    *,
    merchant: Merchant,
    scope: str,
    limits: GuardrailLimits,
    category: Category | None = None,
    product: Product | None = None,
    guardrail: Guardrail | None = None,
    must_be_new: bool = False,
) -> None:
    """Everything `guardrail_save` checks, for forms that show the errors beside their fields. `must_be_new`:
    refuse a target that already has a row (a form adding one), where `guardrail_save` would update it."""
    _check_target(merchant=merchant, scope=scope, category=category, product=product)
    guardrail_limits_validate(scope=scope, limits=limits)
    editing = guardrail is not None and guardrail.pk is not None
    if editing or must_be_new:
        existing = Guardrail.objects.for_merchant(merchant).filter(scope=scope, category=category, product=product)
        if editing:
            existing = existing.exclude(pk=guardrail.pk)
        if existing.exists():
            target = {"category": "category", "product": "product"}.get(scope, "scope")
            raise _error(target, "This target already has its guardrails: edit that row instead.")


@transaction.atomic
def guardrail_save(
    *,
    merchant: Merchant,
    actor: AbstractBaseUser | None,
    scope: str,
    limits: GuardrailLimits,
    category: Category | None = None,
    product: Product | None = None,
    note: str = "",
    guardrail: Guardrail | None = None,
) -> Guardrail:
    """Create or update the guardrail row of one target (the shop, a category or a product).

    Without `guardrail`, the target's existing row is updated (there is at most one per target). Proposals
    already made are not touched: every approval re-checks the limits in force at decision time."""
    guardrail_validate(
        merchant=merchant, scope=scope, limits=limits, category=category, product=product, guardrail=guardrail
    )
    if guardrail is not None and guardrail.pk is not None:
        row = Guardrail.objects.for_merchant(merchant).select_for_update().get(pk=guardrail.pk)
    else:
        row = (
            Guardrail.objects.for_merchant(merchant)
            .select_for_update()
            .filter(scope=scope, category=category, product=product)
            .first()
        ) or Guardrail(merchant=merchant)
    before = {name: _shown(getattr(row, name)) for name in asdict(limits)} if row.pk else {}
    row.scope, row.category, row.product, row.note = scope, category, product, note
    for name, value in asdict(limits).items():
        setattr(row, name, value)
    created = row.pk is None
    row.save()
    row.refresh_from_db()  # the stored, quantized values
    after = {name: _shown(getattr(row, name)) for name in asdict(limits)}
    changed = {name: [before.get(name), value] for name, value in after.items() if before.get(name) != value}
    audit_log_write(
        merchant=merchant,
        actor=actor,
        action="guardrail.save",
        target=row,
        detail={"scope": scope, "target": str(row), "created": created, "changed": changed, "note": note},
    )
    return row


@transaction.atomic
def guardrail_delete(*, guardrail: Guardrail, actor: AbstractBaseUser | None) -> None:
    """Remove a row: its target falls back to the wider scope's limits."""
    detail = {
        "scope": guardrail.scope,
        "target": str(guardrail),
        "limits": {name: _shown(getattr(guardrail, name)) for name in asdict(GuardrailLimits())},
    }
    audit_log_write(
        merchant=guardrail.merchant, actor=actor, action="guardrail.delete", target=guardrail, detail=detail
    )
    guardrail.delete()


SETTINGS_FIELDS = (
    "objective",
    "auto_approve_max_change",
    "explore",
    "horizon_days",
    "dead_stock_cover_days",
    "history_days",
)


@transaction.atomic
def pricing_settings_save(
    *, settings: PricingSettings, actor: AbstractBaseUser | None, changed_fields: list[str] | None = None
) -> PricingSettings:
    """Save the merchant's pricing settings (the auto-approve band among them) with an audit row."""
    before = (
        PricingSettings.objects.for_merchant(settings.merchant_id)
        .filter(pk=settings.pk)
        .values(*SETTINGS_FIELDS)
        .first()
        if settings.pk
        else None
    ) or {}
    settings.full_clean(exclude=["merchant"])
    settings.save()
    settings.refresh_from_db()  # the stored, quantized values
    changed = {
        name: [_shown(before.get(name)), _shown(getattr(settings, name))]
        for name in SETTINGS_FIELDS
        if _shown(before.get(name)) != _shown(getattr(settings, name))
    }
    audit_log_write(
        merchant=settings.merchant,
        actor=actor,
        action="pricing_settings.save",
        target=settings,
        detail={"changed": changed, "fields": changed_fields or []},
    )
    return settings
