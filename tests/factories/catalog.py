from decimal import Decimal

import factory

from catalog.models import Category, Product

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
