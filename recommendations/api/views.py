from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from revopt.api import UNAUTHORIZED_RESPONSE, ErrorResponseSerializer, field_error
from revopt.tenancy.api import MerchantAPIView

from ..selectors import (
    BecauseOf,
    RecommendationRequestError,
    RecommendationResult,
    RerankResult,
    recommendations_for,
    search_rerank,
)
from .serializers import (
    RecommendationListSerializer,
    RecommendationQuerySerializer,
    RerankInputSerializer,
    RerankOutputSerializer,
    recommendation_query_parse,
)


def _because_of(because: BecauseOf | None) -> dict | None:
    if because is None:
        return None
    if because.kind == "category":
        return {"type": "category", "id": str(because.id), "title": because.title, "path": because.reference}
    return {"type": "product", "id": because.reference, "title": because.title}


def _list_body(result: RecommendationResult) -> dict:
    # Built by hand: this is the hot path, and the output serializer only documents it.
    return {
        "recommendation_id": str(result.recommendation_id),
        "placement": result.placement,
        "source": result.source,
        "degraded": result.degraded,
        "model_version": result.version,
        "experiment": (
            None if result.experiment is None else {"key": result.experiment.key, "variant": result.experiment.variant}
        ),
        "items": [
            {
                "product_id": item.reference,
                "sku": item.sku,
                "title": item.title,
                "price": str(item.price),
                "score": item.score,
                "reason": item.reason,
                "explanation": item.explanation,
                "because_of": _because_of(item.because_of),
            }
            for item in result.items
        ],
    }


def _rerank_body(result: RerankResult) -> dict:
    return {
        "recommendation_id": str(result.recommendation_id),
        "source": result.source,
        "degraded": result.degraded,
        "model_version": result.version,
        "product_ids": [item.reference for item in result.items],
        "items": [{"product_id": item.reference, "score": item.score} for item in result.items],
        "unknown_product_ids": result.unknown_product_ids,
    }


class RecommendationListView(MerchantAPIView):
    @extend_schema(
        operation_id="recommendations_list",
        summary="Recommendations for one placement",
        description=(
            "The list a placement (home, pdp, cart, post_purchase, email) shows this visitor now, after the "
            "merchant's business rules, with a reason code and a sentence per item. `source` says where it came "
            "from: the trained model, the non-personal mix (customers who opted out of personalization), or the "
            "database fallback while the cache is unavailable (`degraded: true`). `experiment` names the "
            "experiment variant that chose the strategy (a popularity variant serves the non-personal mix), or is "
            "null."
        ),
        parameters=[RecommendationQuerySerializer],
        responses={200: RecommendationListSerializer, 400: ErrorResponseSerializer, 401: UNAUTHORIZED_RESPONSE},
    )
    def get(self, request: Request) -> Response:
        params = recommendation_query_parse(request.query_params)
        try:
            result = recommendations_for(
                merchant=self.merchant,
                placement=params["placement"],
                customer_external_id=params.get("customer_id"),
                anonymous_id=params.get("anonymous_id"),
                session_id=params.get("session_id"),
                product_ids=[params["product_id"]] if params.get("product_id") else [],
                cart_product_ids=params.get("cart", []),
                category_ids=params.get("category", []),
                k=params.get("k"),
                device=params.get("device"),
                at=params.get("at"),
            )
        except RecommendationRequestError as error:
            raise field_error(error.field, error.reason) from None
        return Response(_list_body(result))


class SearchRerankView(MerchantAPIView):
    @extend_schema(
        operation_id="recommendations_rerank",
        summary="Re-rank search results for a customer",
        description=(
            "Returns the given products in this customer's order (personal score, this session's views, "
            "popularity, and a little of the order sent). Ids matching no product are listed in "
            "`unknown_product_ids`, not silently dropped."
        ),
        request=RerankInputSerializer,
        responses={200: RerankOutputSerializer, 400: ErrorResponseSerializer, 401: UNAUTHORIZED_RESPONSE},
    )
    def post(self, request: Request) -> Response:
        body = RerankInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        params = body.validated_data
        try:
            result = search_rerank(
                merchant=self.merchant,
                product_ids=params["product_ids"],
                customer_external_id=params.get("customer_id"),
                anonymous_id=params.get("anonymous_id"),
                session_id=params.get("session_id"),
            )
        except RecommendationRequestError as error:
            raise field_error(error.field, error.reason) from None
        return Response(_rerank_body(result))
