"""The incentive decision at the cart (funnel): which offer, if any, maximizes expected margin for this cart.

`offer_decide` runs, in order: the merchant's settings and the customer; a standing decision for the same cart
and channel (a storefront retry gets it back: no second row, no second reservation); opt-out, erasure and the
off switch; the live cart snapshot and its abandonment risk; the shopper's experiment arm on the offers
surface; the uplift policy (exploration with a stated propensity, else the kind of highest expected margin
from the uplift model) over the kinds this cart can get (a cart at or above the shop's free-shipping threshold
ships free anyway: neither the model, the exploration draw nor an experiment arm offers it free shipping);
then, inside one transaction, the customer's frequency cap (under the customer's row lock) and the day's budget
(one conditional UPDATE, so concurrent decisions can never overspend), and the one-time code. Every decision,
"none" included, is logged as an OfferDecision with its reason.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from catalog.selectors import products_by_reference
from events.abandonment import CartSnapshot
from events.identity import IdentityResolver
from events.models import Customer, Order, Session
from revopt.in_use import feature_in_use, feature_used
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

from ..models import DecisionReason, IncentiveKind, OfferBudgetDay, OfferDecision, OfferSettings
from ..selectors.offers import (
    allowed_incentive_kinds,
    cart_has_live_offer,
    offer_settings_for,
    offers_in_window,
    standing_decision,
)

logger = logging.getLogger(__name__)

CODE_PREFIX = "RVO-"
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: typed from an e-mail or read aloud
CODE_LENGTH = 8
PERCENT_OFF: dict[str, int] = {IncentiveKind.PERCENT_5: 5, IncentiveKind.PERCENT_10: 10}
POLICY_NONE = "none"
POLICY_BLANKET = "blanket"
POLICY_UPLIFT = "uplift"
CENT = Decimal("0.01")
_CART_UNSEEN = frozenset({DecisionReason.OPTED_OUT, DecisionReason.DISABLED, DecisionReason.ALREADY_DECIDED})
_CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "$", "AUD": "$", "JPY": "¥"}

# Exploration draws: unpredictable in production (a shopper cannot game them), seeded by a simulation.
_exploration_random = random.Random()


def offer_exploration_seed(seed: int) -> None:
    """Make this process's exploration draws repeatable (a simulated study run twice gives the same figures)."""
    _exploration_random.seed(seed)


@dataclass(frozen=True)
class CartLineInput:
    sku: str
    quantity: int
    price: Decimal


@dataclass(frozen=True)
class OfferRequest:
    """What the storefront sends to `POST /api/v1/offers/decide` (already validated by the serializer)."""

    cart_id: str
    lines: tuple[CartLineInput, ...]
    session_id: str = ""
    customer_external_id: str | None = None  # the shop's user id
    anonymous_id: str | None = None
    device: str = "other"
    source: str = ""
    # Behaviour the storefront counted in this session, keyed by events.abandonment.SIGNAL_NAMES.
    signals: dict[str, float] = field(default_factory=dict)
    channel: str = "onsite"  # loyalty.models.OfferChannel


@dataclass(frozen=True)
class OfferOutcome:
    decision: OfferDecision
    snapshot: CartSnapshot


@dataclass(frozen=True)
class _Choice:
    """What the policy wants before caps and budget: the kind, why, and the fallbacks in order of preference."""

    kind: str
    reason: str
    fallbacks: tuple[str, ...] = ()
    randomized: bool = False
    propensity: float | None = None


@dataclass(frozen=True)
class _Cart:
    value: Decimal
    margin: Decimal
    unknown_skus: tuple[str, ...]


@dataclass(frozen=True)
class _FreeShipping:
    """The cart against the shop's own free-shipping threshold (None when the shop has none)."""

    threshold: Decimal | None
    cart_value: Decimal

    @property
    def ships_free(self) -> bool:
        return self.threshold is not None and self.cart_value >= self.threshold

    def note(self, *, currency: str) -> str:
        """Why free shipping is not offered, or how far the cart is from shipping free ("" without a threshold)."""
        if self.threshold is None:
            return ""
        cart, threshold = _amount(self.cart_value, currency), _amount(self.threshold, currency)
        if self.ships_free:
            return f"already ships free: cart {cart} ≥ threshold {threshold}"
        return f"{_amount(self.threshold - self.cart_value, currency)} short of free shipping (threshold {threshold})"


