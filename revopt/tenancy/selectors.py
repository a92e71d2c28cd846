import hmac

from django.contrib.auth.models import AbstractBaseUser

from .models import ApiKey, Merchant, Role, StaffMembership
from .services import API_KEY_PREFIX, hash_api_key


def api_key_for_raw_key(*, raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Compares digests, never stored secrets."""
    if not raw_key.startswith(API_KEY_PREFIX) or "." not in raw_key:
        return None
    prefix = raw_key[len(API_KEY_PREFIX) :].split(".", 1)[0]
    api_key = ApiKey.objects.select_related("merchant").filter(prefix=prefix, revoked_at__isnull=True).first()
    if api_key is None or not api_key.merchant.is_active:
        return None
    if not hmac.compare_digest(api_key.hashed_key, hash_api_key(raw_key)):
        return None
    return api_key


def membership_for_user(*, user: AbstractBaseUser) -> StaffMembership | None:
    if not user.is_authenticated:
        return None
    return StaffMembership.objects.select_related("merchant").filter(user=user).first()


def grants_platform_admin(*, user: AbstractBaseUser, membership: StaffMembership | None) -> bool:
    """The platform-admin rule, for callers that already hold the user's membership."""
    if not user.is_authenticated:
        return False
    return user.is_superuser or (membership is not None and membership.role == Role.PLATFORM_ADMIN)


def is_platform_admin(*, user: AbstractBaseUser) -> bool:
    if not user.is_authenticated:
        return False
    return user.is_superuser or grants_platform_admin(user=user, membership=membership_for_user(user=user))


def merchants_visible_to(*, user: AbstractBaseUser):
    if is_platform_admin(user=user):
        return Merchant.objects.all()
    membership = membership_for_user(user=user)
    if membership is None or membership.merchant_id is None:
        return Merchant.objects.none()
    return Merchant.objects.filter(pk=membership.merchant_id)
