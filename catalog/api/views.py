from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.selectors import category_get, category_list, product_get_by_sku, product_list
from revopt.api import UNAUTHORIZED_RESPONSE, ErrorResponseSerializer, field_error
from revopt.tenancy.api import MerchantAPIView

from .serializers import (
    CategorySerializer,
    ProductDetailSerializer,
    ProductListFilterSerializer,
    ProductPageSerializer,
    ProductSerializer,
)


class ProductPagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


class ProductListView(MerchantAPIView):
    @extend_schema(
        operation_id="products_list",
        parameters=[ProductListFilterSerializer],
        responses={200: ProductPageSerializer, 400: ErrorResponseSerializer, 401: UNAUTHORIZED_RESPONSE},
        summary="Active products of the shop, filtered and paginated.",
    )
    def get(self, request: Request) -> Response:
        filters = ProductListFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        category_id = filters.validated_data.get("category")
        if category_id is not None and category_get(merchant=self.merchant, category_id=category_id) is None:
            raise field_error("category", "No category with this id.")
        products = product_list(
            merchant=self.merchant,
            category_id=category_id,
            in_stock=filters.validated_data["in_stock"],
            search=filters.validated_data.get("q") or None,
        )
        paginator = ProductPagination()
        page = paginator.paginate_queryset(products, request, view=self)
        return paginator.get_paginated_response(ProductSerializer(page, many=True).data)


class ProductDetailView(MerchantAPIView):
    @extend_schema(
        operation_id="products_retrieve",
        responses={200: ProductDetailSerializer, 404: ErrorResponseSerializer, 401: UNAUTHORIZED_RESPONSE},
        summary="One product by SKU (inactive products included, so old orders still resolve).",
    )
    def get(self, request: Request, sku: str) -> Response:
        product = product_get_by_sku(merchant=self.merchant, sku=sku)
        if product is None:
            return Response(
                {"errors": [{"field": "sku", "reason": "No product with this SKU."}]}, status=status.HTTP_404_NOT_FOUND
            )
        return Response(ProductDetailSerializer(product).data)


class CategoryListView(MerchantAPIView):
    @extend_schema(
        operation_id="categories_list",
        responses={200: CategorySerializer(many=True), 401: UNAUTHORIZED_RESPONSE},
        summary="The category tree as a flat list ordered by path; `parent` links the levels.",
    )
    def get(self, request: Request) -> Response:
        return Response(CategorySerializer(category_list(merchant=self.merchant), many=True).data)
