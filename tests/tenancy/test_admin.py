import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from revopt.tenancy.models import ApiKey, AuditLogEntry, StaffMembership
from revopt.tenancy.selectors import api_key_for_raw_key
from revopt.tenancy.services import api_key_create, audit_log_write, hash_api_key
from tests.factories.catalog import ProductFactory

pytestmark = pytest.mark.django_db

KEYS = "/admin/tenancy/apikey/"
RAW_KEY = re.compile(r"rvk_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}")


@pytest.fixture
def manager_client(client, merchant_manager):
    client.force_login(merchant_manager)
    return client


def test_manager_sees_only_their_merchants_keys(manager_client, merchant, other_merchant):
    # given
    api_key_create(merchant=merchant, name="my storefront")
    api_key_create(merchant=other_merchant, name="their storefront")

    # when
    response = manager_client.get(KEYS)

    # then
    assert response.status_code == 200
    assert [key.name for key in response.context["cl"].result_list] == ["my storefront"]
    assert "their storefront" not in response.content.decode()


def test_add_form_asks_only_for_a_name(manager_client):
    # when
    response = manager_client.get(f"{KEYS}add/")

    # then
    assert list(response.context["adminform"].form.fields) == ["name"]


def test_new_key_is_shown_once_and_stored_hashed(manager_client, merchant, merchant_manager):
    # when
    response = manager_client.post(f"{KEYS}add/", {"name": "checkout"}, follow=True)

    # then: the key is in the page the admin redirects to, as a warning
    page = response.content.decode()
    raw_keys = RAW_KEY.findall(page)
    assert len(raw_keys) == 1
    raw_key = raw_keys[0]
    assert re.search(rf'<li class="warning">[^<]*{re.escape(raw_key)}', page)

    api_key = ApiKey.objects.for_merchant(merchant).get(name="checkout")
    assert api_key.hashed_key == hash_api_key(raw_key)
    assert api_key.created_by == merchant_manager
    assert api_key_for_raw_key(raw_key=raw_key) == api_key

    # and never again: not on the list, not on the key's own page
    assert raw_key not in manager_client.get(KEYS).content.decode()
    assert raw_key not in manager_client.get(f"{KEYS}{api_key.pk}/change/").content.decode()


def test_the_raw_key_is_nowhere_in_the_database(manager_client, merchant):
    # given
    response = manager_client.post(f"{KEYS}add/", {"name": "checkout"}, follow=True)
    raw_key = RAW_KEY.findall(response.content.decode())[0]
    secret = raw_key.split(".", 1)[1]

    # when
    stored = []
    with connection.cursor() as cursor:
        for table in ("tenancy_apikey", "tenancy_auditlogentry", "django_admin_log", "django_session"):
            cursor.execute(f"SELECT * FROM {table}")
            stored.extend(cursor.fetchall())

    # then
    assert not any(secret in str(value) for row in stored for value in row)


def test_keys_are_never_editable_or_deletable(manager_client, merchant):
    # given
    issued = api_key_create(merchant=merchant, name="storefront")

    # when
    page = manager_client.get(f"{KEYS}{issued.api_key.pk}/change/")
    edit = manager_client.post(f"{KEYS}{issued.api_key.pk}/change/", {"name": "renamed"})
    delete = manager_client.post(f"{KEYS}{issued.api_key.pk}/delete/", {"post": "yes"})

    # then
    assert page.status_code == 200
    assert 'name="name"' not in page.content.decode()
    assert edit.status_code == 403
    assert delete.status_code == 403
    assert ApiKey.objects.get(pk=issued.api_key.pk).name == "storefront"


def test_revoke_selected_keys(manager_client, merchant, merchant_manager):
    # given
    kept = api_key_create(merchant=merchant, name="kept")
    revoked = api_key_create(merchant=merchant, name="leaked")

    # when
    response = manager_client.post(
        KEYS, {"action": "revoke_selected", "_selected_action": [revoked.api_key.pk], "index": 0}, follow=True
    )

    # then
    assert response.status_code == 200
    assert "Revoked 1 key(s)." in response.content.decode()
    assert api_key_for_raw_key(raw_key=revoked.raw_key) is None
    assert api_key_for_raw_key(raw_key=kept.raw_key) == kept.api_key
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="api_key.revoked")
    assert entry.actor == merchant_manager


