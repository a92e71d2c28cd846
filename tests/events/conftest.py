import itertools

import pytest
from django.utils import timezone

from tests.factories.catalog import ProductFactory

_message_ids = itertools.count()


@pytest.fixture
def products(merchant):
    return [ProductFactory(merchant=merchant, sku=f"SKU-{n}", external_id=f"pid-{n}") for n in range(1, 4)]


def make_event(name="Product Viewed", *, properties=None, **fields):
    """A valid Segment track call; override any field."""
    event = {
        "type": "track",
        "event": name,
        "messageId": f"msg-{next(_message_ids)}",
        "anonymousId": "anon-1",
        "sessionId": "sess-1",
        "timestamp": (timezone.now() - timezone.timedelta(minutes=30)).isoformat(),
        "properties": {"product_id": "SKU-1", "price": 25} if properties is None else properties,
        "context": {"device": {"type": "desktop"}, "campaign": {"source": "google", "medium": "cpc", "name": "fall"}},
    }
    event.update(fields)
    return {key: value for key, value in event.items() if value is not None}


def make_order(order_id="order-1", *, lines=(("SKU-1", 25, 2),), **fields):
    return make_event(
        "Order Completed",
        properties={
            "order_id": order_id,
            "products": [{"sku": sku, "price": price, "quantity": quantity} for sku, price, quantity in lines],
            "shipping": 5,
            "tax": 4,
        },
        **fields,
    )
