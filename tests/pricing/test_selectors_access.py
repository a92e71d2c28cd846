import pytest
from django.contrib.auth.models import AnonymousUser

from pricing.selectors.access import can_decide_prices

pytestmark = pytest.mark.django_db


def test_only_the_merchants_own_managers_and_platform_admins_decide_prices(
    merchant, merchant_manager, other_merchant_manager, support_agent, platform_admin
):
    # when / then
    assert can_decide_prices(user=merchant_manager, merchant=merchant)
    assert can_decide_prices(user=platform_admin, merchant=merchant)
    assert not can_decide_prices(user=other_merchant_manager, merchant=merchant)
    assert not can_decide_prices(user=support_agent, merchant=merchant)
    assert not can_decide_prices(user=AnonymousUser(), merchant=merchant)
    assert not can_decide_prices(user=None, merchant=merchant)


def test_a_deactivated_manager_no_longer_decides(merchant, merchant_manager):
    # given
    merchant_manager.is_active = False
    merchant_manager.save()

    # when / then
    assert not can_decide_prices(user=merchant_manager, merchant=merchant)