def test_a_manager_cannot_revoke_another_merchants_key(manager_client, other_merchant):
    # given
    theirs = api_key_create(merchant=other_merchant, name="theirs")

    # when
    manager_client.post(KEYS, {"action": "revoke_selected", "_selected_action": [theirs.api_key.pk], "index": 0})

    # then
    assert api_key_for_raw_key(raw_key=theirs.raw_key) == theirs.api_key


def test_support_agent_cannot_see_or_create_keys(client, support_agent):
    # given
    client.force_login(support_agent)

    # when / then
    assert client.get(KEYS).status_code == 403
    assert client.post(f"{KEYS}add/", {"name": "sneaky"}).status_code == 403
    assert not ApiKey.objects.exists()


def test_platform_admin_issues_a_key_for_a_chosen_merchant(client, platform_admin, other_merchant):
    # given
    client.force_login(platform_admin)

    # when
    response = client.post(f"{KEYS}add/", {"merchant": other_merchant.pk, "name": "ops"}, follow=True)

    # then
    raw_key = RAW_KEY.findall(response.content.decode())[0]
    assert api_key_for_raw_key(raw_key=raw_key).merchant == other_merchant


def test_merchants_are_managed_by_platform_admins_only(manager_client, client, platform_admin, merchant):
    # when
    as_manager = manager_client.get("/admin/tenancy/merchant/")
    as_manager_edit = manager_client.post(f"/admin/tenancy/merchant/{merchant.pk}/change/", {"name": "Mine now"})
    client.force_login(platform_admin)
    as_platform_admin = client.get("/admin/tenancy/merchant/")

    # then
    assert as_manager.status_code == 403
    assert as_manager_edit.status_code == 403
    assert as_platform_admin.status_code == 200
    assert merchant.name in as_platform_admin.content.decode()


def test_manager_sees_their_staff_but_cannot_grant_roles(
    manager_client, merchant, other_merchant_manager, support_agent
):
    # when
    listing = manager_client.get("/admin/tenancy/staffmembership/")
    add = manager_client.post(
        "/admin/tenancy/staffmembership/add/",
        {"user": support_agent.pk, "merchant": "", "role": "platform_admin"},
    )

    # then
    assert sorted(membership.user.username for membership in listing.context["cl"].result_list) == [
        "manager",
        "support",
    ]
    assert add.status_code == 403
    assert StaffMembership.objects.get(user=support_agent).role == "support_agent"


def test_audit_log_is_read_only_and_scoped(manager_client, merchant, other_merchant):
    # given
    mine = audit_log_write(merchant=merchant, actor=None, action="catalog.imported", target=merchant)
    audit_log_write(merchant=other_merchant, actor=None, action="secret.thing", target=other_merchant)

    # when
    listing = manager_client.get("/admin/tenancy/auditlogentry/")
    add = manager_client.get("/admin/tenancy/auditlogentry/add/")
    edit = manager_client.post(f"/admin/tenancy/auditlogentry/{mine.pk}/change/", {"action": "forged"})
    delete = manager_client.post(f"/admin/tenancy/auditlogentry/{mine.pk}/delete/", {"post": "yes"})

    # then
    actions = {entry.action for entry in listing.context["cl"].result_list}
    assert "catalog.imported" in actions
    assert "secret.thing" not in actions
    assert (add.status_code, edit.status_code, delete.status_code) == (403, 403, 403)
    mine.refresh_from_db()
    assert mine.action == "catalog.imported"


def test_admin_index_shows_a_manager_their_models_but_not_merchants(manager_client):
    # when
    response = manager_client.get("/admin/")

    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert "/admin/catalog/product/" in page
    assert "/admin/tenancy/apikey/" in page
    assert "/admin/tenancy/merchant/" not in page


@pytest.mark.parametrize(
    "url", ["/admin/", "/admin/catalog/product/", "/admin/catalog/product/add/", "/admin/tenancy/apikey/"]
)
def test_an_admin_page_looks_the_staff_membership_up_once(merchant, merchant_manager, url):
    # given
    ProductFactory.create_batch(5, merchant=merchant)
    client = Client()
    client.force_login(merchant_manager)

    # when
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)

    # then
    assert response.status_code == 200
    assert sum("tenancy_staffmembership" in query["sql"] for query in queries.captured_queries) == 1
