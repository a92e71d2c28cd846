"""Storefront pricing endpoints (API key): live prices, and competitor prices coming in (JSON or CSV)."""

from __future__ import annotations

import io

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from revopt.api import UNAUTHORIZED_RESPONSE, ErrorResponseSerializer, field_error
from revopt.tenancy.api import MerchantAPIView

from ..selectors.prices import MAX_SKUS, LivePrice, live_prices
from ..services.competitors import (
    BATCH_MAX,
    CompetitorBatchRejected,
    CompetitorImportReport,
    ObservationInput,
    competitor_prices_import_csv,
    competitor_prices_record_batch,
)

IMPORT_MAX_BYTES = 10 * 1024 * 1024
# A 4xx answer lists at most this many row errors; the rest are counted in the last one.
MAX_LISTED_ERRORS = 100


# --- serializers ---------------------------------------------------------------------------------


class PriceExperimentSerializer(serializers.Serializer):
    key = serializers.CharField()
    variant = serializers.CharField()


class LivePriceSerializer(serializers.Serializer):
    sku = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    compare_at_price = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    # A plain string in the schema: a second "source" enum would collide with the recommendations one's name.
    source = serializers.CharField(help_text="catalog | revopt (an approved change) | experiment (a price test)")
    experiment = PriceExperimentSerializer(allow_null=True)
    changed_at = serializers.DateTimeField(allow_null=True)


class LivePricesSerializer(serializers.Serializer):
    prices = LivePriceSerializer(many=True)
    unknown = serializers.ListField(child=serializers.CharField())


class ObservationSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=100)
    competitor = serializers.CharField(max_length=200)
    price = serializers.DecimalField(max_digits=None, decimal_places=None, help_text="In the product's currency.")
    currency = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=3, help_text="Default: the product's."
    )
    observed_at = serializers.CharField(max_length=64, help_text="ISO 8601 with a time zone.")
    source_url = serializers.CharField(required=False, allow_blank=True, max_length=1000)


class ObservationBatchSerializer(serializers.Serializer):
    observations = ObservationSerializer(many=True, help_text=f"Up to {BATCH_MAX}.")


class CompetitorPricesRecordedSerializer(serializers.Serializer):
    recorded = serializers.IntegerField()
    products = serializers.IntegerField()


class ImportRowErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    sku = serializers.CharField()
    field = serializers.CharField()
    reason = serializers.CharField()


class CompetitorImportReportSerializer(serializers.Serializer):
    filename = serializers.CharField()
    rows_total = serializers.IntegerField()
    recorded = serializers.IntegerField()
    failed = serializers.IntegerField()
    errors = ImportRowErrorSerializer(many=True)


class CompetitorImportInputSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV: sku, competitor, price, observed_at[, currency, source_url].")


# --- live prices ---------------------------------------------------------------------------------


def _price_body(price: LivePrice) -> dict:
    experiment = (
        {"key": price.experiment_key, "variant": price.variant_key} if price.experiment_key is not None else None
    )
    return {
        "sku": price.sku,
        "price": f"{price.price:.2f}",
        "currency": price.currency,
        "compare_at_price": f"{price.compare_at_price:.2f}" if price.compare_at_price is not None else None,
        "source": str(price.source),
        "experiment": experiment,
        "changed_at": price.changed_at.isoformat() if price.changed_at is not None else None,
    }


def _requested_skus(request: Request) -> list[str]:
    raw = ",".join(request.query_params.getlist("products"))
    skus = list(dict.fromkeys(sku.strip() for sku in raw.split(",") if sku.strip()))
    if not skus:
        raise field_error("products", "Send one or more SKUs, comma-separated: ?products=SKU1,SKU2.")
    if len(skus) > MAX_SKUS:
        raise field_error("products", f"At most {MAX_SKUS} SKUs per request (got {len(skus)}).")
    return skus