# --- collaborators (imported late: events and loyalty selectors written alongside this module) -----------


def _live_snapshot(*, merchant: Merchant, customer: Customer, request: OfferRequest, at: datetime) -> CartSnapshot:
    from events.selectors.abandonment import cart_snapshot_live

    return cart_snapshot_live(
        merchant=merchant,
        customer=customer,
        session_external_id=request.session_id,
        lines=[(line.sku, line.quantity, line.price) for line in request.lines],
        device=request.device,
        source=request.source,
        signals=dict(request.signals),
        at=at,
    )


def _abandonment_probability(*, merchant: Merchant, snapshot: CartSnapshot) -> float | None:
    from events.selectors.abandonment import abandonment_score

    return abandonment_score(merchant=merchant, snapshot=snapshot)


def _order_probabilities(
    *, merchant: Merchant, snapshot: CartSnapshot, kinds: Sequence[str]
) -> dict[str, float] | None:
    from ..selectors.uplift import incentive_order_probabilities

    return incentive_order_probabilities(merchant=merchant, snapshot=snapshot, kinds=kinds)


# --- the decision -----------------------------------------------------------------------------------------


def offer_decide(*, merchant: Merchant, request: OfferRequest, now: datetime | None = None) -> OfferOutcome:
    """Decide, log and (for an offer) reserve budget and issue a one-time code. Always returns a logged
    decision; `decision.kind == "none"` with its reason when nothing is offered."""
    now = now or timezone.now()
    settings = offer_settings_for(merchant=merchant)
    customer = _customer_resolve(merchant=merchant, request=request, at=now)
    standing = standing_decision(
        merchant=merchant,
        cart_id=request.cart_id,
        channel=request.channel,
        now=now,
        valid_hours=settings.offer_valid_hours,
    )
    if standing is not None:
        return OfferOutcome(decision=standing, snapshot=_snapshot_of(standing))

    cart = _cart_value_and_margin(merchant=merchant, lines=request.lines, settings=settings)
    shipping = _FreeShipping(threshold=settings.free_shipping_threshold, cart_value=cart.value)
    row = OfferDecision(
        merchant=merchant,
        customer=customer,
        session=_session(merchant=merchant, external_id=request.session_id),
        session_external_id=request.session_id[:100],
        cart_id=request.cart_id,
        channel=request.channel,
        decided_at=now,
        kind=IncentiveKind.NONE,
        cart_value=cart.value,
        cart_margin=cart.margin,
    )
    choice: _Choice | None = None
    if customer.erased_at is not None or customer.personalization_opt_out:
        # Nothing about the shopper is read or kept: no history, no score, no features.
        snapshot = _bare_snapshot(merchant=merchant, request=request, cart=cart, at=now)
        choice = _Choice(kind=IncentiveKind.NONE, reason=DecisionReason.OPTED_OUT)
    elif not settings.enabled:
        snapshot = _bare_snapshot(merchant=merchant, request=request, cart=cart, at=now)
        choice = _Choice(kind=IncentiveKind.NONE, reason=DecisionReason.DISABLED)
    else:
        snapshot = _live_snapshot(merchant=merchant, customer=customer, request=request, at=now)
        row.features = snapshot_features_json(snapshot)
        row.abandonment_probability = _abandonment_probability(merchant=merchant, snapshot=snapshot)
        if cart_has_live_offer(merchant=merchant, cart_id=request.cart_id, now=now):
            # One live code per cart, whatever the channel: a recovery message does not stack a second offer.
            choice = _Choice(kind=IncentiveKind.NONE, reason=DecisionReason.ALREADY_DECIDED)
    if choice is None:
        choice = _experiment_choice(merchant=merchant, request=request, row=row, now=now, shipping=shipping)
    if choice is None:
        allowed = allowed_incentive_kinds(settings=settings)
        kinds = _kinds_for_cart(kinds=allowed, shipping=shipping)
        if allowed and not kinds:
            # Free shipping was the only incentive allowed, and this cart already has it.
            choice = _Choice(kind=IncentiveKind.NONE, reason=DecisionReason.ALREADY_SHIPS_FREE)
        else:
            costs = {kind: incentive_cost(kind=kind, cart_value=cart.value, settings=settings) for kind in kinds}
            choice = _uplift_choice(
                merchant=merchant, snapshot=snapshot, kinds=kinds, costs=costs, cart=cart, row=row, settings=settings
            )
    # Whether the cart ships free, or how far it is from it, matters only where a policy looked at the cart.
    shipping_note = "" if choice.reason in _CART_UNSEEN else shipping.note(currency=merchant.currency)
    decision = _issue(
        merchant=merchant,
        customer=customer,
        settings=settings,
        row=row,
        choice=choice,
        cart=cart,
        now=now,
        shipping_note=shipping_note,
    )
    return OfferOutcome(decision=decision, snapshot=snapshot)


