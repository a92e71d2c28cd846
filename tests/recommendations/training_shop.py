"""A small shop for training tests: 12 customers, each loyal to one of 3 categories, and a passing gate."""

import random
from datetime import timedelta

from django.utils import timezone

from events.models import Event, Order, OrderLine
from tests.factories.catalog import CategoryFactory, ProductFactory
from tests.factories.events import CustomerFactory, DataQualityReportFactory


def build_training_shop(merchant):
    """A small shop with a passing data-quality report: 12 customers, each loyal to one of 3 categories.

    Each customer buys 7 products of their category over three weeks, one order every three days, and
    views one of the other 3 before each order, so the per-user temporal split holds their last order
    out (an item viewed before the cut would leave the holdout, as the customer has seen it).
    """
    rng = random.Random(7)
    categories = [CategoryFactory(merchant=merchant, name=f"Category {c}", path=f"Category {c}") for c in range(3)]
    products = {c: [ProductFactory(merchant=merchant, category=categories[c]) for _ in range(10)] for c in range(3)}
    start = timezone.now() - timedelta(days=25)
    events, orders, lines = [], [], []
    for number in range(12):
        customer = CustomerFactory(merchant=merchant)
        shuffled = rng.sample(products[number % 3], 10)
        bought, browsed = shuffled[:7], shuffled[7:]
        for day, product in enumerate(bought):
            at = start + timedelta(days=3 * day, hours=number)
            events.append(
                Event(
                    merchant=merchant,
                    message_id=f"view-{number}-{day}",
                    name="Product Viewed",
                    customer=customer,
                    product=browsed[day % 3],
                    timestamp=at,
                    received_at=at,
                )
            )
            order = Order(
                merchant=merchant,
                external_id=f"order-{number}-{day}",
                message_id=f"order-{number}-{day}",
                customer=customer,
                placed_at=at + timedelta(minutes=5),
                subtotal=product.price,
                total=product.price,
            )
            orders.append(order)
            lines.append((order, product))
    Event.objects.bulk_create(events)
    Order.objects.bulk_create(orders)
    OrderLine.objects.bulk_create(
        OrderLine(
            merchant=merchant, order=order, product=product, sku=product.sku, quantity=1, unit_price=product.price
        )
        for order, product in lines
    )
    DataQualityReportFactory(merchant=merchant, passed=True)
    return merchant


def shop_customer_ids(merchant) -> list[int]:
    return list(Order.objects.for_merchant(merchant).values_list("customer_id", flat=True).distinct())
