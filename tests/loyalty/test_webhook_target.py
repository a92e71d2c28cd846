import ipaddress
import socket
from unittest import mock

import pytest
from django.core.exceptions import ImproperlyConfigured

from loyalty.webhook_target import webhook_allowed_networks, webhook_target_check


def _answers(*addresses: str) -> list[tuple]:
    """What socket.getaddrinfo returns for a name resolving to `addresses` (port 443, TCP)."""
    return [
        (
            socket.AF_INET6 if ":" in address else socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
            "",
            (address, 443, 0, 0) if ":" in address else (address, 443),
        )
        for address in addresses
    ]


def _resolving(*addresses: str):
    return mock.patch("loyalty.webhook_target.socket.getaddrinfo", return_value=_answers(*addresses))


def _networks(*cidrs: str) -> list:
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("10.0.0.5", "a private address"),
        ("172.16.3.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.251", "a multicast address"),
        ("240.0.0.1", "a private address"),
        ("255.255.255.255", "a private address"),
        ("198.18.0.1", "a private address"),
        ("[::1]", "a loopback address"),
        ("[::]", "an unspecified address"),
        ("[fe80::1]", "a link-local address"),
        ("[fd00:ec2::254]", "a private address"),
        ("[ff02::1]", "a multicast address"),
        ("[2001:db8::1]", "a private address"),
        ("[::ffff:127.0.0.1]", "a loopback address (IPv4 127.0.0.1)"),
        ("[::ffff:169.254.169.254]", "a link-local address (IPv4 169.254.169.254)"),
        ("[64:ff9b::a00:5]", "a private address (IPv4 10.0.0.5)"),
        ("[2002:7f00:1::]", "a loopback address (6to4 of 127.0.0.1)"),
    ],
)
def test_a_literal_address_outside_the_public_space_is_refused_with_its_class(host, problem):
    # when
    target = webhook_target_check(f"https://{host}/hooks", allowed_networks=[])

    # then
    assert target.refusal == f"{host.strip('[]')} is {problem}"
    assert not target.allowed and target.addresses == ()


@pytest.mark.parametrize(
    "host", ["93.184.216.34", "8.8.8.8", "[2606:4700::1111]", "[::ffff:93.184.216.34]", "[64:ff9b::808:808]"]
)
def test_a_public_literal_address_is_allowed_and_kept_as_the_address_to_connect_to(host):
    # when
    target = webhook_target_check(f"https://{host}:8443/hooks", allowed_networks=[])

    # then
    assert target.refusal is None
    assert (target.host, target.port, target.addresses) == (host.strip("[]"), 8443, (host.strip("[]"),))


def test_a_name_is_refused_when_any_of_its_addresses_is_private():
    # given a name with a public and a private address
    with _resolving("93.184.216.34", "10.0.0.5") as getaddrinfo:
        # when
        target = webhook_target_check("https://hooks.shop.example/r", allowed_networks=[])

    # then
    assert target.refusal == "hooks.shop.example resolves to 10.0.0.5, a private address"
    assert getaddrinfo.call_args.args[:2] == ("hooks.shop.example", 443)


def test_a_name_with_only_public_addresses_is_allowed_with_all_of_them_in_order():
    # given
    with _resolving("2606:4700::1111", "93.184.216.34", "93.184.216.34"):
        # when
        target = webhook_target_check("https://hooks.shop.example/r", allowed_networks=[])

    # then
    assert target.refusal is None
    assert target.addresses == ("2606:4700::1111", "93.184.216.34")


def test_a_name_that_does_not_resolve_is_refused():
    # given
    with mock.patch("loyalty.webhook_target.socket.getaddrinfo", side_effect=socket.gaierror(-2, "Name unknown")):
        # when
        target = webhook_target_check("https://hooks.shpo.example/r", allowed_networks=[])

    # then
    assert target.refusal == "hooks.shpo.example does not resolve"


def test_a_decimal_encoded_loopback_is_judged_by_what_it_resolves_to():
    # given "2130706433" is 127.0.0.1 for the C resolver
    with _resolving("127.0.0.1"):
        # when
        target = webhook_target_check("https://2130706433/r", allowed_networks=[])

    # then
    assert target.refusal == "2130706433 resolves to 127.0.0.1, a loopback address"


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("http://93.184.216.34/r", "only https:// addresses can receive webhooks"),
        ("ftp://93.184.216.34/r", "only https:// addresses can receive webhooks"),
        ("https://user:pw@93.184.216.34/r", "the address must not carry a user name or password"),
        ("https://93.184.216.34@10.0.0.5/r", "the address must not carry a user name or password"),
        ("https:///r", "the address has no host"),
        ("https://93.184.216.34:99999/r", "it is not a valid URL (check the host and port)"),
        ("not a url", "only https:// addresses can receive webhooks"),
    ],
)
def test_a_malformed_url_is_refused_with_a_reason_not_an_exception(url, refusal):
    # when
    target = webhook_target_check(url, allowed_networks=[])

    # then
    assert target.refusal == refusal


def test_the_operators_networks_let_internal_targets_through_and_only_those():
    # given the operator allows 10.20.0.0/16
    networks = _networks("10.20.0.0/16")

    # when
    inside = webhook_target_check("https://10.20.1.2/r", allowed_networks=networks)
    mapped = webhook_target_check("https://[::ffff:10.20.1.2]/r", allowed_networks=networks)
    outside = webhook_target_check("https://10.21.1.2/r", allowed_networks=networks)
    with _resolving("10.20.1.2", "127.0.0.1"):
        half = webhook_target_check("https://relay.internal/r", allowed_networks=networks)

    # then
    assert (inside.refusal, inside.addresses) == (None, ("10.20.1.2",))
    assert mapped.refusal is None
    assert outside.refusal == "10.21.1.2 is a private address"
    assert half.refusal == "relay.internal resolves to 127.0.0.1, a loopback address"


def test_plain_http_is_allowed_only_inside_the_operators_networks_and_only_when_asked():
    # given
    networks = _networks("127.0.0.0/8")

    # when
    internal = webhook_target_check(
        "http://127.0.0.1:8080/r", allowed_networks=networks, allow_http_inside_allowed_networks=True
    )
    public = webhook_target_check(
        "http://93.184.216.34/r", allowed_networks=networks, allow_http_inside_allowed_networks=True
    )
    not_asked = webhook_target_check("http://127.0.0.1:8080/r", allowed_networks=networks)

    # then
    assert (internal.refusal, internal.port) == (None, 8080)
    assert public.refusal == "only https:// addresses can receive webhooks"
    assert not_asked.refusal == "only https:// addresses can receive webhooks"


def test_the_allowed_networks_come_from_the_revopt_setting(settings):
    # given
    settings.REVOPT = {**settings.REVOPT, "WEBHOOK_ALLOWED_NETWORKS": ["10.20.0.0/16", " fd00::/8 "]}

    # when
    networks = webhook_allowed_networks()
    target = webhook_target_check("https://10.20.1.2/r")

    # then
    assert networks == tuple(_networks("10.20.0.0/16", "fd00::/8"))
    assert target.refusal is None


def test_no_network_is_allowed_by_default_and_a_malformed_one_fails_loudly(settings):
    # given the shipped default
    assert webhook_allowed_networks() == ()
    settings.REVOPT = {**settings.REVOPT, "WEBHOOK_ALLOWED_NETWORKS": ["10.20.0.0/33"]}

    # when / then
    with pytest.raises(ImproperlyConfigured, match="WEBHOOK_ALLOWED_NETWORKS"):
        webhook_target_check("https://10.20.1.2/r")