def _kinds_for_cart(*, kinds: tuple[str, ...], shipping: _FreeShipping) -> tuple[str, ...]:
    """The allowed kinds this cart can get: not free shipping once it ships free anyway. The exploration draw is
    uniform over these (and "none"), so its recorded propensity stays the true one for this cart."""
    if not shipping.ships_free:
        return kinds
    return tuple(kind for kind in kinds if kind != IncentiveKind.FREE_SHIPPING)


def snapshot_features_json(snapshot: CartSnapshot) -> dict:
    """The snapshot as stored on the decision (the uplift model's training row): plain JSON values."""
    return json.loads(json.dumps(dataclasses.asdict(snapshot), default=_plain))


def _plain(value: object) -> object:
    # numpy scalars and Decimals from the snapshot builders
    if hasattr(value, "item"):
        return value.item()
    return float(value)


def incentive_cost(*, kind: str, cart_value: Decimal, settings: OfferSettings) -> Decimal:
    """The most an incentive can cost the merchant on this cart (what the day's budget reserves)."""
    if kind in PERCENT_OFF:
        cost = cart_value * PERCENT_OFF[kind] / 100
    elif kind == IncentiveKind.FREE_SHIPPING:
        cost = Decimal(settings.shipping_cost)
    elif kind == IncentiveKind.POINTS:
        cost = settings.points_bonus * Decimal(settings.point_value)
    else:
        cost = Decimal(0)
    return cost.quantize(CENT, rounding=ROUND_HALF_UP)


def incentive_value(*, kind: str, settings: OfferSettings) -> float:
    """The decision's `value`: percent off, or points awarded (0 for free shipping and none)."""
    if kind in PERCENT_OFF:
        return float(PERCENT_OFF[kind])
    if kind == IncentiveKind.POINTS:
        return float(settings.points_bonus)
    return 0.0


def incentive_label(*, kind: str, value: float) -> str:
    if kind == IncentiveKind.POINTS:
        return f"{int(value)} bonus loyalty points"
    return str(IncentiveKind(kind).label)


def _customer_resolve(*, merchant: Merchant, request: OfferRequest, at: datetime) -> Customer:
    """The shopper, created on first sight as the events ingest would (and linked to the anonymous id)."""
    for attempt in range(2):
        resolver = IdentityResolver(
            merchant=merchant,
            user_ids=[request.customer_external_id] if request.customer_external_id else [],
            anonymous_ids=[request.anonymous_id] if request.anonymous_id else [],
        )
        customer = resolver.resolve(
            user_id=request.customer_external_id or None, anonymous_id=request.anonymous_id or None, seen_at=at
        )
        try:
            with transaction.atomic():
                resolver.flush()
            return resolver.canonical(customer)
        except IntegrityError:
            # The same shopper's first request and its retry raced to create them: read the winner.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _session(*, merchant: Merchant, external_id: str) -> Session | None:
    if not external_id:
        return None
    return Session.objects.for_merchant(merchant).filter(external_id=external_id).first()


def _cart_value_and_margin(*, merchant: Merchant, lines: Sequence[CartLineInput], settings: OfferSettings) -> _Cart:
    """Σ quantity·price and Σ quantity·(price − cost); the default margin rate where the cost is unknown."""
    products = products_by_reference(merchant=merchant, references={line.sku for line in lines})
    value = Decimal(0)
    margin = Decimal(0)
    unknown: list[str] = []
    rate = Decimal(str(settings.default_margin_rate))
    for line in lines:
        value += line.quantity * line.price
        product = products.get(line.sku)
        if product is None:
            unknown.append(line.sku)
        if product is None or product.cost is None:
            margin += line.quantity * line.price * rate
        else:
            margin += line.quantity * (line.price - product.cost)
    return _Cart(
        value=value.quantize(CENT, rounding=ROUND_HALF_UP),
        margin=margin.quantize(CENT, rounding=ROUND_HALF_UP),
        unknown_skus=tuple(dict.fromkeys(unknown)),
    )


