"""Storefront cart-recovery endpoints (API key): the merchant's e-mail/SMS tool pulls the due follow-ups of
abandoned carts and acks what it did with them. The merchant always comes from the key.

Delivery is at most once: a pulled message is marked "sent" as it is handed over, so two pollers (or a
poller and the webhook) never get the same message; a tool that then fails to deliver it acks "failed" with
the reason. A reminder lost to a crashing poller is cheaper than a shopper mailed twice.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from revopt.api import UNAUTHORIZED_RESPONSE, ErrorResponseSerializer
from revopt.tenancy.api import MerchantAPIView

from ..models import RecoveryStatus
from ..services.recovery import ERROR_MAX, RecoveryAckError, recovery_message_ack, recovery_messages_hand_over

PULL_LIMIT_MAX = 100
PULL_LIMIT_DEFAULT = 50


# --- serializers ---------------------------------------------------------------------------------


class PullInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["due"], required=False, default="due", help_text='Only "due" messages are handed over.'
    )
    limit = serializers.IntegerField(min_value=1, max_value=PULL_LIMIT_MAX, default=PULL_LIMIT_DEFAULT)


class RecoveryItemSerializer(serializers.Serializer):
    sku = serializers.CharField()
    title = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    quantity = serializers.IntegerField()
    image_url = serializers.CharField(allow_blank=True)
    url = serializers.CharField(allow_blank=True)


class RecoveryRecommendationSerializer(serializers.Serializer):
    product_id = serializers.CharField(help_text="The storefront's product id (external id, else SKU).")
    sku = serializers.CharField()
    title = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)


class RecoveryOfferSerializer(serializers.Serializer):
    kind = serializers.CharField()
    value = serializers.FloatField(help_text="Percent off, or bonus points.")
    code = serializers.CharField(help_text="One-time code the checkout accepts.")
    expires_at = serializers.DateTimeField(allow_null=True)
    explanation = serializers.CharField(allow_blank=True)


class RecoveryContentSerializer(serializers.Serializer):
    items = RecoveryItemSerializer(many=True)
    recommendations = RecoveryRecommendationSerializer(many=True)
    offer = RecoveryOfferSerializer(allow_null=True, help_text="Only on the last step, when an incentive pays.")


class RecoveryMessageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    customer_id = serializers.CharField(help_text="The shop's user id.")
    email = serializers.EmailField()
    cart_id = serializers.CharField()
    step = serializers.IntegerField(help_text="1 = first follow-up.")
    steps = serializers.IntegerField(help_text="How many follow-ups a cart gets.")
    abandoned_at = serializers.DateTimeField()
    scheduled_at = serializers.DateTimeField()
    cart_value = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    content = RecoveryContentSerializer()


class PullOutputSerializer(serializers.Serializer):
    messages = RecoveryMessageSerializer(many=True)


class AckInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[RecoveryStatus.SENT.value, RecoveryStatus.FAILED.value])
    error = serializers.CharField(max_length=ERROR_MAX, required=False, default="", allow_blank=True)

    def validate(self, data: dict) -> dict:
        if data["status"] == RecoveryStatus.FAILED and not data["error"].strip():
            raise serializers.ValidationError({"error": ["Say why the message could not be delivered."]})
        return data


class AckOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()


# --- views ---------------------------------------------------------------------------------------


def _error(field: str, reason: str, code: int) -> Response:
    return Response({"errors": [{"field": field, "reason": reason}]}, status=code)


class RecoveryMessagesView(MerchantAPIView):
    @extend_schema(
        operation_id="recovery_messages_pull",
        summary="Take the due cart-recovery messages",
        request=PullInputSerializer,
        description=(
            "The follow-ups of abandoned carts that are due now, oldest first, each with its content (the "
            "cart's items, suggestions for the cart, and on the last step an incentive with a one-time code). "
            "Handing a message over marks it sent: it is never handed over again (at most once). Send it, "
            "then ack it; ack `failed` when it could not be delivered. Messages whose customer withdrew "
            "consent, unsubscribed, was erased or ordered since are cancelled instead of handed over. A POST, "
            f"not a GET: taking messages changes them (a prefetcher must not). `limit` 1 to {PULL_LIMIT_MAX} "
            f"(default {PULL_LIMIT_DEFAULT})."
        ),
        responses={200: PullOutputSerializer, 400: ErrorResponseSerializer, 401: UNAUTHORIZED_RESPONSE},
    )
    def post(self, request: Request) -> Response:
        shape = PullInputSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        messages = recovery_messages_hand_over(merchant=self.merchant, limit=shape.validated_data["limit"])
        return Response({"messages": messages})


class RecoveryMessageAckView(MerchantAPIView):
    @extend_schema(
        operation_id="recovery_message_ack",
        summary="Report what became of a pulled message",
        description=(
            "`sent` confirms delivery; `failed` (with `error`) records a bounce or a refusal, shown to the "
            "merchant. Acking again replaces the earlier answer. 404 for a message of another shop, 409 for a "
            "message that was never handed over (pending or cancelled)."
        ),
        request=AckInputSerializer,
        responses={
            200: AckOutputSerializer,
            400: ErrorResponseSerializer,
            401: UNAUTHORIZED_RESPONSE,
            404: OpenApiResponse(ErrorResponseSerializer, description="No such message."),
            409: OpenApiResponse(ErrorResponseSerializer, description="The message was not handed over."),
        },
        examples=[
            OpenApiExample("Bounced", value={"status": "failed", "error": "550 mailbox unavailable"}, request_only=True)
        ],
    )
    def post(self, request: Request, message_id: int) -> Response:
        shape = AckInputSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        data = shape.validated_data
        try:
            message = recovery_message_ack(
                merchant=self.merchant, message_id=message_id, status=data["status"], error=data["error"]
            )
        except LookupError:
            return _error("message_id", "No message with this id.", status.HTTP_404_NOT_FOUND)
        except RecoveryAckError as error:
            return _error(error.field, error.reason, status.HTTP_409_CONFLICT)
        return Response({"id": message.pk, "status": message.status})
