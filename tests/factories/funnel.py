"""Factories of the funnel rows: the abandonment model (events), offer decisions and recovery messages (loyalty)."""

from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from events.models import AbandonmentModel, ModelRunStatus
from loyalty.models import (
    DecisionReason,
    IncentiveKind,
    OfferDecision,
    OfferSettings,
    RecoveryMessage,
    RecoverySettings,
    RecoveryStatus,
)

from .events import CustomerFactory
from .tenancy import MerchantFactory


class AbandonmentModelFactory(factory.django.DjangoModelFactory):
    """A succeeded training without an artifact (for screens); tests that score train a real one."""

    class Meta:
        model = AbandonmentModel

    merchant = factory.SubFactory(MerchantFactory)
    status = ModelRunStatus.SUCCEEDED
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)
    progress = 1.0


class OfferSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OfferSettings
        django_get_or_create = ("merchant",)

    merchant = factory.SubFactory(MerchantFactory)


class OfferDecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OfferDecision

    merchant = factory.SubFactory(MerchantFactory)
    customer = factory.SubFactory(CustomerFactory, merchant=factory.SelfAttribute("..merchant"))
    cart_id = factory.Sequence(lambda n: f"cart-{n}")
    decided_at = factory.LazyFunction(timezone.now)
    kind = IncentiveKind.PERCENT_10
    value = 10.0
    code = factory.Sequence(lambda n: f"RVO-TEST{n:05d}")
    reason = DecisionReason.BEST_EXPECTED_MARGIN
    cart_value = Decimal("80.00")
    cart_margin = Decimal("28.00")
    cost = Decimal("8.00")
    expires_at = factory.LazyAttribute(lambda o: o.decided_at + timedelta(hours=24))


class RecoverySettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RecoverySettings
        django_get_or_create = ("merchant",)

    merchant = factory.SubFactory(MerchantFactory)
    delays_minutes = factory.LazyFunction(lambda: [60, 1440])


class RecoveryMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RecoveryMessage

    merchant = factory.SubFactory(MerchantFactory)
    customer = factory.SubFactory(CustomerFactory, merchant=factory.SelfAttribute("..merchant"))
    cart_id = factory.Sequence(lambda n: f"cart-{n}")
    step = 1
    abandoned_at = factory.LazyFunction(timezone.now)
    scheduled_at = factory.LazyAttribute(lambda o: o.abandoned_at + timedelta(hours=1))
    status = RecoveryStatus.PENDING
    cart_value = Decimal("80.00")
    created_at = factory.LazyAttribute(lambda o: o.abandoned_at)
