"""Whether a merchant's webhook URL may be called, and at which addresses (server-side request forgery guard).

A merchant types the URL, revopt's servers call it: pointed at 127.0.0.1, 169.254.169.254 (cloud metadata),
10.x or a name resolving there, it would make revopt POST into its own network. So a URL may be called only
when it is https, carries no user name or password, and its host resolves (all its addresses) to public
unicast addresses; the operator can let known internal networks through (REVOPT["WEBHOOK_ALLOWED_NETWORKS"],
env REVOPT_WEBHOOK_ALLOWED_NETWORKS), where the sender may also use plain http (an in-cluster relay).
The check returns the addresses it approved: `webhook_opener` connects to those, never to a fresh resolution
of the name, which could answer 127.0.0.1 a millisecond after the check answered a public address (DNS
rebinding), and verifies TLS for the name. A bad URL is never an exception: `refusal` says what is wrong.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not covered by Python's is_private (3.11): carrier-grade NAT space, inside a provider's network.
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
# IPv6 addresses that carry an IPv4 address the packets end up at: NAT64's well-known prefix.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class WebhookTarget:
    """A checked URL: where to connect (`addresses`, in the resolver's order) or why not (`refusal`)."""

    url: str
    scheme: str = ""
    host: str = ""
    port: int = 0
    addresses: tuple[str, ...] = ()
    refusal: str | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def webhook_allowed_networks() -> tuple[IPNetwork, ...]:
    """The operator's internal networks webhooks may reach; a malformed entry is a configuration error."""
    entries = getattr(settings, "REVOPT", {}).get("WEBHOOK_ALLOWED_NETWORKS", ())
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError as error:
            raise ImproperlyConfigured(f'REVOPT["WEBHOOK_ALLOWED_NETWORKS"]: {error}') from error
    return tuple(networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (::ffff:a.b.c.d, 64:ff9b::a.b.c.d), which is where it leads."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_problem(address: IPAddress) -> str | None:
    """What makes an address unfit to receive a webhook ("a private address"), None for a public unicast one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            problem = address_problem(embedded)
            return f"{problem} (IPv4 {embedded})" if problem else None
        # 6to4 (2002::/16) counts as global, yet routes to the IPv4 address it carries.
        if address.sixtofour is not None and (problem := address_problem(address.sixtofour)):
            return f"{problem} (6to4 of {address.sixtofour})"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:  # Python counts multicast as global
        return "a multicast address"
    if address in SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


def _inside(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)) is not None:
        candidates.append(embedded)
    return any(candidate in network for candidate in candidates for network in networks)


def _resolve(host: str, port: int) -> list[str] | None:
    """All the addresses the name resolves to (TCP), without duplicates; None when it does not resolve."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # socket.gaierror is an OSError; an unencodable name a UnicodeError
        return None
    addresses = [str(sockaddr[0]) for family, *_, sockaddr in answers if family in (socket.AF_INET, socket.AF_INET6)]
    return list(dict.fromkeys(addresses)) or None


def webhook_target_check(
    url: str,
    *,
    allowed_networks: Sequence[IPNetwork] | None = None,
    allow_http_inside_allowed_networks: bool = False,
) -> WebhookTarget:
    """Check `url` and resolve its host once. Refused: another scheme than https (http only inside the allowed
    networks when asked), a user name or password in it, no host, a host that does not resolve, or ANY of its
    addresses outside the public unicast space and outside `allowed_networks` (default: the operator's)."""
    networks = webhook_allowed_networks() if allowed_networks is None else tuple(allowed_networks)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return WebhookTarget(url=url, refusal="it is not a valid URL (check the host and port)")
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or (scheme == "http" and not allow_http_inside_allowed_networks):
        return WebhookTarget(url=url, refusal="only https:// addresses can receive webhooks")
    if "@" in parts.netloc:
        return WebhookTarget(url=url, refusal="the address must not carry a user name or password")
    host = parts.hostname or ""
    if not host:
        return WebhookTarget(url=url, refusal="the address has no host")
    port = port or DEFAULT_PORTS[scheme]
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    target = WebhookTarget(url=url, scheme=scheme, host=host, port=port)
    resolved = [host] if literal is not None else _resolve(host, port)
    if not resolved:
        return replace(target, refusal=f"{host} does not resolve")
    for text in resolved:
        address = ipaddress.ip_address(text)
        if _inside(address, networks):
            continue
        if (problem := address_problem(address)) is not None:
            where = f"{host} is" if literal is not None else f"{host} resolves to {address},"
            return replace(target, refusal=f"{where} {problem}")
        if scheme == "http":  # plain http is for the operator's own networks only
            return replace(target, refusal="only https:// addresses can receive webhooks")
    return replace(target, addresses=tuple(resolved))


# --- getting there: connections pinned to the checked addresses --------------------------------------------


class PinnedRequest(urllib.request.Request):
    """A request that may only go to the addresses a check approved (`WebhookTarget.addresses`)."""

    def __init__(self, url: str, *, addresses: Sequence[str], **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.addresses = tuple(addresses)


def _connect_pinned(addresses: Sequence[str], port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to the first checked address that answers, all within `timeout`; never to a fresh
    resolution of the name."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last_error: OSError = OSError("no checked address to connect to")
    for address in addresses:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            break
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(remaining)
            sock.connect((address, port))
        except OSError as error:
            sock.close()
            last_error = error
            continue
        sock.settimeout(timeout)
        return sock
    raise last_error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, addresses: Sequence[str], **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self.addresses = tuple(addresses)

    def connect(self) -> None:
        self.sock = _connect_pinned(self.addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a checked address, verified against (and SNI naming) the URL's host name, not the address."""

    def __init__(self, host: str, *, addresses: Sequence[str], tls: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(host, context=tls, **kwargs)
        self.addresses = tuple(addresses)
        self.tls = tls

    def connect(self) -> None:
        sock = _connect_pinned(self.addresses, self.port, self.timeout)
        try:
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _checked_addresses(request: urllib.request.Request) -> tuple[str, ...]:
    addresses = getattr(request, "addresses", ())
    if not addresses:  # fail closed: a request that did not go through the check is not sent
        raise urllib.error.URLError("no checked address to connect to")
    return addresses


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: urllib would turn a redirected POST into a GET without the body
    and follow it anywhere (unchecked), so a 3xx counts as a failed attempt."""

    def redirect_request(
        self, req: urllib.request.Request, fp: object, code: int, msg: str, headers: object, newurl: str
    ) -> None:
        return None


class _PinnedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_PinnedHTTPConnection, addresses=_checked_addresses(req)), req)


class _PinnedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, *, tls: ssl.SSLContext) -> None:
        super().__init__(context=tls)
        self.tls = tls

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_PinnedHTTPSConnection, addresses=_checked_addresses(req), tls=self.tls)
        return self.do_open(connection, req)


def webhook_opener(*, tls: ssl.SSLContext) -> urllib.request.OpenerDirector:
    """An opener for `PinnedRequest`s: connections only to the checked addresses (TLS verified with `tls` for the
    host name), no redirects, and no proxy from the environment (the connection must reach the checked address
    itself)."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), _NoRedirects, _PinnedHTTPHandler, _PinnedHTTPSHandler(tls=tls)
    )
