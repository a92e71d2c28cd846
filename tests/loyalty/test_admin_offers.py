from decimal import Decimal

import pytest

from loyalty.models import OfferSettings
from revopt.tenancy.models import AuditLogEntry
from tests.factories.events import OrderFactory
from tests.factories.funnel import OfferDecisionFactory, OfferSettingsFactory

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/admin/loyalty/offersettings/"
DECISIONS_URL = "/admin/loyalty/offerdecision/"


@pytest.fixture
def manager_client(client, merchant_manager):
    client.force_login(merchant_manager)
    return client


def _form(**overrides) -> dict:
    form = {
        "enabled": "on",
        "daily_budget": "250.00",
        "max_offers_per_customer": "2",
        "frequency_window_days": "7",
        "exploration_share": "0.2",
        "allowed_kinds": ["percent_5", "free_shipping"],
        "shipping_cost": "5.00",
        "points_bonus": "200",
        "point_value": "0.01",
        "default_margin_rate": "0.35",
        "offer_valid_hours": "24",
    }
    form.update(overrides)
    return form


def test_a_manager_edits_the_offer_settings_of_their_shop_with_an_audit_row(manager_client, merchant):
    # given
    settings = OfferSettingsFactory(merchant=merchant)

    # when
    response = manager_client.post(f"{SETTINGS_URL}{settings.pk}/change/", _form())

    # then
    assert response.status_code == 302, response.content.decode()[:2000]
    settings.refresh_from_db()
    assert settings.allowed_kinds == ["percent_5", "free_shipping"]
    assert settings.exploration_share == 0.2
    assert AuditLogEntry.objects.filter(merchant=merchant, action="offers.settings_changed").count() == 1


def test_invalid_offer_settings_are_refused_field_by_field(manager_client, merchant):
    # given
    settings = OfferSettingsFactory(merchant=merchant)
    bad = _form(exploration_share="1.5", allowed_kinds=["percent_5", "none"], default_margin_rate="2")

    # when
    response = manager_client.post(f"{SETTINGS_URL}{settings.pk}/change/", bad)
    negative = manager_client.post(f"{SETTINGS_URL}{settings.pk}/change/", _form(exploration_share="-0.1"))

    # then
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"exploration_share", "allowed_kinds", "default_margin_rate"}
    assert set(negative.context["adminform"].form.errors) == {"exploration_share"}
    settings.refresh_from_db()
    assert settings.exploration_share == 0.1


def test_a_manager_cannot_open_another_shops_settings(manager_client, other_merchant):
    # given
    theirs = OfferSettingsFactory(merchant=other_merchant)

    # when
    response = manager_client.post(f"{SETTINGS_URL}{theirs.pk}/change/", _form(exploration_share="0.9"))

    # then
    assert response.status_code in (302, 404)
    assert OfferSettings.objects.get(pk=theirs.pk).exploration_share == 0.1


def test_decisions_are_listed_read_only_for_the_managers_shop_and_filter_by_redemption(
    manager_client, merchant, other_merchant
):
    # given
    redeemed = OfferDecisionFactory(merchant=merchant, redeemed_order=OrderFactory(merchant=merchant))
    open_offer = OfferDecisionFactory(merchant=merchant)
    theirs = OfferDecisionFactory(merchant=other_merchant)

    # when
    everything = manager_client.get(DECISIONS_URL)
    only_redeemed = manager_client.get(DECISIONS_URL, {"redeemed": "yes"})
    change_page = manager_client.post(f"{DECISIONS_URL}{open_offer.pk}/change/", {"kind": "none"})

    # then
    listed = {row.pk for row in everything.context["cl"].result_list}
    assert listed == {redeemed.pk, open_offer.pk}
    assert theirs.pk not in listed
    assert [row.pk for row in only_redeemed.context["cl"].result_list] == [redeemed.pk]
    assert change_page.status_code == 403
    open_offer.refresh_from_db()
    assert open_offer.kind == "percent_10"


def test_a_manager_sets_and_clears_the_free_shipping_threshold_with_an_audit_row(manager_client, merchant):
    # given
    settings = OfferSettingsFactory(merchant=merchant)
    url = f"{SETTINGS_URL}{settings.pk}/change/"

    # when
    set_response = manager_client.post(url, _form(free_shipping_threshold="75.00"))
    settings.refresh_from_db()
    threshold_set = settings.free_shipping_threshold
    cleared = manager_client.post(url, _form(free_shipping_threshold=""))

    # then
    assert (set_response.status_code, cleared.status_code) == (302, 302)
    assert threshold_set == Decimal("75.00")
    settings.refresh_from_db()
    assert settings.free_shipping_threshold is None
    audited = AuditLogEntry.objects.filter(merchant=merchant, action="offers.settings_changed").order_by("pk")
    assert [entry.detail["free_shipping_threshold"] for entry in audited] == ["75.00", None]


@pytest.mark.parametrize("threshold", ["-0.01", "not-a-number"])
def test_a_bad_free_shipping_threshold_is_refused_naming_the_field(manager_client, merchant, threshold):
    # given
    settings = OfferSettingsFactory(merchant=merchant, free_shipping_threshold=Decimal("50.00"))

    # when
    response = manager_client.post(f"{SETTINGS_URL}{settings.pk}/change/", _form(free_shipping_threshold=threshold))

    # then
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"free_shipping_threshold"}
    settings.refresh_from_db()
    assert settings.free_shipping_threshold == Decimal("50.00")


def test_a_manager_cannot_set_another_shops_free_shipping_threshold(manager_client, other_merchant):
    # given
    theirs = OfferSettingsFactory(merchant=other_merchant)

    # when
    response = manager_client.post(f"{SETTINGS_URL}{theirs.pk}/change/", _form(free_shipping_threshold="1.00"))

    # then
    assert response.status_code in (302, 404)
    assert OfferSettings.objects.get(pk=theirs.pk).free_shipping_threshold is None
