import json

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from events.models import Customer
from loyalty.models import EntryKind, PointsEntry
from loyalty.services.points import loyalty_account_for, points_adjust
from revopt.tenancy.models import AuditLogEntry
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.loyalty import CustomerInsightFactory, LoyaltyProgramFactory

pytestmark = pytest.mark.django_db

SEARCH = reverse("support:search")
ROLES = ["support_agent", "merchant_manager", "platform_admin"]


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _as(request, role: str, merchant) -> tuple[Client, str]:
    """A logged-in client for `role` of `merchant`, and the query string its URLs need."""
    user = request.getfixturevalue({"support_agent": "support_agent", "merchant_manager": "merchant_manager",
                                    "platform_admin": "platform_admin"}[role])  # fmt: skip
    return _login(user), f"?merchant={merchant.slug}" if role == "platform_admin" else ""


def _url(name: str, customer: Customer) -> str:
    return reverse(f"support:{name}", args=[customer.pk])


@pytest.fixture
def ada(merchant) -> Customer:
    customer = CustomerFactory(merchant=merchant, external_id="shop-ada", email="ada@example.com")
    OrderFactory(merchant=merchant, customer=customer)
    return customer


# --- access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_support_staff_managers_and_platform_admins_search_read_and_export(request, merchant, ada, role):
    # given
    client, query = _as(request, role, merchant)

    # when
    search = client.get(SEARCH + query)
    profile = client.get(_url("profile", ada) + query)
    export = client.get(_url("export", ada) + query)

    # then
    assert (search.status_code, profile.status_code, export.status_code) == (200, 200, 200)
    assert b"ada@example.com" in profile.content


@pytest.mark.parametrize(
    ("role", "status"), [("support_agent", 403), ("merchant_manager", 200), ("platform_admin", 200)]
)
def test_only_managers_and_platform_admins_may_erase(request, merchant, ada, role, status):
    # given
    client, query = _as(request, role, merchant)

    # when
    confirm = client.get(_url("erase", ada) + query)
    erase = client.post(_url("erase", ada) + query, {"confirm": str(ada.pk)})

    # then
    assert confirm.status_code == status
    ada.refresh_from_db()
    assert (ada.erased_at is not None) == (status == 200)
    assert erase.status_code == (403 if status == 403 else 302)


def test_support_agents_see_no_erase_button(support_agent, merchant_manager, ada):
    # when
    agent_page = _login(support_agent).get(_url("profile", ada)).content.decode()
    manager_page = _login(merchant_manager).get(_url("profile", ada)).content.decode()

    # then
    assert 'data-action="erase"' not in agent_page and 'data-action="erase"' in manager_page


@pytest.mark.parametrize("name", ["profile", "export", "erase"])
def test_another_merchants_customer_is_not_found(other_merchant_manager, ada, name):
    # when
    response = _login(other_merchant_manager).get(_url(name, ada))

    # then
    assert response.status_code == 404


def test_another_merchants_customer_cannot_be_adjusted_or_erased(other_merchant_manager, merchant, ada):
    # given
    LoyaltyProgramFactory(merchant=merchant)
    client = _login(other_merchant_manager)

    # when
    adjust = client.post(_url("adjust_points", ada), {"points": "100", "reason": "hi"})
    erase = client.post(_url("erase", ada), {"confirm": str(ada.pk)})

    # then
    assert (adjust.status_code, erase.status_code) == (404, 404)
    ada.refresh_from_db()
    assert ada.erased_at is None and not PointsEntry.objects.exists()


def test_a_platform_admin_reaches_another_shop_only_through_its_slug(platform_admin, merchant, other_merchant, ada):
    # when
    wrong_shop = _login(platform_admin).get(_url("profile", ada) + f"?merchant={other_merchant.slug}")
    unknown_shop = _login(platform_admin).get(_url("profile", ada) + "?merchant=no-such-shop")

    # then
    assert (wrong_shop.status_code, unknown_shop.status_code) == (404, 404)


@pytest.mark.parametrize("name", ["search", "profile", "adjust_points", "export", "erase"])
def test_anonymous_visitors_are_sent_to_the_login_page(ada, name):
    # given
    url = SEARCH if name == "search" else _url(name, ada)

    # when
    response = Client().post(url) if name == "adjust_points" else Client().get(url)

    # then
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# --- search ---------------------------------------------------------------------------------------


def test_one_hit_goes_straight_to_the_profile(support_agent, ada):
    # when
    response = _login(support_agent).get(SEARCH, {"q": "ADA@example"})

    # then
    assert response.status_code == 302 and response["Location"] == _url("profile", ada)


def test_several_hits_are_listed(support_agent, merchant, ada):
    # given
    other = CustomerFactory(merchant=merchant, email="ada.b@example.com")

    # when
    response = _login(support_agent).get(SEARCH, {"q": "ada"})

    # then
    assert response.status_code == 200
    assert response.context["results"] == [other, ada]  # by e-mail


@pytest.mark.parametrize("query", ["", "   ", "x" * 300, "nobody@example.com", "%_%", "#"])
def test_empty_or_garbage_queries_get_a_message(support_agent, ada, query):
    # when
    response = _login(support_agent).get(SEARCH, {"q": query})

    # then
    assert response.status_code == 200
    assert response.context["problem"] and response.context["results"] == []


# --- the profile page -----------------------------------------------------------------------------


