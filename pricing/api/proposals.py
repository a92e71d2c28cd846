"""The manager API of the approval workflow: list proposals, approve, reject, roll back a live change.

For signed-in staff (session cookie + CSRF token), never for storefront API keys: a key proves a shop's
storefront, not a person who may change its prices. Each view calls one service; the services decide
(permissions, guardrails, stale prices) and these views only translate their refusals into 4xx answers.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from revopt.api import ErrorResponseSerializer, field_error
from revopt.tenancy.models import Merchant
from revopt.tenancy.selectors import grants_platform_admin, membership_for_user

from ..guardrails import GuardrailViolation
from ..models import PriceChange, PriceProposal, ProposalStatus
from ..selectors.access import can_decide_prices
from ..selectors.proposals import price_change_for, price_proposal_for, price_proposals_for
from ..services.approval import (
    PriceDecisionForbidden,
    ProposalNotPending,
    ProposalStale,
    RollbackRefused,
    price_change_rollback,
    price_proposal_approve,
    price_proposal_reject,
)

LIST_LIMIT_MAX = 200
API_KEY_HEADERS = ("X-Api-Key", "Authorization")


class IsStaffMember(BasePermission):
    """A signed-in staff user with a membership. A request carrying an API key is refused outright (403)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if any(request.headers.get(header) for header in API_KEY_HEADERS):
            raise exceptions.PermissionDenied("Storefront API keys cannot decide prices; sign in as a manager.")
        user = request.user
        if user is None or not user.is_authenticated:
            raise exceptions.NotAuthenticated("Sign in as one of the shop's managers.")
        return True


def _conflict(field: str, reasons: list[str]) -> Response:
    return Response(
        {"errors": [{"field": field, "reason": reason} for reason in reasons]}, status=status.HTTP_409_CONFLICT
    )


def _forbidden(reason: str) -> Response:
    return Response({"errors": [{"field": "non_field_errors", "reason": reason}]}, status=status.HTTP_403_FORBIDDEN)


class _ManagerView(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsStaffMember]

    def scope_merchant(self, request: Request) -> Merchant | None:
        """The user's own merchant; None for a platform admin (who may reach every merchant's rows).
        Raises 403 for staff who may not decide prices (support agents, users without a shop)."""
        membership = membership_for_user(user=request.user)
        if grants_platform_admin(user=request.user, membership=membership):
            return None
        if membership is None or membership.merchant is None:
            raise exceptions.PermissionDenied("You work for no shop.")
        if not can_decide_prices(user=request.user, merchant=membership.merchant):
            raise exceptions.PermissionDenied("Only the shop's managers decide its prices.")
        return membership.merchant


# --- shapes ---------------------------------------------------------------------------------------------


class IntervalSerializer(serializers.Serializer):
    expected = serializers.FloatField()
    lower = serializers.FloatField()
    upper = serializers.FloatField()


class ProductRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    title = serializers.CharField()


class GuardrailCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    passed = serializers.BooleanField()
    limit = serializers.CharField()
    message = serializers.CharField()


class ProposalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    product = ProductRefSerializer()
    status = serializers.ChoiceField(choices=ProposalStatus.choices)
    objective = serializers.CharField()
    current_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    proposed_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    change = serializers.FloatField(help_text="proposed / current − 1: 0.06 is +6%.")
    unit_cost = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    elasticity = IntervalSerializer()
    explored = serializers.BooleanField(help_text="Chosen by a Thompson draw to learn, not at the posterior mean.")
    units_per_week = IntervalSerializer(help_text="Expected change in units per week against the current price.")
    revenue_per_week = IntervalSerializer()
    profit_per_week = IntervalSerializer()
    confidence = serializers.FloatField(help_text="Probability the proposed price beats the current one.")
    reasons = serializers.ListField(child=serializers.CharField())
    guardrail_checks = GuardrailCheckSerializer(many=True, help_text="As checked when the proposal was made.")
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.CharField(allow_null=True)
    decision_note = serializers.CharField(allow_blank=True)


class ProposalListSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = ProposalSerializer(many=True)


class PriceChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    product = ProductRefSerializer()
    from_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    to_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    source = serializers.CharField()
    proposal_id = serializers.IntegerField(allow_null=True)
    reverts_id = serializers.IntegerField(allow_null=True)
    actor = serializers.CharField(allow_null=True)
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class DecisionSerializer(serializers.Serializer):
    proposal = ProposalSerializer()
    price_change = PriceChangeSerializer(allow_null=True)


class ProposalListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ProposalStatus.values, required=False, default=ProposalStatus.PENDING)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=LIST_LIMIT_MAX, default=50)
    merchant = serializers.SlugField(required=False, help_text="Platform admins: the shop (its slug).")


class DecisionInputSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class RollbackInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000, help_text="Why the change is undone (kept in the audit log).")


def _interval(expected: float, lower: float, upper: float) -> dict:
    return {"expected": expected, "lower": lower, "upper": upper}


def _product_ref(product) -> dict:
    return {"id": product.pk, "sku": product.sku, "title": product.title}


def proposal_body(proposal: PriceProposal) -> dict:
    return {
        "id": proposal.pk,
        "product": _product_ref(proposal.product),
        "status": proposal.status,
        "objective": proposal.objective,
        "current_price": proposal.current_price,
        "proposed_price": proposal.proposed_price,
        "change": proposal.change_share,
        "unit_cost": proposal.unit_cost,
        "elasticity": _interval(proposal.elasticity, proposal.elasticity_lower, proposal.elasticity_upper),
        "explored": proposal.explored,
        "units_per_week": _interval(proposal.units_change, proposal.units_change_lower, proposal.units_change_upper),
        "revenue_per_week": _interval(
            proposal.revenue_change, proposal.revenue_change_lower, proposal.revenue_change_upper
        ),
        "profit_per_week": _interval(
            proposal.profit_change, proposal.profit_change_lower, proposal.profit_change_upper
        ),
        "confidence": proposal.confidence,
        "reasons": list(proposal.reasons or []),
        "guardrail_checks": list(proposal.guardrail_checks or []),
        "created_at": proposal.created_at,
        "decided_at": proposal.decided_at,
        "decided_by": proposal.decided_by.get_username() if proposal.decided_by else None,
        "decision_note": proposal.decision_note,
    }


def price_change_body(change: PriceChange) -> dict:
    return {
        "id": change.pk,
        "product": _product_ref(change.product),
        "from_price": change.from_price,
        "to_price": change.to_price,
        "source": change.source,
        "proposal_id": change.proposal_id,
        "reverts_id": change.reverts_id,
        "actor": change.actor.get_username() if change.actor else None,
        "reason": change.reason,
        "created_at": change.created_at,
    }


ERRORS = {
    400: ErrorResponseSerializer,
    401: OpenApiResponse(ErrorResponseSerializer, description="Not signed in."),
    403: OpenApiResponse(
        ErrorResponseSerializer, description="An API key, a support agent, or staff of no shop: may not decide."
    ),
    404: OpenApiResponse(ErrorResponseSerializer, description="No such row in your shop."),
}


# --- views ----------------------------------------------------------------------------------------------


