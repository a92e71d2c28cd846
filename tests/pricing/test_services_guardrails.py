from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from pricing.guardrails import GuardrailLimits
from pricing.models import Guardrail, GuardrailScope
from pricing.selectors.guardrails import pricing_settings_for
from pricing.services.guardrails import guardrail_delete, guardrail_save, pricing_settings_save
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.mark.parametrize(
    ("scope", "limits", "field"),
    [
        ("merchant", GuardrailLimits(price_floor=D("30"), price_ceiling=D("20")), "price_ceiling"),
        ("merchant", GuardrailLimits(price_floor=D("0")), "price_floor"),
        ("merchant", GuardrailLimits(min_margin=D("1")), "min_margin"),
        ("merchant", GuardrailLimits(min_margin=D("-0.1")), "min_margin"),
        ("merchant", GuardrailLimits(max_change_per_step=D("1.5")), "max_change_per_step"),
        ("merchant", GuardrailLimits(max_change_per_week=D("1")), "max_change_per_week"),
        (
            "merchant",
            GuardrailLimits(competitor_band_low=D("1.2"), competitor_band_high=D("1.1")),
            "competitor_band_high",
        ),
        ("merchant", GuardrailLimits(competitor_band_low=D("0")), "competitor_band_low"),
        ("merchant", GuardrailLimits(map_price=D("10")), "map_price"),
        ("category", GuardrailLimits(map_price=D("10")), "map_price"),
        ("product", GuardrailLimits(map_price=D("50"), price_ceiling=D("40")), "map_price"),
        ("merchant", GuardrailLimits(period_days=7), "period_days"),
        ("merchant", GuardrailLimits(max_changes_per_period=2, period_days=0), "period_days"),
    ],
)
def test_guardrail_save_refuses_meaningless_limits_naming_the_field(merchant, merchant_manager, scope, limits, field):
    # given
    category = CategoryFactory(merchant=merchant) if scope == "category" else None
    product = ProductFactory(merchant=merchant) if scope == "product" else None

    # when
    with pytest.raises(ValidationError) as refused:
        guardrail_save(
            merchant=merchant, actor=merchant_manager, scope=scope, category=category, product=product, limits=limits
        )

    # then
    assert field in refused.value.message_dict
    assert not Guardrail.objects.exists()


def test_guardrail_save_refuses_another_merchants_product_and_a_scope_without_its_target(
    merchant, other_merchant, merchant_manager
):
    # given
    theirs = ProductFactory(merchant=other_merchant)

    # when / then
    with pytest.raises(ValidationError) as foreign:
        guardrail_save(
            merchant=merchant, actor=merchant_manager, scope="product", product=theirs, limits=GuardrailLimits()
        )
    with pytest.raises(ValidationError) as missing:
        guardrail_save(merchant=merchant, actor=merchant_manager, scope="category", limits=GuardrailLimits())
    assert "product" in foreign.value.message_dict
    assert "category" in missing.value.message_dict


def test_guardrail_save_creates_then_updates_the_targets_one_row_and_audits_each_change(merchant, merchant_manager):
    # given
    product = ProductFactory(merchant=merchant)

    # when
    first = guardrail_save(
        merchant=merchant,
        actor=merchant_manager,
        scope=GuardrailScope.PRODUCT,
        product=product,
        limits=GuardrailLimits(price_floor=D("20"), map_price=D("21")),
    )
    second = guardrail_save(
        merchant=merchant,
        actor=merchant_manager,
        scope=GuardrailScope.PRODUCT,
        product=product,
        limits=GuardrailLimits(price_floor=D("22"), map_price=D("21")),
        note="brand asked",
    )

    # then
    assert first.pk == second.pk
    assert Guardrail.objects.for_merchant(merchant).count() == 1
    second.refresh_from_db()
    assert second.price_floor == D("22.00") and second.note == "brand asked"
    entries = list(AuditLogEntry.objects.for_merchant(merchant).filter(action="guardrail.save").order_by("pk"))
    assert len(entries) == 2
    assert entries[0].detail["created"] is True
    assert entries[1].actor == merchant_manager
    assert entries[1].detail["changed"] == {"price_floor": ["20.00", "22.00"]}


def test_guardrail_delete_is_audited_with_the_limits_it_removed(merchant, merchant_manager):
    # given
    row = guardrail_save(
        merchant=merchant, actor=merchant_manager, scope="merchant", limits=GuardrailLimits(min_margin=D("0.2"))
    )

    # when
    guardrail_delete(guardrail=row, actor=merchant_manager)

    # then
    assert not Guardrail.objects.exists()
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="guardrail.delete")
    assert entry.detail["limits"]["min_margin"] == "0.2000"


def test_pricing_settings_save_validates_and_audits_the_auto_approve_band(merchant, merchant_manager):
    # given
    settings = pricing_settings_for(merchant=merchant)

    # when
    settings.auto_approve_max_change = D("0.03")
    pricing_settings_save(settings=settings, actor=merchant_manager)
    settings.auto_approve_max_change = D("0.9")
    with pytest.raises(ValidationError) as refused:
        pricing_settings_save(settings=settings, actor=merchant_manager)

    # then
    assert "auto_approve_max_change" in refused.value.message_dict
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="pricing_settings.save")
    assert entry.detail["changed"] == {"auto_approve_max_change": ["0.0000", "0.0300"]}