def cart_unknown_skus(*, merchant: Merchant, skus: Sequence[str]) -> list[str]:
    """The cart's skus the catalog does not know (their margin is the default rate's)."""
    known = products_by_reference(merchant=merchant, references=set(skus))
    return [sku for sku in dict.fromkeys(skus) if sku not in known]


def _bare_snapshot(*, merchant: Merchant, request: OfferRequest, cart: _Cart, at: datetime) -> CartSnapshot:
    """The cart alone, without the shopper's history or behaviour (for opted-out and erased customers)."""
    local = at.astimezone(ZoneInfo(merchant.timezone))
    return CartSnapshot(
        cart_value=float(cart.value),
        items=sum(line.quantity for line in request.lines),
        distinct_products=len({line.sku for line in request.lines}),
        device=request.device,
        source=request.source,
        hour_of_day=local.hour,
        weekday=local.weekday(),
        logged_in=bool(request.customer_external_id),
    )


def _snapshot_of(decision: OfferDecision) -> CartSnapshot:
    """The snapshot a standing decision saw (its stored features; the cart alone when none were kept)."""
    names = {f.name for f in dataclasses.fields(CartSnapshot)}
    try:
        return CartSnapshot(**{key: value for key, value in (decision.features or {}).items() if key in names})
    except TypeError:
        return CartSnapshot(
            cart_value=float(decision.cart_value),
            items=0,
            distinct_products=0,
            device="other",
            source="",
            hour_of_day=decision.decided_at.hour,
            weekday=decision.decided_at.weekday(),
            logged_in=decision.customer.external_id is not None,
        )


def _experiment_choice(
    *, merchant: Merchant, request: OfferRequest, row: OfferDecision, now: datetime, shipping: _FreeShipping
) -> _Choice | None:
    """The shopper's arm on the offers surface, recorded on the row; None when the uplift policy decides. A
    blanket free-shipping arm gives a cart that already ships free nothing (what that policy means there: the
    shop ships it free anyway), logged as such and still counted in its arm."""
    from experiments.models import Surface
    from experiments.services.assignment import surface_assignment

    assignment = surface_assignment(
        merchant=merchant,
        surface=Surface.OFFERS,
        customer_external_id=request.customer_external_id,
        anonymous_id=request.anonymous_id,
        device=request.device,
        at=now,
    )
    if assignment is None or assignment.variant_key is None:
        return None
    row.experiment_key = assignment.experiment_key[:100]
    row.variant_key = assignment.variant_key[:100]
    policy = assignment.config.get("policy", POLICY_UPLIFT)
    if policy == POLICY_NONE:
        return _Choice(kind=IncentiveKind.NONE, reason=DecisionReason.EXPERIMENT_ARM)
    if policy == POLICY_BLANKET:
        kind = assignment.config.get("kind")
        if kind not in IncentiveKind.values:
            logger.warning("offers experiment %s: unknown blanket kind %r", assignment.experiment_key, kind)
            kind = IncentiveKind.NONE
        if kind == IncentiveKind.FREE_SHIPPING and shipping.ships_free:
            return _Choice(kind=IncentiveKind.NONE, reason=DecisionReason.ALREADY_SHIPS_FREE)
        return _Choice(kind=kind, reason=DecisionReason.EXPERIMENT_ARM)
    return None


