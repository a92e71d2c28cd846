"""Drives simulated shoppers through the real storefront API.

The simulator reads the catalog the way a storefront does (`GET /api/v1/products`, once per simulated
day) and sends what shoppers do as Segment batches to `POST /api/v1/events`, so the data enters revopt
by the same path a real shop's does: URL routing, API-key authentication, validation, ingest.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from .policy import ApiCallingPolicy, CatalogBrowsePolicy, CatalogListing, StorefrontPolicy
from .session import ShopSimulator, SimulationStats
from .world import World

PRODUCTS_PATH = "/api/v1/products"
EVENTS_PATH = "/api/v1/events"
PRODUCTS_PAGE_SIZE = 1000
EVENT_BATCH_SIZE = 1000


class StorefrontAPIError(RuntimeError):
    """The storefront API answered with an error status or rejected simulated events."""


class Transport(Protocol):
    def get(self, path: str, params: dict | None = None) -> dict: ...

    def post(self, path: str, payload: dict) -> dict: ...


class InProcessTransport:
    """Calls the API inside this process through Django's test client: routing, auth and views all run."""

    def __init__(self, api_key: str) -> None:
        from rest_framework.test import APIClient

        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")

    def get(self, path: str, params: dict | None = None) -> dict:
        response = self.client.get(path, params or {})
        return _checked(response.status_code, response.json(), path)

    def post(self, path: str, payload: dict) -> dict:
        response = self.client.post(path, payload, format="json")
        return _checked(response.status_code, response.json(), path)


class HttpTransport:
    """Calls a running revopt server over HTTP."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def _request(self, path: str, *, params: dict | None = None, payload: dict | None = None) -> dict:
        url = self.base_url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
        request.add_header("Authorization", f"Bearer {self.api_key}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _checked(response.status, json.loads(response.read()), path)
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = {"body": body[:500].decode(errors="replace")}
            return _checked(error.code, parsed, path)

    def get(self, path: str, params: dict | None = None) -> dict:
        return self._request(path, params=params)

    def post(self, path: str, payload: dict) -> dict:
        return self._request(path, payload=payload)


def _checked(status: int, body: dict, path: str) -> dict:
    if status >= 400 and not (path == EVENTS_PATH and status == 400 and "results" in body):
        raise StorefrontAPIError(f"{path} answered {status}: {json.dumps(body)[:1000]}")
    return body


def catalog_listing_fetch(transport: Transport) -> CatalogListing:
    """All active products, paging through the API as a storefront would."""
    products: list[dict] = []
    offset = 0
    while True:
        page = transport.get(PRODUCTS_PATH, {"limit": PRODUCTS_PAGE_SIZE, "offset": offset})
        products.extend(page["results"])
        offset += len(page["results"])
        if not page["results"] or offset >= page["count"]:
            return CatalogListing(products)


def event_batch_send(transport: Transport, events: list[dict]) -> dict:
    """Send one batch and fail loudly if the API rejected any event: simulated data must all be valid."""
    body = transport.post(EVENTS_PATH, {"batch": events})
    if body.get("rejected"):
        errors = [
            {
                "index": item["index"],
                "messageId": item.get("messageId"),
                "event": events[item["index"]].get("event") or events[item["index"]].get("type"),
                "errors": item["errors"],
            }
            for item in body["results"]
            if item["status"] == "rejected"
        ][:5]
        raise StorefrontAPIError(f"{body['rejected']} of {len(events)} simulated events rejected: {json.dumps(errors)}")
    return body


class StorefrontDriver:
    """Runs a world's shoppers through a storefront, day by day, and returns what the simulator counted."""

    def __init__(
        self,
        *,
        world: World,
        transport: Transport,
        policy: StorefrontPolicy | None = None,
        batch_size: int = EVENT_BATCH_SIZE,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if not 1 <= batch_size <= EVENT_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {EVENT_BATCH_SIZE}")
        self.world = world
        self.transport = transport
        self.policy = policy or CatalogBrowsePolicy(max_products=world.config.listing_size)
        if isinstance(self.policy, ApiCallingPolicy):
            self.policy.connect(transport)
        self.batch_size = batch_size
        self.now = now or (lambda: datetime.now(UTC))
        self.simulator = ShopSimulator(world=world, policy=self.policy)
        self.accepted = 0
        self.duplicate = 0

    def run(self, *, on_day: Callable[[int, int], None] | None = None) -> SimulationStats:
        last_day_end = self.simulator.day_start(self.world.config.days)
        if last_day_end > self.now() + (self.simulator.day_start(1) - self.simulator.day_start(0)):
            raise ValueError("the simulated period ends after today: its events would be in the future")
        for day in range(self.world.config.days):
            sessions_before = self.simulator.stats.sessions
            # A storefront caches its catalog; refreshing once a simulated day picks up the policy's changes.
            listing = catalog_listing_fetch(self.transport)
            events = self.simulator.day_events(day, listing)
            self._check_not_in_future(events)
            for start in range(0, len(events), self.batch_size):
                body = event_batch_send(self.transport, events[start : start + self.batch_size])
                self.accepted += body.get("accepted", 0)
                self.duplicate += body.get("duplicate", 0)
            if on_day is not None:
                on_day(day, self.simulator.stats.sessions - sessions_before)
        return self.simulator.stats

    def _check_not_in_future(self, events: list[dict]) -> None:
        # Every timestamp is written in UTC with the same format, so the strings sort like the instants.
        latest = max((event["timestamp"] for event in events), default=None)
        if latest is not None and datetime.fromisoformat(latest) > self.now():
            raise ValueError(f"simulated events reach {latest}, which is in the future")
