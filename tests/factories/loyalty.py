import factory
from django.utils import timezone

from loyalty.models import (
    CustomerInsight,
    InsightKind,
    InsightRun,
    LoyaltyAccount,
    LoyaltyProgram,
    Reward,
    RewardKind,
    RunStatus,
    Tier,
)

from .events import CustomerFactory
from .tenancy import MerchantFactory


class LoyaltyProgramFactory(factory.django.DjangoModelFactory):
    """One point per currency unit, points never expire."""

    class Meta:
        model = LoyaltyProgram

    merchant = factory.SubFactory(MerchantFactory)
    name = "Trail Points"


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier

    merchant = factory.SelfAttribute("program.merchant")
    program = factory.SubFactory(LoyaltyProgramFactory)
    name = factory.Sequence(lambda n: f"Tier {n}")
    threshold_points = factory.Sequence(lambda n: 500 * (n + 1))


class RewardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reward

    merchant = factory.SelfAttribute("program.merchant")
    program = factory.SubFactory(LoyaltyProgramFactory)
    name = "$5 off"
    kind = RewardKind.AMOUNT_OFF
    points_cost = 500
    value = 5


class LoyaltyAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LoyaltyAccount

    merchant = factory.SelfAttribute("program.merchant")
    program = factory.SubFactory(LoyaltyProgramFactory)
    customer = factory.SubFactory(CustomerFactory, merchant=factory.SelfAttribute("..merchant"))
    created_at = factory.LazyFunction(timezone.now)


class InsightRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InsightRun

    merchant = factory.SubFactory(MerchantFactory)
    kind = InsightKind.SEGMENTS
    status = RunStatus.SUCCEEDED
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)
    as_of = factory.LazyFunction(timezone.now)
    progress = 1.0


class CustomerInsightFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerInsight

    merchant = factory.SubFactory(MerchantFactory)
    customer = factory.SubFactory(CustomerFactory, merchant=factory.SelfAttribute("..merchant"))
    as_of = factory.LazyFunction(timezone.now)