def test_profile_shows_every_section(support_agent, merchant, ada):
    # given
    CustomerInsightFactory(merchant=merchant, customer=ada, segment="champions", churn_probability=0.8, clv_12m=99.0)

    # when
    page = _login(support_agent).get(_url("profile", ada)).content.decode()

    # then
    for section in ("header", "consent", "kpis", "loyalty", "recommendations", "experiments", "timeline"):
        assert f'data-section="{section}"' in page
    assert "Champions" in page and 'data-level="high"' in page and "$99.00" in page
    assert 'data-figure="no-program"' in page


def test_profile_says_scores_are_not_computed_yet(support_agent, ada):
    # when
    page = _login(support_agent).get(_url("profile", ada)).content.decode()

    # then
    assert page.count("not computed yet") >= 3


@pytest.mark.parametrize("events", ["abc", "-5", "99999999999", "0"])
def test_profile_ignores_a_bad_events_limit(support_agent, ada, events):
    # when
    response = _login(support_agent).get(_url("profile", ada), {"events": events})

    # then
    assert response.status_code == 200


# --- adjust points --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_staff_adjust_points_with_a_reason(request, merchant, ada, role):
    # given
    LoyaltyProgramFactory(merchant=merchant)
    client, query = _as(request, role, merchant)

    # when
    response = client.post(_url("adjust_points", ada) + query, {"points": "250", "reason": "Parcel arrived late"})

    # then
    assert response.status_code == 302
    entry = PointsEntry.objects.get()
    assert (entry.kind, entry.points, entry.reason) == (EntryKind.ADJUST, 250, "Parcel arrived late")
    assert AuditLogEntry.objects.filter(action="loyalty.points_adjust").count() == 1
    page = client.get(response["Location"]).content.decode()
    assert "Added 250 points." in page and 'data-figure="balance">250 points' in page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"points": "100", "reason": ""}, "Say why"),
        ({"points": "0", "reason": "why not"}, "at least one point"),
        ({"points": "ten", "reason": "why not"}, "whole number"),
        ({"points": "99999999", "reason": "why not"}, "less than or equal"),
        ({"points": "-50", "reason": "too many"}, "balance is 0"),
    ],
)
def test_bad_adjustments_change_nothing_and_say_why(support_agent, merchant, ada, form, message):
    # given
    LoyaltyProgramFactory(merchant=merchant)
    client = _login(support_agent)

    # when
    response = client.post(_url("adjust_points", ada), form, follow=True)

    # then
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PointsEntry.objects.exists()


def test_adjusting_without_a_program_says_so(support_agent, ada):
    # when
    response = _login(support_agent).post(_url("adjust_points", ada), {"points": "5", "reason": "x"}, follow=True)

    # then
    assert "no active loyalty program" in response.content.decode()
    assert not PointsEntry.objects.exists()


def test_actions_need_the_csrf_token(support_agent, merchant, ada):
    # given
    LoyaltyProgramFactory(merchant=merchant)
    client = Client(enforce_csrf_checks=True)
    client.force_login(support_agent)

    # when
    response = client.post(_url("adjust_points", ada), {"points": "5", "reason": "x"})

    # then
    assert response.status_code == 403 and not PointsEntry.objects.exists()


# --- export ---------------------------------------------------------------------------------------


def test_export_downloads_json_and_is_audited(support_agent, merchant, ada):
    # given
    LoyaltyProgramFactory(merchant=merchant)
    points_adjust(
        account=loyalty_account_for(merchant=merchant, customer=ada), points=10, reason="x", actor=support_agent
    )

    # when
    response = _login(support_agent).get(_url("export", ada))

    # then
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="customer-{ada.pk}-export.json"'
    data = json.loads(response.content)
    assert data["customer"]["email"] == "ada@example.com" and len(data["orders"]) == 1
    assert data["loyalty"][0]["balance"] == 10
    assert AuditLogEntry.objects.get(action="customer.export").actor == support_agent


# --- erase ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["", "12345678", "shop-ada", "ada@example.com"])
def test_erase_needs_the_customer_id_typed(merchant_manager, ada, typed):
    # when
    response = _login(merchant_manager).post(_url("erase", ada), {"confirm": typed})

    # then
    assert response.status_code == 400
    ada.refresh_from_db()
    assert ada.erased_at is None and ada.email == "ada@example.com"


def test_erase_then_the_profile_shows_the_banner_and_a_second_erase_is_refused_politely(merchant_manager, ada):
    # given
    client = _login(merchant_manager)

    # when
    first = client.post(_url("erase", ada), {"confirm": f"#{ada.pk}"}, follow=True)
    second = client.post(_url("erase", ada), {"confirm": str(ada.pk)}, follow=True)

    # then
    first_page, second_page = first.content.decode(), second.content.decode()
    assert 'data-section="erased"' in first_page and "ada@example.com" not in first_page
    assert "already erased" in second_page
    assert AuditLogEntry.objects.filter(action="customer.erase").count() == 1


def test_an_erased_customers_points_cannot_be_adjusted(merchant_manager, merchant, ada):
    # given
    LoyaltyProgramFactory(merchant=merchant)
    Customer.objects.filter(pk=ada.pk).update(erased_at=timezone.now())

    # when
    response = _login(merchant_manager).post(_url("adjust_points", ada), {"points": "5", "reason": "x"}, follow=True)

    # then
    assert "this customer was erased" in response.content.decode()
    assert not PointsEntry.objects.exists()


def test_a_merged_away_profile_points_to_the_customer_it_was_merged_into(support_agent, merchant, ada):
    # given
    merged = CustomerFactory(merchant=merchant, merged_into=ada)

    # when
    page = _login(support_agent).get(_url("profile", merged)).content.decode()

    # then
    assert 'data-section="merged"' in page and f'href="{_url("profile", ada)}"' in page
