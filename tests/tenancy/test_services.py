from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from freezegun import freeze_time

from revopt.tenancy.models import ApiKey, AuditLogEntry, Role, StaffMembership
from revopt.tenancy.selectors import api_key_for_raw_key, is_platform_admin, merchants_visible_to
from revopt.tenancy.services import (
    api_key_create,
    api_key_mark_used,
    api_key_revoke,
    hash_api_key,
    merchant_create,
    role_groups_sync,
    staff_member_create,
)

pytestmark = pytest.mark.django_db


def test_api_key_is_stored_only_as_a_digest(merchant):
    # when
    issued = api_key_create(merchant=merchant, name="storefront")

    # then
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert issued.raw_key.startswith(f"rvk_{stored.prefix}.")
    assert stored.hashed_key == hash_api_key(issued.raw_key)
    secret = issued.raw_key.split(".", 1)[1]
    assert secret not in stored.hashed_key and secret not in stored.prefix
    assert AuditLogEntry.objects.for_merchant(merchant).filter(action="api_key.created").count() == 1


def test_api_key_for_raw_key_finds_the_active_key(merchant):
    # given
    issued = api_key_create(merchant=merchant, name="storefront")

    # when
    found = api_key_for_raw_key(raw_key=issued.raw_key)

    # then
    assert found == issued.api_key
    assert found.merchant == merchant


@pytest.mark.parametrize(
    "tamper",
    [
        lambda raw: raw[:-1] + ("A" if raw[-1] != "A" else "B"),  # wrong secret, real prefix
        lambda raw: raw.replace("rvk_", "rvx_"),  # wrong scheme
        lambda raw: raw.split(".")[0],  # no secret at all
        lambda raw: "rvk_ffffffffffff." + raw.split(".", 1)[1],  # unknown prefix
        lambda raw: "",
    ],
)
def test_api_key_for_raw_key_rejects_tampered_keys(merchant, tamper):
    # given
    issued = api_key_create(merchant=merchant, name="storefront")

    # when / then
    assert api_key_for_raw_key(raw_key=tamper(issued.raw_key)) is None


def test_revoked_key_no_longer_authenticates_and_revoking_twice_is_harmless(merchant):
    # given
    issued = api_key_create(merchant=merchant, name="storefront")

    # when
    api_key_revoke(api_key=issued.api_key)
    first_revoked_at = ApiKey.objects.get(pk=issued.api_key.pk).revoked_at
    api_key_revoke(api_key=issued.api_key)

    # then
    assert api_key_for_raw_key(raw_key=issued.raw_key) is None
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at == first_revoked_at
    assert AuditLogEntry.objects.for_merchant(merchant).filter(action="api_key.revoked").count() == 1


def test_keys_of_a_deactivated_merchant_do_not_authenticate(merchant):
    # given
    issued = api_key_create(merchant=merchant, name="storefront")
    merchant.is_active = False
    merchant.save()

    # when / then
    assert api_key_for_raw_key(raw_key=issued.raw_key) is None


def test_last_used_is_written_at_most_once_a_minute(merchant):
    # given
    issued = api_key_create(merchant=merchant, name="storefront")
    start = timezone.now()

    # when
    with freeze_time(start):
        api_key_mark_used(api_key=issued.api_key)
    with freeze_time(start + timedelta(seconds=30)):
        api_key_mark_used(api_key=ApiKey.objects.get(pk=issued.api_key.pk))
    after_thirty_seconds = ApiKey.objects.get(pk=issued.api_key.pk).last_used_at
    with freeze_time(start + timedelta(minutes=2)):
        api_key_mark_used(api_key=ApiKey.objects.get(pk=issued.api_key.pk))

    # then
    assert after_thirty_seconds == start
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at == start + timedelta(minutes=2)


def test_role_groups_sync_grants_each_role_its_permissions_and_is_idempotent():
    # when
    role_groups_sync()
    groups = role_groups_sync()

    # then
    assert Group.objects.filter(name__in=["Merchant manager", "Support agent"]).count() == 2
    manager = {f"{p.content_type.app_label}.{p.codename}" for p in groups[Role.MERCHANT_MANAGER].permissions.all()}
    support = {f"{p.content_type.app_label}.{p.codename}" for p in groups[Role.SUPPORT_AGENT].permissions.all()}
    assert {"catalog.add_product", "catalog.change_product", "tenancy.add_apikey", "events.view_event"} <= manager
    assert "events.change_event" not in manager
    assert "tenancy.delete_apikey" not in manager
    assert "catalog.view_product" in support
    assert not {p for p in support if not p.split(".")[1].startswith("view_")}
    assert not any(p.startswith("tenancy.") for p in support)


def test_staff_member_create_puts_a_manager_in_the_role_group(merchant):
    # when
    user = staff_member_create(username="ana", password="s3cret-pass!", role=Role.MERCHANT_MANAGER, merchant=merchant)

    # then
    assert user.is_staff and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == ["Merchant manager"]
    assert StaffMembership.objects.get(user=user).merchant == merchant
    assert user.has_perm("catalog.change_product")
    assert not user.has_perm("auth.change_user")
    assert AuditLogEntry.objects.for_merchant(merchant).filter(action="staff.created").exists()


def test_support_agent_can_only_view(merchant):
    # when
    user = staff_member_create(username="sam", password="s3cret-pass!", role=Role.SUPPORT_AGENT, merchant=merchant)

    # then
    assert user.has_perm("catalog.view_product")
    assert not user.has_perm("catalog.change_product")
    assert not user.has_perm("tenancy.add_apikey")


def test_platform_admin_belongs_to_no_merchant_and_sees_all(merchant, other_merchant):
    # when
    user = staff_member_create(username="root", password="s3cret-pass!", role=Role.PLATFORM_ADMIN, merchant=None)

    # then
    assert user.is_superuser
    assert is_platform_admin(user=user)
    assert set(merchants_visible_to(user=user)) == {merchant, other_merchant}


def test_a_manager_sees_only_their_merchant(merchant, other_merchant):
    # given
    user = staff_member_create(username="ana", password="s3cret-pass!", role=Role.MERCHANT_MANAGER, merchant=merchant)

    # when / then
    assert not is_platform_admin(user=user)
    assert list(merchants_visible_to(user=user)) == [merchant]


@pytest.mark.parametrize("role", [Role.MERCHANT_MANAGER, Role.SUPPORT_AGENT])
def test_merchant_roles_require_a_merchant(role):
    # when / then
    with pytest.raises(ValueError):
        staff_member_create(username="x", password="s3cret-pass!", role=role, merchant=None)
    assert not StaffMembership.objects.exists()


def test_merchant_create_slugs_the_name_and_audits():
    # when
    merchant = merchant_create(name="Trail & Co", currency="eur")

    # then
    assert (merchant.slug, merchant.currency) == ("trail-co", "EUR")
    assert AuditLogEntry.objects.for_merchant(merchant).get().action == "merchant.created"
