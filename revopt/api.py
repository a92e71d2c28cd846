"""Shared API plumbing: one error shape for every endpoint.

Every 4xx body is {"errors": [{"field": "...", "reason": "..."}]} so a storefront developer can find
the offending field without parsing prose.
"""

from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _flatten(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    if isinstance(detail, dict):
        errors: list[dict[str, str]] = []
        for key, value in detail.items():
            field = key if not prefix else f"{prefix}.{key}"
            if key == "non_field_errors":
                field = prefix or "non_field_errors"
            errors.extend(_flatten(value, field))
        return errors
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"field": prefix or "non_field_errors", "reason": str(item)} for item in detail]
        errors = []
        for index, item in enumerate(detail):
            if item:
                errors.extend(_flatten(item, f"{prefix}[{index}]" if prefix else str(index)))
        return errors
    return [{"field": prefix or "non_field_errors", "reason": str(detail)}]


def exception_handler(exc: Exception, context: dict) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"errors": _flatten(exc.detail)}
    elif isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        response.data = {"errors": [{"field": "authorization", "reason": str(exc.detail)}]}
        response.status_code = status.HTTP_401_UNAUTHORIZED
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"errors": [{"field": "non_field_errors", "reason": str(response.data["detail"])}]}
    return response


def field_error(field: str, reason: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({field: [reason]})


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField()
    reason = serializers.CharField()


class ErrorResponseSerializer(serializers.Serializer):
    """The body of every 4xx answer, as `exception_handler` shapes it (for the OpenAPI schema)."""

    errors = FieldErrorSerializer(many=True)


UNAUTHORIZED_RESPONSE = OpenApiResponse(ErrorResponseSerializer, description="Missing, invalid or revoked API key.")
