"""Due recovery messages taken by concurrent pollers, on PostgreSQL (SQLite serialises writers: no race)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from loyalty.models import RecoveryMessage, RecoveryStatus
from loyalty.services.recovery import recovery_messages_hand_over
from tests.concurrency import run_at_once
from tests.factories.events import CustomerFactory
from tests.factories.funnel import RecoveryMessageFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_four_concurrent_pollers_never_get_the_same_message(merchant):
    # given 12 due messages
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers, so there is no race to test")
    abandoned_at = timezone.now() - timedelta(hours=2)
    for _ in range(12):
        customer = CustomerFactory(merchant=merchant, email="ann@example.com", marketing_consent=True)
        RecoveryMessageFactory(merchant=merchant, customer=customer, abandoned_at=abandoned_at)
    # when
    taken, errors = run_at_once(
        4,
        lambda _: [body["id"] for body in recovery_messages_hand_over(merchant=merchant, limit=5)],
        timeout=60,
    )

    # then every message went to exactly one poller
    ids = [message_id for batch in taken for message_id in batch]
    assert errors == []
    assert len(ids) == len(set(ids)) == 12
    assert RecoveryMessage.objects.filter(merchant=merchant, status=RecoveryStatus.SENT).count() == 12
