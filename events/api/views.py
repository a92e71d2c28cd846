from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from events import services
from revopt.api import UNAUTHORIZED_RESPONSE, ErrorResponseSerializer, field_error
from revopt.tenancy.api import MerchantAPIView

from .serializers import EventBatchInputSerializer, EventBatchOutputSerializer


def _batch_body(result: services.BatchResult) -> dict:
    # Built by hand: the serializer would cost more than the ingest itself on a 1,000-event batch.
    return {
        "accepted": result.accepted,
        "duplicate": result.duplicate,
        "rejected": result.rejected,
        "results": [
            {
                "index": item.index,
                "messageId": item.message_id,
                "status": item.status,
                "errors": [{"field": error.field, "reason": error.reason} for error in item.errors],
            }
            for item in result.results
        ],
    }


def _batch_from(data: object) -> list:
    # Checked by hand rather than by EventBatchInputSerializer (which documents it): its JSONField
    # re-serialises every event, doubling the cost of a large batch.
    if not isinstance(data, dict) or "batch" not in data:
        raise field_error("batch", "This field is required.")
    batch = data["batch"]
    if not isinstance(batch, list):
        raise field_error("batch", "Expected a list of events.")
    if not batch:
        raise field_error("batch", "This list may not be empty.")
    limit = settings.REVOPT["EVENT_BATCH_MAX"]
    if len(batch) > limit:
        raise field_error("batch", f"Ensure this field has no more than {limit} elements.")
    return batch


class EventBatchView(MerchantAPIView):
    @extend_schema(
        operation_id="events_batch",
        summary="Send a batch of shopper events",
        description=(
            "Takes up to 1,000 Segment-spec events. Idempotent on messageId per merchant: re-sending stores "
            "nothing twice. Each event is answered accepted, duplicate or rejected (with the field and reason). "
            "200 when at least one event was accepted or already known; 400 when every event was rejected."
        ),
        request=EventBatchInputSerializer,
        responses={
            200: EventBatchOutputSerializer,
            400: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="EventBatchRejected",
                    serializers=[EventBatchOutputSerializer, ErrorResponseSerializer],
                    resource_type_field_name=None,
                ),
                description="Every event rejected (answered one by one), or the envelope itself is bad (`batch`).",
            ),
            401: UNAUTHORIZED_RESPONSE,
        },
        examples=[
            OpenApiExample(
                "Product viewed",
                request_only=True,
                value={
                    "batch": [
                        {
                            "type": "track",
                            "event": "Product Viewed",
                            "messageId": "0f8c7d6e-1",
                            "anonymousId": "anon-42",
                            "sessionId": "s-42-1",
                            "timestamp": "2026-11-24T10:00:00Z",
                            "properties": {"product_id": "TENT-2P", "price": 129.0},
                            "context": {"device": {"type": "mobile"}, "campaign": {"source": "newsletter"}},
                        }
                    ]
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        batch = _batch_from(request.data)
        result = services.event_batch_ingest(merchant=self.merchant, events=batch)
        all_rejected = result.rejected == len(result.results)
        return Response(_batch_body(result), status=status.HTTP_400_BAD_REQUEST if all_rejected else status.HTTP_200_OK)
