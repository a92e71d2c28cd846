"""Storefront loyalty endpoints (API key): a customer's points and tier, redeeming a reward, earning for an
action. Customers are named by the shop's own `customer_id`; the merchant always comes from the key."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from events.models import Customer
from revopt.api import UNAUTHORIZED_RESPONSE, ErrorResponseSerializer
from revopt.tenancy.api import MerchantAPIView

from ..models import EarnAction, Reward
from ..selectors.points import LoyaltyStatus, active_program, loyalty_status, points_balance
from ..services.points import (
    IDEMPOTENCY_KEY_MAX,
    CustomerNotEligible,
    LoyaltyError,
    NoActiveProgram,
    points_earn_for_action,
    points_redeem,
)

NOT_FOUND = OpenApiResponse(ErrorResponseSerializer, description="No such customer or reward, or no active program.")


# --- serializers ---------------------------------------------------------------------------------


class TierSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    threshold_points = serializers.IntegerField()
    earn_multiplier = serializers.DecimalField(max_digits=4, decimal_places=2)
    benefits = serializers.CharField()


class RewardSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    points_cost = serializers.IntegerField()
    value = serializers.DecimalField(max_digits=12, decimal_places=2)


class ExpiringPointsSerializer(serializers.Serializer):
    points = serializers.IntegerField()
    expires_at = serializers.DateTimeField()


class LoyaltyStatusSerializer(serializers.Serializer):
    customer_id = serializers.CharField()
    program = serializers.CharField()
    balance = serializers.IntegerField()
    tier = TierSerializer(allow_null=True)
    next_tier = TierSerializer(allow_null=True)
    points_to_next_tier = serializers.IntegerField()
    progress_to_next_tier = serializers.FloatField(help_text="0..1 from the current tier's threshold to the next.")
    earned_last_365d = serializers.IntegerField(help_text="Points earned over 365 days: what tiers are based on.")
    rewards_available = RewardSerializer(many=True, help_text="Active rewards the customer can afford and may redeem.")
    expiring_soon = ExpiringPointsSerializer(many=True, help_text="Points that expire in the next 30 days.")


class RedeemInputSerializer(serializers.Serializer):
    customer_id = serializers.CharField(max_length=100)
    reward_id = serializers.IntegerField(min_value=1)
    idempotency_key = serializers.CharField(
        max_length=IDEMPOTENCY_KEY_MAX, help_text="Retrying with the same key returns the first redemption."
    )


class RedemptionSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="One-time code the checkout accepts.")
    reward_id = serializers.IntegerField()
    points = serializers.IntegerField(help_text="Points spent.")
    balance = serializers.IntegerField(help_text="The balance after the redemption.")


class ActionInputSerializer(serializers.Serializer):
    customer_id = serializers.CharField(max_length=100)
    action = serializers.ChoiceField(choices=EarnAction.choices)
    idempotency_key = serializers.CharField(
        max_length=IDEMPOTENCY_KEY_MAX, help_text="Retrying with the same key returns the first award."
    )


class ActionPointsSerializer(serializers.Serializer):
    points = serializers.IntegerField(help_text="Points earned.")
    balance = serializers.IntegerField()


# --- helpers -------------------------------------------------------------------------------------


def _error(field: str, reason: str, code: int) -> Response:
    return Response({"errors": [{"field": field, "reason": reason}]}, status=code)


def _customer(merchant, customer_id: str) -> Customer | None:
    return Customer.objects.for_merchant(merchant).filter(external_id=customer_id, erased_at__isnull=True).first()


def _tier_body(tier) -> dict | None:
    if tier is None:
        return None
    return {
        "id": tier.pk,
        "name": tier.name,
        "threshold_points": tier.threshold_points,
        "earn_multiplier": f"{tier.earn_multiplier:.2f}",
        "benefits": tier.benefits,
    }


def _status_body(customer_id: str, loyalty: LoyaltyStatus) -> dict:
    return {
        "customer_id": customer_id,
        "program": loyalty.program.name,
        "balance": loyalty.balance,
        "tier": _tier_body(loyalty.tier),
        "next_tier": _tier_body(loyalty.next_tier),
        "points_to_next_tier": loyalty.points_to_next_tier,
        "progress_to_next_tier": round(loyalty.progress_to_next_tier, 4),
        "earned_last_365d": loyalty.earned_last_365d,
        "rewards_available": [
            {
                "id": reward.pk,
                "name": reward.name,
                "kind": reward.kind,
                "points_cost": reward.points_cost,
                "value": f"{reward.value:.2f}",
            }
            for reward in loyalty.rewards_available
        ],
        "expiring_soon": [
            {"points": item.points, "expires_at": item.expires_at.isoformat()} for item in loyalty.expiring_soon
        ],
    }


def _refusal(error: LoyaltyError) -> Response:
    if isinstance(error, (NoActiveProgram, CustomerNotEligible)):
        return _error(error.field, error.reason, status.HTTP_404_NOT_FOUND)
    return _error(error.field, error.reason, status.HTTP_409_CONFLICT)


# --- views ---------------------------------------------------------------------------------------


class LoyaltyCustomerView(MerchantAPIView):
    @extend_schema(
        operation_id="loyalty_customer",
        summary="A customer's points, tier and rewards",
        description=(
            "The balance (the sum of the customer's ledger), the tier and progress towards the next one (tiers "
            "follow points earned over the last 365 days), the rewards the customer can afford and may redeem "
            "now, and the points expiring in the next 30 days. A customer who never earned has a zero balance. "
            "404 names `customer_id` for a customer the shop has not sent, `program` when it runs none."
        ),
        responses={200: LoyaltyStatusSerializer, 401: UNAUTHORIZED_RESPONSE, 404: NOT_FOUND},
    )
    def get(self, request: Request, customer_id: str) -> Response:
        customer = _customer(self.merchant, customer_id)
        if customer is None:
            return _error("customer_id", "No customer with this id.", status.HTTP_404_NOT_FOUND)
        loyalty = loyalty_status(merchant=self.merchant, customer=customer)
        if loyalty is None:
            return _error("program", "This shop runs no loyalty program.", status.HTTP_404_NOT_FOUND)
        return Response(_status_body(customer_id, loyalty))


class LoyaltyRedeemView(MerchantAPIView):
    @extend_schema(
        operation_id="loyalty_redeem",
        summary="Redeem a reward",
        description=(
            "Spends the reward's points and answers a one-time code. Never overspends, even under concurrent "
            "requests. Retrying with the same `idempotency_key` answers the first redemption again (201). 409 "
            "names `reward_id` when the balance is short (the reason carries the balance and the cost) or the "
            "reward is for a higher tier, `idempotency_key` when the key was used for another redemption."
        ),
        request=RedeemInputSerializer,
        responses={
            201: RedemptionSerializer,
            400: ErrorResponseSerializer,
            401: UNAUTHORIZED_RESPONSE,
            404: NOT_FOUND,
            409: OpenApiResponse(ErrorResponseSerializer, description="Not enough points, or not for this tier."),
        },
        examples=[
            OpenApiExample(
                "Redeem",
                value={"customer_id": "user-42", "reward_id": 3, "idempotency_key": "checkout-8812"},
                request_only=True,
            ),
            OpenApiExample(
                "Redeemed",
                value={"code": "K7QF-2MZP-W9RT", "reward_id": 3, "points": 500, "balance": 700},
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        shape = RedeemInputSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        data = shape.validated_data
        if active_program(merchant=self.merchant) is None:
            return _error("program", "This shop runs no loyalty program.", status.HTTP_404_NOT_FOUND)
        customer = _customer(self.merchant, data["customer_id"])
        if customer is None:
            return _error("customer_id", "No customer with this id.", status.HTTP_404_NOT_FOUND)
        reward = Reward.objects.for_merchant(self.merchant).filter(pk=data["reward_id"]).first()
        if reward is None:
            return _error("reward_id", "No reward with this id.", status.HTTP_404_NOT_FOUND)
        try:
            redemption = points_redeem(
                merchant=self.merchant, customer=customer, reward=reward, idempotency_key=data["idempotency_key"]
            )
        except LoyaltyError as error:
            return _refusal(error)
        body = {
            "code": redemption.code,
            "reward_id": reward.pk,
            "points": reward.points_cost,
            "balance": points_balance(account=redemption.account),
        }
        return Response(body, status=status.HTTP_201_CREATED)


class LoyaltyActionView(MerchantAPIView):
    @extend_schema(
        operation_id="loyalty_action",
        summary="Earn points for an action",
        description=(
            "Awards the points of the program's earn rule for `action` (a review, a referral, a signup, a "
            "birthday), at most the rule's limit per customer. Retrying with the same `idempotency_key` answers "
            "the first award again. 409 names `action` when the program has no rule for it or the customer "
            "reached its limit."
        ),
        request=ActionInputSerializer,
        responses={
            201: ActionPointsSerializer,
            400: ErrorResponseSerializer,
            401: UNAUTHORIZED_RESPONSE,
            404: NOT_FOUND,
            409: OpenApiResponse(ErrorResponseSerializer, description="No rule for the action, or its limit."),
        },
    )
    def post(self, request: Request) -> Response:
        shape = ActionInputSerializer(data=request.data)
        shape.is_valid(raise_exception=True)
        data = shape.validated_data
        customer = _customer(self.merchant, data["customer_id"])
        if customer is None:
            return _error("customer_id", "No customer with this id.", status.HTTP_404_NOT_FOUND)
        try:
            entry = points_earn_for_action(
                merchant=self.merchant,
                customer=customer,
                action=data["action"],
                idempotency_key=data["idempotency_key"],
            )
        except LoyaltyError as error:
            return _refusal(error)
        body = {"points": entry.points, "balance": points_balance(account=entry.account)}
        return Response(body, status=status.HTTP_201_CREATED)
