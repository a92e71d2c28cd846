"""Shared set-up of the offer tests: a stub uplift model, a fixed abandonment risk and requests. Each test
module wraps `stub_uplift` and `stub_collaborators` in its own fixtures."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from events.abandonment import CartSnapshot
from loyalty.services import offers
from loyalty.services.offers import CartLineInput, OfferRequest

# P(order | kind) of the stub uplift model: 10% off pays most on a 100.00 cart with a 35% default margin.
STUB_PROBABILITIES = {"none": 0.40, "free_shipping": 0.42, "percent_5": 0.45, "percent_10": 0.65, "points": 0.44}
RISK = 0.72


def request_for(cart_id: str = "cart-1", *, user_id: str | None = "user-1", anonymous_id: str | None = None,
                value: str = "100.00", sku: str = "UNKNOWN-SKU", **fields) -> OfferRequest:  # fmt: skip
    return OfferRequest(
        cart_id=cart_id,
        lines=(CartLineInput(sku=sku, quantity=1, price=Decimal(value)),),
        session_id=fields.pop("session_id", f"session-{cart_id}"),
        customer_external_id=user_id,
        anonymous_id=anonymous_id,
        **fields,
    )


def _stand_in_snapshot(*, merchant, customer, request, at) -> CartSnapshot:
    return CartSnapshot(
        cart_value=float(sum(line.quantity * line.price for line in request.lines)),
        items=sum(line.quantity for line in request.lines),
        distinct_products=len(request.lines),
        device=request.device,
        source=request.source,
        hour_of_day=at.hour,
        weekday=at.weekday(),
        logged_in=request.customer_external_id is not None,
        signals=dict(request.signals),
    )


def stub_uplift(monkeypatch: pytest.MonkeyPatch) -> object:
    """Inject the uplift model: set `uplift.probabilities` (None = no model); records the kinds asked for."""

    class StubUplift:
        probabilities: dict[str, float] | None = dict(STUB_PROBABILITIES)
        asked: list[tuple[str, ...]] = []

        def __call__(self, *, merchant, snapshot, kinds):
            self.asked.append(tuple(kinds))
            if self.probabilities is None:
                return None
            return {kind: self.probabilities[kind] for kind in kinds if kind in self.probabilities}

    stub = StubUplift()
    monkeypatch.setattr(offers, "_order_probabilities", stub)
    return stub


def stub_collaborators(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed abandonment risk, a seeded exploration draw, and a stand-in snapshot while the events
    selector is not importable."""
    monkeypatch.setattr(offers, "_abandonment_probability", lambda *, merchant, snapshot: RISK)
    monkeypatch.setattr(offers, "_exploration_random", random.Random(7))
    try:
        from events.selectors.abandonment import cart_snapshot_live  # noqa: F401
    except ImportError:
        monkeypatch.setattr(offers, "_live_snapshot", _stand_in_snapshot)