class LivePricesView(MerchantAPIView):
    @extend_schema(
        operation_id="prices_list",
        summary="Live prices of products",
        description=(
            "The price to show for each product, the same for every shopper: there is no shopper parameter, and "
            "no price depends on who is looking. `source` says where it comes from: the shop's catalog, revopt "
            "(an approved price change), or a pricing experiment's price test. `experiment` names the pricing "
            "experiment and arm the product is in (pricing experiments randomise products, not shoppers). "
            f"Up to {MAX_SKUS} SKUs per call; repeated SKUs are answered once; SKUs of no active product are "
            "listed in `unknown`."
        ),
        parameters=[
            OpenApiParameter(
                "products", OpenApiTypes.STR, required=True, description="Comma-separated SKUs, e.g. TENT-2P,MAT-1."
            )
        ],
        responses={200: LivePricesSerializer, 400: ErrorResponseSerializer, 401: UNAUTHORIZED_RESPONSE},
        examples=[
            OpenApiExample(
                "One product in a price test, one unknown",
                value={
                    "prices": [
                        {
                            "sku": "TENT-2P",
                            "price": "123.50",
                            "currency": "USD",
                            "compare_at_price": "149.00",
                            "source": "experiment",
                            "experiment": {"key": "tents-5-off", "variant": "minus-5"},
                            "changed_at": "2026-11-20T09:00:00+00:00",
                        }
                    ],
                    "unknown": ["OLD-SKU"],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        prices = live_prices(merchant=self.merchant, skus=_requested_skus(request))
        return Response({"prices": [_price_body(price) for price in prices.prices], "unknown": list(prices.unknown)})


# --- competitor prices ---------------------------------------------------------------------------


def _observations_from(data: object) -> tuple[list[dict], bool]:
    """(observations, whether the body was a batch)."""
    if not isinstance(data, dict):
        raise field_error("observations", 'Send one observation object or {"observations": [...]}.')
    if "observations" not in data:
        return [data], False
    batch = data["observations"]
    if not isinstance(batch, list):
        raise field_error("observations", "Expected a list of observations.")
    if not batch:
        raise field_error("observations", "This list may not be empty.")
    if len(batch) > BATCH_MAX:
        raise field_error("observations", f"Ensure this field has no more than {BATCH_MAX} elements.")
    return batch, True


class CompetitorPricesView(MerchantAPIView):
    @extend_schema(
        operation_id="competitor_prices_record",
        summary="Record competitor prices",
        description=(
            f'One observation, or `{{"observations": [...]}}` with up to {BATCH_MAX}. All or nothing: when any '
            "observation is wrong nothing is stored, and every error names the observation and field, e.g. "
            "`observations[3].price`. `observed_at` must carry a time zone; `currency` defaults to the product's "
            "and must equal it; an SKU the shop does not have is an error."
        ),
        request=ObservationBatchSerializer,
        responses={201: CompetitorPricesRecordedSerializer, 400: ErrorResponseSerializer, 401: UNAUTHORIZED_RESPONSE},
        examples=[
            OpenApiExample(
                "A batch",
                value={
                    "observations": [
                        {
                            "sku": "TENT-2P",
                            "competitor": "Rival Outfitters",
                            "price": "119.00",
                            "observed_at": "2026-11-24T08:00:00Z",
                            "source_url": "https://rival.example/tent-2p",
                        }
                    ]
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        observations, is_batch = _observations_from(request.data)
        shapes = ObservationSerializer(data=observations, many=True)
        if not shapes.is_valid():
            errors = [
                {"field": f"observations[{index}].{name}" if is_batch else name, "reason": str(messages[0])}
                # DRF answers {index: {field: [message]}} for the items at fault.
                for index, item_errors in sorted(dict(shapes.errors).items())
                for name, messages in item_errors.items()
            ]
            return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        inputs = [
            ObservationInput(
                sku=item["sku"].strip(),
                competitor=item["competitor"],
                price=item["price"],
                observed_at=item["observed_at"],
                currency=item.get("currency") or None,
                source_url=item.get("source_url") or "",
            )
            for item in shapes.validated_data
        ]
        try:
            result = competitor_prices_record_batch(merchant=self.merchant, observations=inputs)
        except CompetitorBatchRejected as rejected:
            errors = [
                {
                    "field": f"observations[{error.position}].{error.field}" if is_batch else error.field,
                    "reason": error.reason,
                }
                for error in rejected.errors
            ]
            return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"recorded": result.recorded, "products": result.products}, status=status.HTTP_201_CREATED)


def _report_body(report: CompetitorImportReport) -> dict:
    return {
        "filename": report.filename,
        "rows_total": report.rows_total,
        "recorded": report.recorded,
        "failed": report.failed,
        "errors": [
            {"line": error.position, "sku": error.sku, "field": error.field, "reason": error.reason}
            for error in report.errors
        ],
    }


class CompetitorPricesImportView(MerchantAPIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="competitor_prices_import",
        summary="Import competitor prices from a CSV file",
        description=(
            "Multipart upload of `file` (at most 10 MB, UTF-8): a header row with sku, competitor, price, "
            "observed_at and optionally currency and source_url, then one observation per row. Good rows are "
            "stored and bad ones reported with their line, column and reason (201). 400 when the file is "
            "unusable (empty, not UTF-8, a required column missing) or no row could be stored; the errors then "
            "name the line and column: `line[3].price`."
        ),
        request={"multipart/form-data": CompetitorImportInputSerializer},
        responses={201: CompetitorImportReportSerializer, 400: ErrorResponseSerializer, 401: UNAUTHORIZED_RESPONSE},
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise field_error("file", "Upload the CSV as the multipart field `file`.")
        if upload.size > IMPORT_MAX_BYTES:
            raise field_error(
                "file", "The file is larger than 10 MB; split it or use `manage.py import_competitor_prices`."
            )
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise field_error("file", "The file is not UTF-8 text.") from None
        report = competitor_prices_import_csv(
            merchant=self.merchant, csv_file=io.StringIO(text, newline=""), filename=upload.name or "upload.csv"
        )
        if report.rejected:
            return Response(
                {"errors": [{"field": "file", "reason": error.reason} for error in report.errors]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if report.recorded == 0:
            listed = report.errors[:MAX_LISTED_ERRORS]
            errors = [{"field": f"line[{error.position}].{error.field}", "reason": error.reason} for error in listed]
            if len(report.errors) > len(listed):
                errors.append({"field": "file", "reason": f"… and {len(report.errors) - len(listed)} more errors."})
            return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(_report_body(report), status=status.HTTP_201_CREATED)