def _uplift_choice(
    *,
    merchant: Merchant,
    snapshot: CartSnapshot,
    kinds: tuple[str, ...],
    costs: dict[str, Decimal],
    cart: _Cart,
    row: OfferDecision,
    settings: OfferSettings,
) -> _Choice:
    arms = (IncentiveKind.NONE.value, *kinds)
    if kinds and _exploration_random.random() < settings.exploration_share:
        return _Choice(
            kind=_exploration_random.choice(arms),
            reason=DecisionReason.EXPLORATION,
            randomized=True,
            propensity=1 / len(arms),
        )
    probabilities = _order_probabilities(merchant=merchant, snapshot=snapshot, kinds=arms) if kinds else None
    if probabilities is None or IncentiveKind.NONE not in probabilities:
        return _Choice(kind=IncentiveKind.NONE, reason=DecisionReason.NO_MODEL)
    # A kind allowed after the model was trained, or left out of it for lack of data, is not scored.
    kinds = tuple(kind for kind in kinds if kind in probabilities)
    arms = (IncentiveKind.NONE.value, *kinds)
    margin = float(cart.margin)
    expected = {IncentiveKind.NONE.value: probabilities[IncentiveKind.NONE] * margin}
    for kind in kinds:
        expected[kind] = probabilities[kind] * (margin - float(costs[kind]))
    row.scores = {
        kind: {"p_order": round(probabilities[kind], 6), "expected_margin": round(expected[kind], 4)} for kind in arms
    }
    paying = sorted(
        (kind for kind in kinds if expected[kind] > expected[IncentiveKind.NONE]), key=lambda k: -expected[k]
    )
    if not paying:
        return _Choice(kind=IncentiveKind.NONE, reason=DecisionReason.NO_OFFER_PAYS)
    return _Choice(kind=paying[0], reason=DecisionReason.BEST_EXPECTED_MARGIN, fallbacks=tuple(paying[1:]))


def _issue(
    *,
    merchant: Merchant,
    customer: Customer,
    settings: OfferSettings,
    row: OfferDecision,
    choice: _Choice,
    cart: _Cart,
    now: datetime,
    shipping_note: str = "",
) -> OfferDecision:
    """Caps, budget and code in one transaction; the row is written whatever the outcome."""
    with transaction.atomic():
        # The customer's lock serializes their decisions: the cap count and the retry check cannot race.
        Customer.objects.select_for_update().filter(pk=customer.pk).first()
        standing = standing_decision(
            merchant=merchant, cart_id=row.cart_id, channel=row.channel, now=now, valid_hours=settings.offer_valid_hours
        )
        if standing is not None:
            return standing
        kind, reason = choice.kind, choice.reason
        randomized, propensity = choice.randomized, choice.propensity
        cost = Decimal(0)
        if kind != IncentiveKind.NONE:
            since = now - timedelta(days=settings.frequency_window_days)
            if offers_in_window(merchant=merchant, customer=customer, since=since) >= settings.max_offers_per_customer:
                kind, reason = IncentiveKind.NONE, DecisionReason.CUSTOMER_CAP
            else:
                issued = _reserve_first_fitting(
                    merchant=merchant, settings=settings, cart=cart, candidates=(kind, *choice.fallbacks), now=now
                )
                if issued is None:
                    kind, reason = IncentiveKind.NONE, DecisionReason.BUDGET_EXHAUSTED
                else:
                    kind, cost = issued
            if kind != choice.kind:
                # What the shopper got is no longer the random draw: keep it out of the randomized data.
                randomized, propensity = False, None
        row.kind = kind
        row.reason = reason
        row.randomized = randomized
        row.propensity = propensity
        row.cost = cost
        row.value = incentive_value(kind=kind, settings=settings)
        _fill_uplift(row)
        row.explanation = _explanation(row, currency=merchant.currency, shipping_note=shipping_note)[:300]
        feature_used(feature="offers", merchant_id=merchant.pk)
        if kind == IncentiveKind.NONE:
            row.save()
            return row
        row.expires_at = now + timedelta(hours=settings.offer_valid_hours)
        _save_with_code(row)
    return row


def _reserve_first_fitting(
    *, merchant: Merchant, settings: OfferSettings, cart: _Cart, candidates: Sequence[str], now: datetime
) -> tuple[str, Decimal] | None:
    """Reserve the first candidate whose cost fits what is left of the day's budget: ONE conditional UPDATE
    per candidate, so the day's spend never exceeds the budget, whatever the concurrency."""
    day = now.astimezone(ZoneInfo(merchant.timezone)).date()
    OfferBudgetDay.objects.get_or_create(merchant=merchant, day=day)
    budget = Decimal(settings.daily_budget)
    for kind in candidates:
        cost = incentive_cost(kind=kind, cart_value=cart.value, settings=settings)
        reserved = OfferBudgetDay.objects.filter(merchant=merchant, day=day, spent__lte=budget - cost).update(
            spent=F("spent") + cost, offers=F("offers") + 1
        )
        if reserved:
            return kind, cost
    return None


