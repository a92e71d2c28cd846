import socket
from unittest import mock

import pytest

from loyalty.models import RecoverySettings, RecoveryStatus
from revopt.tenancy.models import AuditLogEntry
from tests.factories.funnel import RecoveryMessageFactory, RecoverySettingsFactory

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/admin/loyalty/recoverysettings/"
MESSAGES_URL = "/admin/loyalty/recoverymessage/"


@pytest.fixture(autouse=True)
def dns():
    """No real DNS in tests: every name resolves to a public address unless a test says otherwise."""
    answer = [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", 443))]
    with mock.patch("loyalty.webhook_target.socket.getaddrinfo", return_value=answer) as getaddrinfo:
        yield getaddrinfo


def _settings_form(**overrides) -> dict:
    return {
        "enabled": "on",
        "abandoned_after_minutes": "30",
        "delays_minutes": "[30, 240]",
        "include_recommendations": "on",
        "include_offer": "on",
        "webhook_url": "",
        "webhook_secret": "",
        **overrides,
    }


def test_a_manager_sets_the_delays_and_the_save_is_audited(client, merchant, merchant_manager):
    # given
    client.force_login(merchant_manager)

    # when
    response = client.post(f"{SETTINGS_URL}add/", _settings_form())

    # then
    assert response.status_code == 302
    settings = RecoverySettings.objects.get(merchant=merchant)
    assert settings.delays_minutes == [30, 240]
    assert AuditLogEntry.objects.filter(merchant=merchant, action="recovery_settings.save").count() == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"delays_minutes": "[240, 30]"}, "longer than the one before"),
        ({"delays_minutes": "[5]"}, "between 15 minutes and 14 days"),
        ({"delays_minutes": "[20, 30, 40, 50, 60, 70]"}, "1 to 5"),
        ({"webhook_url": "http://hooks.example.com/r", "webhook_secret": "s"}, "https://"),
        ({"webhook_url": "https://hooks.example.com/r"}, "secret is needed"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(client, merchant, merchant_manager, overrides, message):
    # given
    client.force_login(merchant_manager)

    # when
    response = client.post(f"{SETTINGS_URL}add/", _settings_form(**overrides))

    # then
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not RecoverySettings.objects.filter(merchant=merchant).exists()


def test_empty_delays_are_saved_as_the_default(client, merchant, merchant_manager):
    # given
    client.force_login(merchant_manager)

    # when
    response = client.post(f"{SETTINGS_URL}add/", _settings_form(delays_minutes=""))

    # then
    assert response.status_code == 302
    assert RecoverySettings.objects.get(merchant=merchant).delays_minutes == []


def test_support_agents_read_the_settings_but_cannot_change_them(client, merchant, support_agent):
    # given
    settings = RecoverySettingsFactory(merchant=merchant)
    client.force_login(support_agent)

    # when
    page = client.get(f"{SETTINGS_URL}{settings.pk}/change/")
    change = client.post(f"{SETTINGS_URL}{settings.pk}/change/", _settings_form(delays_minutes="[20]"))

    # then
    assert page.status_code == 200
    assert change.status_code == 403
    settings.refresh_from_db()
    assert settings.delays_minutes == [60, 1440]


def test_messages_are_read_only_filtered_by_status_and_scoped_to_the_merchant(
    client, merchant, other_merchant, merchant_manager
):
    # given
    mine = RecoveryMessageFactory(merchant=merchant, cart_id="cart-mine", status=RecoveryStatus.SENT)
    RecoveryMessageFactory(merchant=merchant, cart_id="cart-pending")
    RecoveryMessageFactory(merchant=other_merchant, cart_id="cart-theirs", status=RecoveryStatus.SENT)
    client.force_login(merchant_manager)

    # when
    listing = client.get(MESSAGES_URL, {"status__exact": "sent"}).content.decode()
    add = client.get(f"{MESSAGES_URL}add/")
    edit = client.post(f"{MESSAGES_URL}{mine.pk}/change/", {"status": "cancelled"})

    # then
    assert "cart-mine" in listing
    assert "cart-pending" not in listing
    assert "cart-theirs" not in listing
    assert add.status_code == 403
    assert edit.status_code == 403
    mine.refresh_from_db()
    assert mine.status == RecoveryStatus.SENT


@pytest.mark.parametrize(
    ("url", "answer", "reason"),
    [
        ("https://127.0.0.1/r", None, "127.0.0.1 is a loopback address"),
        ("https://169.254.169.254/latest/meta-data", None, "169.254.169.254 is a link-local address"),
        ("https://[::ffff:10.0.0.5]/r", None, "::ffff:10.0.0.5 is a private address (IPv4 10.0.0.5)"),
        ("https://hooks.shop.example/r", ["10.0.0.5"], "hooks.shop.example resolves to 10.0.0.5, a private address"),
        ("https://hooks.shop.example/r", ["93.184.216.34", "fd00::1"], "resolves to fd00::1, a private address"),
        ("https://hooks.shpo.example/r", [], "hooks.shpo.example does not resolve"),
        ("https://user:pw@hooks.shop.example/r", None, "must not carry a user name or password"),
    ],
)
def test_a_webhook_that_cannot_be_called_is_refused_on_the_url_field(
    client, merchant, merchant_manager, dns, url, answer, reason
):
    # given
    if answer is not None:
        dns.return_value = [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 443)) for a in answer
        ]
    client.force_login(merchant_manager)

    # when
    response = client.post(f"{SETTINGS_URL}add/", _settings_form(webhook_url=url, webhook_secret="s"))

    # then
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["webhook_url"]
    assert reason in errors["webhook_url"][0]
    assert errors["webhook_url"][0].startswith("This address cannot receive webhooks: ")
    assert not RecoverySettings.objects.filter(merchant=merchant).exists()


def test_a_public_webhook_is_saved_and_an_operator_allowed_network_too(client, merchant, merchant_manager, settings):
    # given
    client.force_login(merchant_manager)
    settings.REVOPT = {**settings.REVOPT, "WEBHOOK_ALLOWED_NETWORKS": ["10.20.0.0/16"]}

    # when
    public = client.post(
        f"{SETTINGS_URL}add/", _settings_form(webhook_url="https://hooks.shop.example/r", webhook_secret="s")
    )
    saved = RecoverySettings.objects.get(merchant=merchant)
    internal = client.post(
        f"{SETTINGS_URL}{saved.pk}/change/", _settings_form(webhook_url="https://10.20.1.2/r", webhook_secret="s")
    )

    # then
    assert (public.status_code, internal.status_code) == (302, 302)
    saved.refresh_from_db()
    assert saved.webhook_url == "https://10.20.1.2/r"