class ProposalListView(_ManagerView):
    @extend_schema(
        operation_id="price_proposals_list",
        summary="The approval queue",
        description=(
            "The shop's price proposals, newest first (default: those waiting for a decision). For signed-in "
            "managers of the shop and platform admins (who name the shop with `merchant`); never API keys."
        ),
        parameters=[ProposalListQuerySerializer],
        responses={200: ProposalListSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        query = ProposalListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        merchant = self.scope_merchant(request)
        if merchant is None:
            slug = params.get("merchant")
            if not slug:
                raise field_error("merchant", "Platform admins name the shop: ?merchant=<slug>.")
            merchant = Merchant.objects.filter(slug=slug).first()
            if merchant is None:
                raise exceptions.NotFound("No such merchant.")
        proposals = price_proposals_for(merchant=merchant, status=params["status"], limit=params["limit"])
        return Response(
            ProposalListSerializer({"count": len(proposals), "results": [proposal_body(p) for p in proposals]}).data
        )


class _DecisionView(_ManagerView):
    approve = True

    def post(self, request: Request, proposal_id: int) -> Response:
        merchant = self.scope_merchant(request)
        proposal = price_proposal_for(merchant=merchant, proposal_id=proposal_id)
        if proposal is None:
            raise exceptions.NotFound("No such proposal in your shop.")
        body = DecisionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = body.validated_data["note"]
        change = None
        try:
            if self.approve:
                change = price_proposal_approve(proposal=proposal, actor=request.user, note=note)
            else:
                price_proposal_reject(proposal=proposal, actor=request.user, note=note)
        except PriceDecisionForbidden as refused:
            return _forbidden(refused.reason)
        except ProposalStale as refused:
            return _conflict("current_price", [refused.reason])
        except ProposalNotPending as refused:
            return _conflict("status", [refused.reason])
        except GuardrailViolation as violation:
            return _conflict("proposed_price", [f"{check.name}: {check.message}" for check in violation.checks])
        proposal = price_proposal_for(merchant=proposal.merchant, proposal_id=proposal.pk)
        if change is not None:
            change = price_change_for(merchant=proposal.merchant, change_id=change.pk)
        return Response(
            DecisionSerializer(
                {"proposal": proposal_body(proposal), "price_change": price_change_body(change) if change else None}
            ).data
        )


_DECISION_ERRORS = {
    **ERRORS,
    409: OpenApiResponse(
        ErrorResponseSerializer,
        description=(
            "Not decided: the proposal is no longer pending (`status`), was made against a price that is no "
            "longer live (`current_price`), or the proposed price breaks a guardrail in force now "
            "(`proposed_price`, one error per failed guardrail)."
        ),
    ),
}


class ProposalApproveView(_DecisionView):
    approve = True

    @extend_schema(
        operation_id="price_proposals_approve",
        summary="Approve a proposal: its price goes live",
        description=(
            "Re-checks every guardrail against the limits in force now, with the product and the proposal "
            "locked; approving twice makes one price change."
        ),
        request=DecisionInputSerializer,
        responses={200: DecisionSerializer, **_DECISION_ERRORS},
    )
    def post(self, request: Request, proposal_id: int) -> Response:
        return super().post(request, proposal_id)


class ProposalRejectView(_DecisionView):
    approve = False

    @extend_schema(
        operation_id="price_proposals_reject",
        summary="Reject a proposal: the live price stays",
        request=DecisionInputSerializer,
        responses={200: DecisionSerializer, **_DECISION_ERRORS},
    )
    def post(self, request: Request, proposal_id: int) -> Response:
        return super().post(request, proposal_id)


class PriceChangeRollbackView(_ManagerView):
    @extend_schema(
        operation_id="price_changes_rollback",
        summary="Roll a live price change back",
        description=(
            "Restores the price the change replaced, as a new change (source `rollback`). Refused (409) when a "
            "later change happened (roll that back first), when it was already rolled back, or when the restored "
            "price breaks a floor, ceiling, minimum margin, competitor band or MAP in force now. Step, weekly and "
            "change-count limits do not apply to a rollback."
        ),
        request=RollbackInputSerializer,
        responses={200: PriceChangeSerializer, **_DECISION_ERRORS},
    )
    def post(self, request: Request, change_id: int) -> Response:
        merchant = self.scope_merchant(request)
        change = price_change_for(merchant=merchant, change_id=change_id)
        if change is None:
            raise exceptions.NotFound("No such price change in your shop.")
        body = RollbackInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            rollback = price_change_rollback(change=change, actor=request.user, reason=body.validated_data["reason"])
        except PriceDecisionForbidden as refused:
            return _forbidden(refused.reason)
        except RollbackRefused as refused:
            return _conflict("price_change", [refused.reason])
        except GuardrailViolation as violation:
            return _conflict("to_price", [f"{check.name}: {check.message}" for check in violation.checks])
        rollback = price_change_for(merchant=change.merchant, change_id=rollback.pk)
        return Response(PriceChangeSerializer(price_change_body(rollback)).data)