def _save_with_code(row: OfferDecision) -> None:
    for attempt in range(5):
        row.code = CODE_PREFIX + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        try:
            with transaction.atomic():
                row.save()
            return
        except IntegrityError:
            row.pk = None
            if attempt == 4:
                raise


def _fill_uplift(row: OfferDecision) -> None:
    scores = row.scores or {}
    none = scores.get(IncentiveKind.NONE)
    chosen = scores.get(row.kind)
    if none is None or chosen is None:
        return
    row.expected_uplift = chosen["p_order"] - none["p_order"]
    row.expected_margin_gain = chosen["expected_margin"] - none["expected_margin"]


def _amount(amount: Decimal, currency: str) -> str:
    """An amount as the shop writes it: "$82.00", or "82.00 SEK" for a currency without a known sign."""
    sign = _CURRENCY_SIGNS.get(currency)
    return f"{sign}{amount:.2f}" if sign else f"{amount:.2f} {currency}"


def _money(amount: float, currency: str) -> str:
    """A signed amount: "+$3.10", "−2.00 SEK"."""
    return ("+" if amount >= 0 else "−") + _amount(abs(amount), currency)


def _explanation(row: OfferDecision, *, currency: str, shipping_note: str = "") -> str:
    """The decision in words, e.g. "10% off: order chance 41% → 55%, +$3.10 expected margin vs no offer;
    abandonment risk 72%", then the cart against the shop's free-shipping threshold when it has one
    ("; $12.50 short of free shipping (threshold $75.00)")."""
    risk = f"; abandonment risk {row.abandonment_probability:.0%}" if row.abandonment_probability is not None else ""
    if row.reason == DecisionReason.ALREADY_SHIPS_FREE:
        return f"No offer: {shipping_note or 'already ships free'}" + risk
    return _explanation_body(row, currency=currency) + risk + (f"; {shipping_note}" if shipping_note else "")


def _explanation_body(row: OfferDecision, *, currency: str) -> str:
    scores = row.scores or {}
    none = scores.get(IncentiveKind.NONE)
    if row.kind != IncentiveKind.NONE:
        label = incentive_label(kind=row.kind, value=row.value)
        chosen = scores.get(row.kind)
        if none is None or chosen is None:
            return f"{label}: {DecisionReason(row.reason).label.lower()}"
        gain = chosen["expected_margin"] - none["expected_margin"]
        return (
            f"{label}: order chance {none['p_order']:.0%} → {chosen['p_order']:.0%}, "
            f"{_money(gain, currency)} expected margin vs no offer"
        )
    if row.reason == DecisionReason.NO_OFFER_PAYS and none is not None:
        best = max((kind for kind in scores if kind != IncentiveKind.NONE), key=lambda k: scores[k]["expected_margin"])
        gain = scores[best]["expected_margin"] - none["expected_margin"]
        return (
            f"No offer: the best incentive ({IncentiveKind(best).label.lower()}) would change expected margin by "
            f"{_money(gain, currency)} (order chance {none['p_order']:.0%} → {scores[best]['p_order']:.0%})"
        )
    return f"No offer: {DecisionReason(row.reason).label.lower()}"


def offer_settings_save(*, settings: OfferSettings, actor: AbstractBaseUser | None) -> OfferSettings:
    """Change a merchant's offer rules (the admin), audited."""
    created = settings.pk is None
    settings.save()
    audit_log_write(
        merchant=settings.merchant,
        actor=actor,
        action="offers.settings_created" if created else "offers.settings_changed",
        target=settings,
        detail={
            "enabled": settings.enabled,
            "daily_budget": str(settings.daily_budget),
            "max_offers_per_customer": settings.max_offers_per_customer,
            "frequency_window_days": settings.frequency_window_days,
            "exploration_share": settings.exploration_share,
            "allowed_kinds": list(settings.allowed_kinds or []),
            "free_shipping_threshold": (
                None if settings.free_shipping_threshold is None else str(settings.free_shipping_threshold)
            ),
        },
    )
    return settings


# --- redemption and outcomes ------------------------------------------------------------------------------


