"""A task through a real Celery worker: Redis as broker and result backend, PostgreSQL as the database.

Runs only under `bin/with-services` (REDIS_URL and DATABASE_URL set); the embedded default runs tasks
eagerly and has no worker to talk to.
"""

import os
from datetime import timedelta

import pytest
from celery.result import EagerResult
from django.utils import timezone

from events.models import DataQualityReport
from events.services import event_batch_ingest
from events.tasks import data_quality_report_create_task
from revopt.celery import app
from tests.factories.catalog import ProductFactory

pytestmark = [
    pytest.mark.celery_worker,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (run under bin/with-services)"),
]


def _track(name: str, message_id: str, properties: dict, minutes_ago: int) -> dict:
    return {
        "type": "track",
        "event": name,
        "messageId": message_id,
        "anonymousId": "anon-worker",
        "userId": "user-worker",
        "sessionId": "session-worker",
        "timestamp": (timezone.now() - timedelta(minutes=minutes_ago)).isoformat(),
        "properties": properties,
        "context": {"device": {"type": "mobile"}},
    }


# transaction=True: the worker is another process and only sees committed rows.
@pytest.mark.django_db(transaction=True)
def test_data_quality_report_task_runs_in_a_real_worker(celery_worker_queue, merchant, monkeypatch):
    # given a merchant with a few events and an order, committed to the test database
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    ProductFactory(merchant=merchant, sku="TENT-1", external_id="tent-1")
    batch = [
        _track("Product Viewed", "m-1", {"product_id": "tent-1", "price": 25, "quantity": 1}, 40),
        _track("Product Added", "m-2", {"product_id": "tent-1", "price": 25, "quantity": 1}, 35),
        _track("Checkout Started", "m-3", {"value": 25, "currency": "USD"}, 30),
        _track(
            "Order Completed",
            "m-4",
            {
                "order_id": "o-1",
                "total": 29,
                "shipping": 4,
                "products": [{"sku": "TENT-1", "price": 25, "quantity": 1}],
            },
            25,
        ),
    ]
    assert event_batch_ingest(merchant=merchant, events=batch).accepted == 4

    # when the task goes through Redis to the worker process
    result = data_quality_report_create_task.delay(merchant.id)
    report_id = result.get(timeout=60)

    # then the worker, not this process, ran it and wrote the report from the committed events
    assert not isinstance(result, EagerResult)
    assert result.successful()
    report = DataQualityReport.objects.for_merchant(merchant).get()
    assert report.pk == report_id
    checks = {check["name"]: check for check in report.checks}
    assert checks["has_events"]["value"] == 4
