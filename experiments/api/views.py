from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from revopt.api import UNAUTHORIZED_RESPONSE, ErrorResponseSerializer, field_error
from revopt.tenancy.api import MerchantAPIView

from ..services.assignment import Assignment, AssignmentRequestError, assignments_for_unit
from .serializers import AssignInputSerializer, AssignOutputSerializer


def _assignment_body(assignment: Assignment) -> dict:
    return {
        "experiment": assignment.experiment_key,
        "variant": assignment.variant_key,
        "variant_index": assignment.variant_index,
        "config": assignment.config,
        "in_experiment": assignment.in_experiment,
        "reason": assignment.reason,
    }


class AssignView(MerchantAPIView):
    @extend_schema(
        operation_id="experiments_assign",
        summary="The shopper's variants",
        description=(
            "The variant of each live experiment for one shopper, bucketed exactly as GrowthBook's SDKs do "
            "(hash version 2 over the experiment's seed and the unit id: customer_id when given, else "
            "anonymous_id). The first assignment is stored and kept (`reason: sticky`) through weight changes, "
            "log-in and other devices; asking again never logs a second exposure. `reason` says why a shopper "
            "is outside every variant: holdout, not_targeted, not_in_layer, not_covered, not_running."
        ),
        request=AssignInputSerializer,
        responses={200: AssignOutputSerializer, 400: ErrorResponseSerializer, 401: UNAUTHORIZED_RESPONSE},
        examples=[
            OpenApiExample(
                "A logged-in shopper on mobile",
                value={"customer_id": "user-42", "anonymous_id": "device-7", "attributes": {"device": "mobile"}},
                request_only=True,
            ),
            OpenApiExample(
                "Assigned to the hybrid recommender",
                value={
                    "unit_id": "user-42",
                    "assignments": [
                        {
                            "experiment": "recommender-popularity-vs-hybrid",
                            "variant": "hybrid",
                            "variant_index": 1,
                            "config": {"strategy": "hybrid"},
                            "in_experiment": True,
                            "reason": "assigned",
                        }
                    ],
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        body = AssignInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        params = body.validated_data
        try:
            assignments = assignments_for_unit(
                merchant=self.merchant,
                customer_external_id=params.get("customer_id"),
                anonymous_id=params.get("anonymous_id"),
                attributes=params.get("attributes"),
                experiment_keys=params.get("experiments"),
                at=params.get("at"),
            )
        except AssignmentRequestError as error:
            raise field_error(error.field, error.reason) from None
        unit_id = (params.get("customer_id") or "").strip() or params["anonymous_id"].strip()
        return Response({"unit_id": unit_id, "assignments": [_assignment_body(a) for a in assignments]})
