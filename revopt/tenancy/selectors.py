import hmac
import time

from django.conf import settings
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


# digest of a raw key → (monotonic expiry, the active key): storefront requests authenticate without a
# query for a few seconds. Only valid keys are kept. `api_key_revoke` drops the entry of its own process
# at once; other processes keep trusting a revoked key (or a deactivated merchant's) until it expires.
_api_key_memo: dict[str, tuple[float, ApiKey]] = {}
API_KEY_MEMO_LIMIT = 10_000


def _api_key_memo_seconds() -> float:
    return float(getattr(settings, "REVOPT", {}).get("API_KEY_CACHE_SECONDS", 10.0))


def api_key_for_raw_key_cached(*, raw_key: str) -> ApiKey | None:
    """`api_key_for_raw_key` behind this process's short-lived memo (see _api_key_memo)."""
    digest = hash_api_key(raw_key)
    now = time.monotonic()
    memo = _api_key_memo.get(digest)
    if memo is not None and memo[0] > now:
        return memo[1]
    api_key = api_key_for_raw_key(raw_key=raw_key)
    seconds = _api_key_memo_seconds()
    if api_key is None or seconds <= 0:
        _api_key_memo.pop(digest, None)
        return api_key
    if len(_api_key_memo) >= API_KEY_MEMO_LIMIT:
        _api_key_memo.clear()
    _api_key_memo[digest] = (now + seconds, api_key)
    return api_key


def api_key_memo_forget(*, hashed_key: str | None = None) -> None:
    """Drop one key's memo entry (a revocation), or every entry."""
    if hashed_key is None:
        _api_key_memo.clear()
    else:
        _api_key_memo.pop(hashed_key, None)


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
