from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from freezegun import freeze_time

from loyalty.models import EntryKind, PointsEntry
from loyalty.services.points import points_earn_for_order
from loyalty.tasks import points_expire_all, points_for_orders_task
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.loyalty import LoyaltyProgramFactory, TierFactory

pytestmark = pytest.mark.django_db


def test_the_daily_task_expires_due_points_and_drops_tiers_of_shops_running_a_program(merchant, other_merchant):
    # given 300 points earned 400 days ago that expired after 365 days, in a Silver-from-100 program
    program = LoyaltyProgramFactory(merchant=merchant, expiry_days=365)
    TierFactory(program=program, name="Silver", threshold_points=100)
    LoyaltyProgramFactory(merchant=other_merchant, is_active=False)
    customer = CustomerFactory(merchant=merchant)
    long_ago = timezone.now() - timedelta(days=400)
    order = OrderFactory(merchant=merchant, customer=customer, subtotal=Decimal("300"), placed_at=long_ago)
    with freeze_time(long_ago):
        entry = points_earn_for_order(order=order)
    entry.account.refresh_from_db()
    assert entry.account.tier is not None

    # when
    shops = points_expire_all()

    # then
    assert shops == 1
    assert PointsEntry.objects.get(merchant=merchant, kind=EntryKind.EXPIRE).points == -300
    entry.account.refresh_from_db()
    assert entry.account.tier is None


def test_the_orders_task_earns_for_placed_orders_and_claws_back_reversed_ones(merchant):
    # given
    LoyaltyProgramFactory(merchant=merchant)
    customer = CustomerFactory(merchant=merchant)
    kept = OrderFactory(merchant=merchant, customer=customer, subtotal=Decimal("40"))
    refunded = OrderFactory(merchant=merchant, customer=customer, subtotal=Decimal("60"))
    points_for_orders_task(merchant.pk, [kept.pk, refunded.pk], [])
    refunded.status = "refunded"
    refunded.save()

    # when
    result = points_for_orders_task(merchant.pk, [], [refunded.external_id])

    # then
    assert result == {"earned": 0, "clawed_back": 60}
    assert sum(PointsEntry.objects.filter(merchant=merchant).values_list("points", flat=True)) == 40
