"""Storefront offer endpoints (API key): decide the incentive for a cart, redeem its one-time code, check a
code at checkout. The merchant always comes from the key; another merchant's code is simply unknown (404)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from events.abandonment import DEVICES, SIGNAL_NAMES
from events.models import Order
from revopt.api import UNAUTHORIZED_RESPONSE, ErrorResponseSerializer
from revopt.tenancy.api import MerchantAPIView

from ..models import IncentiveKind, OfferChannel, OfferDecision
from ..selectors.offers import offer_by_code
from ..services.offers import (
    CartLineInput,
    OfferRequest,
    cart_unknown_skus,
    incentive_label,
    offer_code_redeem,
    offer_decide,
)

MAX_LINES = 200
# Clocks drift: a storefront a little ahead of revopt is not refused.
AT_MAX_AHEAD = timedelta(minutes=5)

# --- serializers ---------------------------------------------------------------------------------


class OfferCartLineSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=100, help_text="The product's sku or the shop's product id.")
    quantity = serializers.IntegerField(min_value=1, max_value=100_000)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal(0), help_text="Unit price.")


class OfferCartLinesSerializer(serializers.ListSerializer):
    """Errors listed by position, so they read `lines[2].quantity` (DRF keys them by index)."""

    def to_internal_value(self, data: object) -> list:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as error:
            detail = error.detail
            if isinstance(detail, dict) and detail and all(isinstance(key, int) for key in detail):
                raise serializers.ValidationError([detail.get(index, {}) for index in range(max(detail) + 1)]) from None
            raise


class OfferDecideInputSerializer(serializers.Serializer):
    cart_id = serializers.CharField(max_length=100)
    session_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    user_id = serializers.CharField(max_length=100, required=False, allow_null=True, default=None)
    anonymous_id = serializers.CharField(max_length=100, required=False, allow_null=True, default=None)
    device = serializers.ChoiceField(choices=DEVICES, required=False, default="other")
    source = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    channel = serializers.ChoiceField(choices=OfferChannel.choices, required=False, default=OfferChannel.ONSITE)
    lines = OfferCartLinesSerializer(child=OfferCartLineSerializer(), allow_empty=False, max_length=MAX_LINES)
    at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The cart's moment (ISO 8601 with a time zone), for replays and backfills; defaults to now. "
        "Budgets, caps, codes' validity and the experiment exposure use it. At most 5 minutes ahead of now.",
    )
    signals = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        default=dict,
        help_text="The session's behaviour counted by the storefront: " + ", ".join(SIGNAL_NAMES) + " (numbers ≥ 0).",
    )

    def validate_at(self, at: datetime | None) -> datetime | None:
        if at is not None and timezone.is_naive(datetime.fromisoformat(str(self.initial_data["at"]))):
            # As the events API: a moment without a time zone is ambiguous, never guessed.
            raise serializers.ValidationError("Must include a time zone (e.g. 'Z' or '+00:00').")
        if at is not None and at > timezone.now() + AT_MAX_AHEAD:
            raise serializers.ValidationError("Must not be in the future.")
        return at

    def validate_signals(self, signals: dict) -> dict[str, float]:
        errors: dict[str, list[str]] = {}
        clean: dict[str, float] = {}
        for name, value in signals.items():
            if name not in SIGNAL_NAMES:
                errors[name] = ["Unknown signal; expected one of " + ", ".join(SIGNAL_NAMES) + "."]
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                errors[name] = ["A number ≥ 0 is required."]
            elif value == float("inf"):
                errors[name] = ["A finite number is required."]
            else:
                clean[name] = float(value)
        if errors:
            raise serializers.ValidationError(errors)
        return clean

    def validate(self, data: dict) -> dict:
        if not data.get("user_id") and not data.get("anonymous_id"):
            raise serializers.ValidationError({"anonymous_id": ["Send user_id or anonymous_id (one is required)."]})
        return data


class OfferIncentiveSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=IncentiveKind.choices)
    value = serializers.FloatField(help_text="Percent off, or points awarded (0 for free shipping).")
    code = serializers.CharField(help_text="One-time code the checkout accepts.")
    expires_at = serializers.DateTimeField()
    label = serializers.CharField()


class OfferExperimentSerializer(serializers.Serializer):
    key = serializers.CharField()
    variant = serializers.CharField()


class OfferDecisionSerializer(serializers.Serializer):
    decision_id = serializers.IntegerField()
    cart_id = serializers.CharField()
    incentive = OfferIncentiveSerializer(allow_null=True, help_text="null when nothing is offered.")
    reason = serializers.CharField()
    explanation = serializers.CharField()
    abandonment_probability = serializers.FloatField(allow_null=True)
    expected_uplift = serializers.FloatField(allow_null=True)
    experiment = OfferExperimentSerializer(allow_null=True)
    unknown_skus = serializers.ListField(
        child=serializers.CharField(),
        help_text="Skus the catalog does not know: accepted, their margin is the shop's default margin rate.",
    )


class RedeemOfferInputSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=40)
    order_id = serializers.CharField(max_length=100, help_text="The shop's order id, as sent in Order Completed.")


class OfferCodeSerializer(serializers.Serializer):
    code = serializers.CharField()
    valid = serializers.BooleanField(help_text="True while unredeemed and unexpired.")
    status = serializers.ChoiceField(choices=["valid", "redeemed", "expired"])
    kind = serializers.ChoiceField(choices=IncentiveKind.choices)
    value = serializers.FloatField()
    label = serializers.CharField()
    cart_id = serializers.CharField()
    expires_at = serializers.DateTimeField()


# --- helpers -------------------------------------------------------------------------------------


def _error(field: str, reason: str, code: int) -> Response:
    return Response({"errors": [{"field": field, "reason": reason}]}, status=code)


def _incentive_body(decision: OfferDecision) -> dict | None:
    if decision.kind == IncentiveKind.NONE:
        return None
    return {
        "kind": decision.kind,
        "value": decision.value,
        "code": decision.code,
        "expires_at": decision.expires_at.isoformat(),
        "label": incentive_label(kind=decision.kind, value=decision.value),
    }


def _decision_body(decision: OfferDecision, *, unknown_skus: list[str]) -> dict:
    return {
        "decision_id": decision.pk,
        "cart_id": decision.cart_id,
        "incentive": _incentive_body(decision),
        "reason": decision.reason,
        "explanation": decision.explanation,
        "abandonment_probability": decision.abandonment_probability,
        "expected_uplift": decision.expected_uplift,
        "experiment": {"key": decision.experiment_key, "variant": decision.variant_key}
        if decision.variant_key
        else None,
        "unknown_skus": unknown_skus,
    }


def _code_status(decision: OfferDecision, now: datetime) -> str:
    if decision.redeemed_order_id is not None:
        return "redeemed"
    if decision.expires_at is None or decision.expires_at <= now:
        return "expired"
    return "valid"


def _code_body(decision: OfferDecision, now: datetime) -> dict:
    state = _code_status(decision, now)
    return {
        "code": decision.code,
        "valid": state == "valid",
        "status": state,
        "kind": decision.kind,
        "value": decision.value,
        "label": incentive_label(kind=decision.kind, value=decision.value),
        "cart_id": decision.cart_id,
        "expires_at": decision.expires_at.isoformat() if decision.expires_at else None,
    }


# --- views ---------------------------------------------------------------------------------------


class OfferDecideView(MerchantAPIView):
    @extend_schema(
        operation_id="offers_decide",
        summary="Decide the incentive for a cart",
        description=(
            "Chooses the incentive (free shipping, 5% or 10% off, bonus points, or nothing) that maximizes the "
            "cart's expected margin under the uplift model, within the customer's frequency cap and the day's "
            "budget, and answers a one-time code valid for the shop's offer validity. Every call is logged with "
            "its reason. A retry for the same `cart_id` and `channel` answers the first decision again (no second "
            "code, no second budget reservation). Customers who opted out of personalization get nothing "
            "(`opted_out`). Unknown skus are accepted: their margin is the shop's default margin rate, and they "
            "are listed in `unknown_skus`. 400 names the field (`lines[2].quantity`, `signals.foo`)."
        ),
        request=OfferDecideInputSerializer,
        responses={200: OfferDecisionSerializer, 400: ErrorResponseSerializer, 401: UNAUTHORIZED_RESPONSE},
        examples=[
            OpenApiExample(
                "Decide",
                value={
                    "cart_id": "cart-8812",
                    "session_id": "s-77",
                    "user_id": "user-42",
                    "anonymous_id": "anon-9",
                    "device": "mobile",
                    "source": "newsletter",
                    "channel": "onsite",
                    "lines": [{"sku": "TEE-RED-M", "quantity": 2, "price": "24.00"}],
                    "signals": {"product_views": 6, "shipping_info_views": 1, "seconds_on_site": 410},
                },
                request_only=True,
            ),
            OpenApiExample(
                "An offer",
                value={
                    "decision_id": 1031,
                    "cart_id": "cart-8812",
                    "incentive": {
                        "kind": "percent_10",
                        "value": 10.0,
                        "code": "RVO-K7QF2MZP",
                        "expires_at": "2026-11-25T16:00:00+00:00",
                        "label": "10% off",
                    },
                    "reason": "best_expected_margin",
                    "explanation": "10% off: order chance 41% → 55%, +$3.10 expected margin vs no offer; "
                    "abandonment risk 72%",
                    "abandonment_probability": 0.72,
                    "expected_uplift": 0.14,
                    "experiment": None,
                    "unknown_skus": [],
                },
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        shape = OfferDecideInputSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        data = shape.validated_data
        offer_request = OfferRequest(
            cart_id=data["cart_id"],
            lines=tuple(
                CartLineInput(sku=line["sku"], quantity=line["quantity"], price=line["price"]) for line in data["lines"]
            ),
            session_id=data["session_id"],
            customer_external_id=data["user_id"] or None,
            anonymous_id=data["anonymous_id"] or None,
            device=data["device"],
            source=data["source"],
            signals=data["signals"],
            channel=data["channel"],
        )
        outcome = offer_decide(merchant=self.merchant, request=offer_request, now=data["at"])
        unknown = cart_unknown_skus(merchant=self.merchant, skus=[line.sku for line in offer_request.lines])
        return Response(_decision_body(outcome.decision, unknown_skus=unknown))


class OfferRedeemView(MerchantAPIView):
    @extend_schema(
        operation_id="offers_redeem",
        summary="Redeem an offer's one-time code",
        description=(
            "Marks the code used by the order (the shop's `order_id`, already sent as Order Completed). Once: "
            "the same order again answers 200; 409 names `code` when another order redeemed it or it expired; "
            "404 names `code` or `order_id` when the shop has no such code or order. Orders whose `coupon` is an "
            "offer code redeem it on ingest too, so this call is only needed when the coupon is not sent."
        ),
        request=RedeemOfferInputSerializer,
        responses={
            200: OfferCodeSerializer,
            400: ErrorResponseSerializer,
            401: UNAUTHORIZED_RESPONSE,
            404: OpenApiResponse(ErrorResponseSerializer, description="No such code or order."),
            409: OpenApiResponse(ErrorResponseSerializer, description="Already redeemed by another order, or expired."),
        },
    )
    def post(self, request: Request) -> Response:
        shape = RedeemOfferInputSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        data = shape.validated_data
        offer = offer_by_code(merchant=self.merchant, code=data["code"])
        if offer is None:
            return _error("code", "No offer with this code.", status.HTTP_404_NOT_FOUND)
        order = Order.objects.for_merchant(self.merchant).filter(external_id=data["order_id"]).only("pk").first()
        if order is None:
            return _error("order_id", "No order with this id.", status.HTTP_404_NOT_FOUND)
        now = timezone.now()
        redeemed = offer_code_redeem(merchant=self.merchant, code=offer.code, order_id=order.pk, at=now)
        if redeemed is None:
            offer.refresh_from_db()
            reason = "This code was already used by another order." if offer.redeemed_order_id else "This code expired."
            return _error("code", reason, status.HTTP_409_CONFLICT)
        return Response(_code_body(redeemed, now))


class OfferCodeView(MerchantAPIView):
    @extend_schema(
        operation_id="offers_code",
        summary="Is an offer code valid now",
        description="For the checkout: the code's incentive and whether it can still be used (`status`).",
        responses={
            200: OfferCodeSerializer,
            401: UNAUTHORIZED_RESPONSE,
            404: OpenApiResponse(ErrorResponseSerializer, description="No such code."),
        },
    )
    def get(self, request: Request, code: str) -> Response:
        offer = offer_by_code(merchant=self.merchant, code=code)
        if offer is None:
            return _error("code", "No offer with this code.", status.HTTP_404_NOT_FOUND)
        return Response(_code_body(offer, timezone.now()))
