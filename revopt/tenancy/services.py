import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from .models import ApiKey, AuditLogEntry, Merchant, Role, StaffMembership

API_KEY_PREFIX = "rvk_"
# Writing last_used_at on every request would turn each read into a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)

# Which app models each role may touch in the admin. Support agents read; managers run the shop.
_ROLE_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    Role.MERCHANT_MANAGER: {
        "catalog": ("view", "add", "change", "delete"),
        "events": ("view",),
        "tenancy": ("view", "add", "change"),
        "simulator": ("view",),
        "recommendations": ("view", "add", "change"),
        "pricing": ("view", "add", "change"),
        "experiments": ("view", "add", "change"),
        "loyalty": ("view", "add", "change"),
    },
    Role.SUPPORT_AGENT: {
        "catalog": ("view",),
        "events": ("view",),
        "loyalty": ("view",),
    },
}


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    raw_key: str


def hash_api_key(raw_key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast digest is as safe as a slow password hash here.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def audit_log_write(
    *, merchant: Merchant, actor: AbstractBaseUser | None, action: str, target: object, detail: dict | None = None
) -> AuditLogEntry:
    return AuditLogEntry.objects.create(
        merchant=merchant,
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        target_type=type(target).__name__,
        target_id=str(getattr(target, "pk", target)),
        detail=detail or {},
    )


@transaction.atomic
def merchant_lock(*, merchant: Merchant) -> None:
    """Hold the merchant's row until the surrounding transaction ends: serialises per-merchant checks such as
    "no other model run is under way" (call inside `transaction.atomic`)."""
    list(Merchant.objects.select_for_update().filter(pk=merchant.pk).values_list("pk", flat=True))


def merchant_create(*, name: str, slug: str | None = None, currency: str = "USD") -> Merchant:
    merchant = Merchant.objects.create(name=name, slug=slug or slugify(name), currency=currency.upper())
    audit_log_write(merchant=merchant, actor=None, action="merchant.created", target=merchant)
    return merchant


@transaction.atomic
def api_key_create(*, merchant: Merchant, name: str, created_by: AbstractBaseUser | None = None) -> IssuedApiKey:
    prefix = secrets.token_hex(6)
    raw_key = f"{API_KEY_PREFIX}{prefix}.{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        merchant=merchant,
        name=name,
        prefix=prefix,
        hashed_key=hash_api_key(raw_key),
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    audit_log_write(merchant=merchant, actor=created_by, action="api_key.created", target=api_key)
    return IssuedApiKey(api_key=api_key, raw_key=raw_key)


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, revoked_by: AbstractBaseUser | None = None) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_log_write(merchant=api_key.merchant, actor=revoked_by, action="api_key.revoked", target=api_key)
    # This process stops accepting the key at once (and again after commit, in case a request re-read
    # it meanwhile); other processes within their memo's few seconds (selectors._api_key_memo).
    from .selectors import api_key_memo_forget  # selectors imports this module

    api_key_memo_forget(hashed_key=api_key.hashed_key)
    transaction.on_commit(lambda: api_key_memo_forget(hashed_key=api_key.hashed_key))
    return api_key


def api_key_mark_used(*, api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def role_groups_sync() -> dict[str, Group]:
    """Create the role groups and give them their permissions; safe to call again."""
    groups = {}
    for role, app_actions in _ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=Role(role).label)
        permissions = [
            permission
            for app_label, actions in app_actions.items()
            for permission in Permission.objects.filter(content_type__app_label=app_label)
            if permission.codename.split("_", 1)[0] in actions
        ]
        group.permissions.set(permissions)
        groups[role] = group
    return groups


@transaction.atomic
def staff_member_create(
    *, username: str, password: str, role: Role, merchant: Merchant | None, email: str = ""
) -> AbstractBaseUser:
    if role != Role.PLATFORM_ADMIN and merchant is None:
        raise ValueError("merchant managers and support agents belong to a merchant")
    user = get_user_model().objects.create_user(
        username=username,
        password=password,
        email=email,
        is_staff=True,
        is_superuser=role == Role.PLATFORM_ADMIN,
    )
    StaffMembership.objects.create(user=user, merchant=merchant, role=role)
    if role != Role.PLATFORM_ADMIN:
        user.groups.add(role_groups_sync()[role])
    if merchant is not None:
        audit_log_write(merchant=merchant, actor=None, action="staff.created", target=user, detail={"role": str(role)})
    return user
