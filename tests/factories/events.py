from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from events.models import Customer, DataQualityReport, Event, Order, OrderLine, Session

from .tenancy import MerchantFactory


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    merchant = factory.SubFactory(MerchantFactory)
    external_id = factory.Sequence(lambda n: f"user-{n}")
    created_at = factory.LazyFunction(timezone.now)


class SessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Session

    merchant = factory.SubFactory(MerchantFactory)
    external_id = factory.Sequence(lambda n: f"session-{n}")
    customer = factory.SubFactory(CustomerFactory, merchant=factory.SelfAttribute("..merchant"))
    started_at = factory.LazyFunction(timezone.now)


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    merchant = factory.SubFactory(MerchantFactory)
    message_id = factory.Sequence(lambda n: f"message-{n}")
    name = "Product Viewed"
    customer = factory.SubFactory(CustomerFactory, merchant=factory.SelfAttribute("..merchant"))
    session = None
    product = None
    timestamp = factory.LazyFunction(timezone.now)
    received_at = factory.LazyAttribute(lambda o: o.timestamp)


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    merchant = factory.SubFactory(MerchantFactory)
    external_id = factory.Sequence(lambda n: f"order-{n}")
    message_id = factory.Sequence(lambda n: f"order-message-{n}")
    customer = factory.SubFactory(CustomerFactory, merchant=factory.SelfAttribute("..merchant"))
    session = None
    placed_at = factory.LazyFunction(timezone.now)
    subtotal = Decimal("80.00")
    total = factory.LazyAttribute(lambda o: o.subtotal)


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    merchant = factory.SelfAttribute("order.merchant")
    product = None
    sku = factory.LazyAttribute(lambda o: o.product.sku if o.product else "SKU-UNKNOWN")
    quantity = 1
    unit_price = factory.LazyAttribute(lambda o: o.product.price if o.product else Decimal("20.00"))


class DataQualityReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DataQualityReport

    merchant = factory.SubFactory(MerchantFactory)
    window_start = factory.LazyFunction(lambda: timezone.now() - timedelta(days=30))
    window_end = factory.LazyFunction(timezone.now)
    passed = True
    checks = factory.LazyFunction(list)