def offer_code_redeem(*, merchant: Merchant, code: str, order_id: int, at: datetime) -> OfferDecision | None:
    """Mark the offer with this code redeemed by the order, once: None when the code is unknown, expired or
    already redeemed by another order. The winning redemption, in the same transaction, adds what the
    incentive costs beyond the order's discount to the order's `incentive_cost` (what margins subtract)."""
    code = code.strip().upper()
    if not code:
        return None
    offers = OfferDecision.objects.for_merchant(merchant).filter(code=code).exclude(kind=IncentiveKind.NONE)
    with transaction.atomic():
        redeemed = offers.filter(redeemed_order__isnull=True, expires_at__gt=at).update(
            redeemed_order_id=order_id, redeemed_at=at
        )
        decision = offers.first()
        if decision is None:
            return None
        if redeemed:
            cost = order_incentive_cost(decision)
            if cost:
                # Added, not set: an order that redeemed two codes through the API cost both.
                Order.objects.for_merchant(merchant).filter(pk=order_id).update(
                    incentive_cost=F("incentive_cost") + cost
                )
            return decision
    if decision.redeemed_order_id == order_id:
        return decision
    return None


def order_incentive_cost(decision: OfferDecision) -> Decimal:
    """What a redeemed offer costs the merchant beyond the order's discount: the carrier still paid for free
    shipping, the bonus points' value; nothing for percent off, which the shop took off the order already."""
    if decision.kind in (IncentiveKind.FREE_SHIPPING, IncentiveKind.POINTS):
        return Decimal(decision.cost)
    return Decimal(0)


def offers_in_use(*, merchant_id: int) -> bool:
    """Whether the shop ever decided an offer (cached: the ingest path asks for every batch with orders)."""
    return feature_in_use(
        feature="offers",
        merchant_id=merchant_id,
        check=lambda: OfferDecision.objects.for_merchant(merchant_id).exists(),
    )


def offer_outcomes_record(*, merchant: Merchant, order_ids: list[int]) -> int:
    """What freshly placed orders did to the offers: an order whose coupon is an offer code redeems it (the
    first order wins), and the first order of a session, or of the customer within the offer's validity, is
    the decision's outcome (`converted_order`, what the uplift model learns). Returns the decisions touched.
    No query for a shop that never decided an offer (cached)."""
    if not order_ids or not offers_in_use(merchant_id=merchant.pk):
        return 0
    orders = list(
        Order.objects.for_merchant(merchant)
        .filter(pk__in=order_ids)
        .select_related("session")
        .order_by("placed_at", "pk")
        .only("pk", "placed_at", "coupon", "customer_id", "session_id", "session__external_id")
    )
    if not orders:
        return 0
    touched = 0
    for order in orders:
        if order.coupon and order.coupon.strip().upper().startswith(CODE_PREFIX):
            touched += (
                offer_code_redeem(merchant=merchant, code=order.coupon, order_id=order.pk, at=order.placed_at)
                is not None
            )

    earliest = orders[0].placed_at
    valid_hours = OfferSettings.objects.filter(merchant=merchant).values_list("offer_valid_hours", flat=True).first()
    window = timedelta(hours=valid_hours or OfferSettings._meta.get_field("offer_valid_hours").default)
    session_keys = {order.session.external_id for order in orders if order.session is not None}
    open_decisions = list(
        OfferDecision.objects.for_merchant(merchant)
        .filter(converted_order__isnull=True, decided_at__gte=earliest - window)
        .filter(
            Q(customer_id__in={order.customer_id for order in orders})
            | Q(session_id__in={order.session_id for order in orders if order.session_id})
            | Q(session_external_id__in=session_keys)
        )
        .order_by("decided_at", "pk")
        .values_list("pk", "customer_id", "session_id", "session_external_id", "decided_at")
    )
    for pk, customer_id, session_id, session_key, decided_at in open_decisions:
        for order in orders:
            if order.placed_at < decided_at:
                continue
            same_session = (session_id is not None and session_id == order.session_id) or (
                bool(session_key) and order.session is not None and order.session.external_id == session_key
            )
            within_validity = customer_id == order.customer_id and order.placed_at <= decided_at + window
            if same_session or within_validity:
                touched += OfferDecision.objects.filter(pk=pk, converted_order__isnull=True).update(
                    converted_order_id=order.pk
                )
                break
    return touched
