from decimal import Decimal

import factory
from django.utils import timezone

from catalog.models import CatalogImport, Category, CompetitorPriceObservation, Product

from .tenancy import MerchantFactory


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    merchant = factory.SubFactory(MerchantFactory)
    name = factory.Sequence(lambda n: f"Category {n}")
    path = factory.LazyAttribute(lambda o: o.name)


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    merchant = factory.SubFactory(MerchantFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    title = factory.Sequence(lambda n: f"Product {n}")
    brand = "Acme"
    category = factory.SubFactory(CategoryFactory, merchant=factory.SelfAttribute("..merchant"))
    price = Decimal("25.00")
    cost = Decimal("12.00")
    inventory = 50


class CompetitorPriceObservationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CompetitorPriceObservation

    merchant = factory.SubFactory(MerchantFactory)
    product = factory.SubFactory(ProductFactory, merchant=factory.SelfAttribute("..merchant"))
    competitor = "Rival Outfitters"
    price = Decimal("23.50")
    observed_at = factory.LazyFunction(timezone.now)


class CatalogImportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CatalogImport

    merchant = factory.SubFactory(MerchantFactory)
    filename = factory.Sequence(lambda n: f"products-{n}.csv")
    rows_total = 3
    products_created = 2
    rows_failed = 1
    errors = factory.LazyFunction(
        lambda: [{"row": 4, "sku": "BAD-1", "field": "Variant Price", "reason": "'abc' is not a number"}]
    )
