from decimal import Decimal

import factory
from django.utils import timezone

from pricing.models import (
    DemandModelRun,
    ElasticityEstimate,
    Guardrail,
    GuardrailScope,
    ModelRunStatus,
    Objective,
    PriceProposal,
    PricingSettings,
)

from .catalog import ProductFactory
from .tenancy import MerchantFactory


class PricingSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PricingSettings

    merchant = factory.SubFactory(MerchantFactory)
    objective = Objective.PROFIT


class GuardrailFactory(factory.django.DjangoModelFactory):
    """Shop-wide by default; pass scope=GuardrailScope.PRODUCT, product=... for a product's own limits."""

    class Meta:
        model = Guardrail

    merchant = factory.SubFactory(MerchantFactory)
    scope = GuardrailScope.MERCHANT


class DemandModelRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DemandModelRun

    merchant = factory.SubFactory(MerchantFactory)
    status = ModelRunStatus.SUCCEEDED
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)
    progress = 1.0


class ElasticityEstimateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ElasticityEstimate

    merchant = factory.SubFactory(MerchantFactory)
    run = factory.SubFactory(DemandModelRunFactory, merchant=factory.SelfAttribute("..merchant"))
    product = factory.SubFactory(ProductFactory, merchant=factory.SelfAttribute("..merchant"))
    elasticity = -1.8
    elasticity_sd = 0.2
    lower = -2.2
    upper = -1.4
    own_elasticity = -1.9
    own_se = 0.3
    pooling_weight = 0.3
    base_units_per_day = 4.0
    reference_price = factory.LazyAttribute(lambda o: o.product.price)
    days_observed = 90
    units_observed = 360.0
    price_points = 4


class PriceProposalFactory(factory.django.DjangoModelFactory):
    """A pending proposal for a 25.00 product (cost 12.00) to go to 26.50 (+6%)."""

    class Meta:
        model = PriceProposal

    merchant = factory.SubFactory(MerchantFactory)
    product = factory.SubFactory(ProductFactory, merchant=factory.SelfAttribute("..merchant"))
    objective = Objective.PROFIT
    current_price = factory.LazyAttribute(lambda o: o.product.price)
    proposed_price = factory.LazyAttribute(lambda o: (o.product.price * Decimal("1.06")).quantize(Decimal("0.01")))
    unit_cost = factory.LazyAttribute(lambda o: o.product.cost)
    elasticity = -1.8
    elasticity_lower = -2.2
    elasticity_upper = -1.4
    units_change = -2.0
    units_change_lower = -3.0
    units_change_upper = -1.0
    revenue_change = 5.0
    revenue_change_lower = -2.0
    revenue_change_upper = 12.0
    profit_change = 9.0
    profit_change_lower = 3.0
    profit_change_upper = 15.0
    confidence = 0.9
    reasons = factory.LazyFunction(lambda: ["Demand is inelastic enough that a higher price earns more margin."])
    created_at = factory.LazyFunction(timezone.now)
