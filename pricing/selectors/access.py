"""Who may decide a merchant's prices: its own managers and platform admins, through every path."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from revopt.tenancy.models import Merchant, Role
from revopt.tenancy.selectors import grants_platform_admin, membership_for_user


def can_decide_prices(*, user: AbstractBaseUser | AnonymousUser | None, merchant: Merchant) -> bool:
    """A merchant manager of `merchant`, or a platform admin. Support agents, other merchants' managers,
    inactive users and storefront API keys never."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    membership = membership_for_user(user=user)
    if grants_platform_admin(user=user, membership=membership):
        return True
    return (
        membership is not None
        and membership.role == Role.MERCHANT_MANAGER
        and membership.merchant_id is not None
        and membership.merchant_id == merchant.pk
    )
