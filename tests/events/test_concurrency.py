"""Concurrent batches on a real PostgreSQL: the unique indexes, not luck, keep data single."""

import threading

import pytest
from django.db import connection, connections

from events.models import Customer, Event, Order, Session
from events.services import event_batch_ingest
from tests.events.conftest import make_event, make_order
from tests.factories.catalog import ProductFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers, so there is no race to test")


def _send_concurrently(merchant, batches):
    barrier = threading.Barrier(len(batches))
    results, errors = [None] * len(batches), []

    def send(position, batch):
        try:
            barrier.wait()
            results[position] = event_batch_ingest(merchant=merchant, events=batch)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(i, batch)) for i, batch in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_the_same_batch_sent_twice_at_once_is_stored_once(merchant):
    # given
    ProductFactory(merchant=merchant, sku="SKU-1")
    batch = [make_event(anonymousId=f"visitor-{n}", sessionId=f"s-{n}") for n in range(200)]
    batch.append(make_order("race-1", anonymousId="visitor-0", sessionId="s-0", userId="buyer"))

    # when
    first, second = _send_concurrently(merchant, [batch, batch])

    # then: every event accepted exactly once across the two answers
    assert first.accepted + second.accepted == len(batch)
    assert first.duplicate + second.duplicate == len(batch)
    assert Event.objects.for_merchant(merchant).count() == len(batch)
    assert Order.objects.for_merchant(merchant).count() == 1
    assert Session.objects.for_merchant(merchant).count() == 200
    assert Customer.objects.for_merchant(merchant).filter(external_id="buyer").count() == 1


def test_two_batches_creating_the_same_customer_at_once_make_one_customer(merchant):
    # given: different events, same new shopper and session
    ProductFactory(merchant=merchant, sku="SKU-1")
    batches = [[make_event(userId="same-shopper", anonymousId="dev", sessionId="s")] for _ in range(4)]

    # when
    results = _send_concurrently(merchant, batches)

    # then
    assert sum(result.accepted for result in results) == 4
    assert Customer.objects.for_merchant(merchant).count() == 1
    assert Session.objects.for_merchant(merchant).count() == 1
    assert Event.objects.for_merchant(merchant).count() == 4
