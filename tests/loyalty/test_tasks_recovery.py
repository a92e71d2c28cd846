import socket
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from loyalty.models import RecoveryMessage, RecoveryStatus
from loyalty.tasks import abandoned_carts_enqueue_all, recovery_dispatch_all
from tests.factories.catalog import ProductFactory
from tests.factories.events import CustomerFactory, EventFactory, SessionFactory
from tests.factories.funnel import RecoveryMessageFactory, RecoverySettingsFactory

pytestmark = pytest.mark.django_db


def _abandoned_cart(merchant) -> None:
    customer = CustomerFactory(merchant=merchant, email="ann@example.com", marketing_consent=True)
    session = SessionFactory(merchant=merchant, customer=customer)
    EventFactory(
        merchant=merchant, customer=customer, session=session, name="Product Added",
        product=ProductFactory(merchant=merchant), quantity=1, timestamp=timezone.now() - timedelta(minutes=45),
    )  # fmt: skip


def test_the_enqueue_beat_schedules_carts_of_shops_with_recovery_on(merchant, other_merchant):
    # given a cart in each shop; the other shop switched recovery off
    _abandoned_cart(merchant)
    _abandoned_cart(other_merchant)
    RecoverySettingsFactory(merchant=other_merchant, enabled=False)

    # when
    shops = abandoned_carts_enqueue_all()

    # then
    assert shops == 1
    assert RecoveryMessage.objects.filter(merchant=merchant).count() == 2
    assert not RecoveryMessage.objects.filter(merchant=other_merchant).exists()


def test_the_dispatch_beat_posts_only_for_shops_with_a_webhook_and_due_messages(merchant, other_merchant):
    # given a due message in each shop; only this shop has a webhook
    RecoverySettingsFactory(merchant=merchant, webhook_url="https://hooks.example.com/r", webhook_secret="s")
    customer = CustomerFactory(merchant=merchant, email="ann@example.com", marketing_consent=True)
    due = timezone.now() - timedelta(hours=2)
    message = RecoveryMessageFactory(merchant=merchant, customer=customer, abandoned_at=due, scheduled_at=due)
    RecoveryMessageFactory(merchant=other_merchant, abandoned_at=due, scheduled_at=due)
    response = mock.MagicMock(status=204)
    response.__enter__.return_value = response

    # when
    # no real DNS: the webhook's name resolves to a public address
    public = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", 443))]
    with (
        mock.patch("loyalty.webhook_target.socket.getaddrinfo", return_value=public),
        mock.patch("loyalty.services.recovery._OPENER.open", return_value=response) as urlopen,
    ):
        shops = recovery_dispatch_all()

    # then
    assert shops == 1
    assert urlopen.call_count == 1
    assert urlopen.call_args.args[0].full_url == "https://hooks.example.com/r"
    assert urlopen.call_args.args[0].addresses == ("93.184.216.34",)
    message.refresh_from_db()
    assert message.status == RecoveryStatus.SENT
