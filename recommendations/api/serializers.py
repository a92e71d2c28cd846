"""Shapes of the recommendations API: query parameters in, lists out (the output is built by hand in
the views for speed; these serializers document it in the OpenAPI schema)."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rest_framework import serializers

from events.models import Device
from revopt.api import field_error

from ..selectors import LIST_PLACEMENTS, MAX_K

DEVICES = frozenset(Device.values)
TEXT_LIMITS = {"customer_id": 100, "anonymous_id": 100, "session_id": 100}


class CommaSeparatedField(serializers.CharField):
    """`a,b,c` → ["a", "b", "c"] (blanks dropped)."""

    def to_internal_value(self, data: object) -> list[str]:
        text = super().to_internal_value(data)
        return [part.strip() for part in text.split(",") if part.strip()]


class CommaSeparatedIntegersField(CommaSeparatedField):
    def to_internal_value(self, data: object) -> list[int]:
        parts = super().to_internal_value(data)
        try:
            values = [int(part) for part in parts]
        except ValueError:
            raise serializers.ValidationError("Must be comma-separated category ids.") from None
        if any(value < 1 for value in values):
            raise serializers.ValidationError("Category ids are positive integers.")
        return values


class RecommendationQuerySerializer(serializers.Serializer):
    placement = serializers.ChoiceField(choices=list(LIST_PLACEMENTS))
    customer_id = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="The shop's user id."
    )
    anonymous_id = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="The device/cookie id."
    )
    session_id = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="The current session; its views re-rank the list."
    )
    product_id = serializers.CharField(
        required=False, max_length=100, help_text="The product being viewed (pdp): external id or SKU."
    )
    cart = CommaSeparatedField(
        required=False, max_length=10000, help_text="The cart's products, comma-separated external ids or SKUs."
    )
    category = CommaSeparatedIntegersField(
        required=False, max_length=2000, help_text="Only these categories (and their subcategories), comma-separated."
    )
    k = serializers.IntegerField(required=False, min_value=1, max_value=MAX_K, help_text="How many items (1–100).")
    device = serializers.ChoiceField(required=False, choices=Device.values)
    at = serializers.DateTimeField(required=False, help_text="The moment of the request (ISO 8601); default now.")


class BecauseOfSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["product", "category"])
    id = serializers.CharField(help_text="A product's external id (else SKU), or a category id.")
    title = serializers.CharField(help_text="A product's title, or a category's name.")
    path = serializers.CharField(required=False, help_text="Categories only: the full path.")


class RecommendedItemSerializer(serializers.Serializer):
    product_id = serializers.CharField(help_text="The shop's product id (external id, else SKU).")
    sku = serializers.CharField()
    title = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    score = serializers.FloatField()
    reason = serializers.CharField(help_text="A reason code: viewed, purchased, for_you, bought_together, …")
    explanation = serializers.CharField(help_text='A sentence for shoppers: "Because you viewed X".')
    because_of = BecauseOfSerializer(allow_null=True)


class ServedExperimentSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The experiment's key.")
    variant = serializers.CharField(help_text="The variant this visitor is in (or the rolled-out winner).")


class RecommendationListSerializer(serializers.Serializer):
    recommendation_id = serializers.UUIDField(
        help_text="Send it back in `properties.recommendation_id` of Product Clicked / Product Added events."
    )
    placement = serializers.CharField()
    source = serializers.ChoiceField(choices=["model", "non_personal", "fallback"])
    degraded = serializers.BooleanField(help_text="True when the cache was unavailable and the database answered.")
    model_version = serializers.IntegerField(allow_null=True)
    experiment = ServedExperimentSerializer(
        allow_null=True, help_text="The experiment variant whose strategy shaped the list; null outside any."
    )
    items = RecommendedItemSerializer(many=True)


class RerankInputSerializer(serializers.Serializer):
    product_ids = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=100, help_text="External ids or SKUs."
    )
    customer_id = serializers.CharField(required=False, max_length=100)
    anonymous_id = serializers.CharField(required=False, max_length=100)
    session_id = serializers.CharField(required=False, max_length=100)


class RerankedItemSerializer(serializers.Serializer):
    product_id = serializers.CharField(help_text="As sent.")
    score = serializers.FloatField()


class RerankOutputSerializer(serializers.Serializer):
    recommendation_id = serializers.UUIDField()
    source = serializers.ChoiceField(choices=["model", "non_personal", "fallback"])
    degraded = serializers.BooleanField()
    model_version = serializers.IntegerField(allow_null=True)
    product_ids = serializers.ListField(child=serializers.CharField(), help_text="The known products, reordered.")
    items = RerankedItemSerializer(many=True)
    unknown_product_ids = serializers.ListField(
        child=serializers.CharField(), help_text="Ids that match no product of the shop; left out of the order."
    )


def _comma_separated(field: str, text: str, max_length: int) -> list[str]:
    if not text:
        raise field_error(field, "This field may not be blank.")
    if len(text) > max_length:
        raise field_error(field, f"Ensure this field has no more than {max_length} characters.")
    return [part.strip() for part in text.split(",") if part.strip()]


def recommendation_query_parse(query: Mapping[str, str]) -> dict[str, Any]:
    """The GET parameters of a recommendations request, checked as RecommendationQuerySerializer
    documents them (a 400 naming the field), without a serializer's cost on the hot path."""
    params: dict[str, Any] = {}
    placement = query.get("placement")
    if placement is None:
        raise field_error("placement", "This field is required.")
    if placement not in LIST_PLACEMENTS:
        raise field_error("placement", f'"{placement}" is not a valid choice.')
    params["placement"] = placement
    for field, limit in TEXT_LIMITS.items():
        value = query.get(field)
        if value is not None:
            value = value.strip()
            if len(value) > limit:
                raise field_error(field, f"Ensure this field has no more than {limit} characters.")
            params[field] = value
    product_id = query.get("product_id")
    if product_id is not None:
        product_id = product_id.strip()
        if not product_id:
            raise field_error("product_id", "This field may not be blank.")
        if len(product_id) > 100:
            raise field_error("product_id", "Ensure this field has no more than 100 characters.")
        params["product_id"] = product_id
    cart = query.get("cart")
    if cart is not None:
        params["cart"] = _comma_separated("cart", cart.strip(), 10000)
    category = query.get("category")
    if category is not None:
        parts = _comma_separated("category", category.strip(), 2000)
        try:
            categories = [int(part) for part in parts]
        except ValueError:
            raise field_error("category", "Must be comma-separated category ids.") from None
        if any(value < 1 for value in categories):
            raise field_error("category", "Category ids are positive integers.")
        params["category"] = categories
    k = query.get("k")
    if k is not None:
        try:
            number = int(k.strip())
        except ValueError:
            raise field_error("k", "A valid integer is required.") from None
        if not 1 <= number <= MAX_K:
            raise field_error("k", f"Must be between 1 and {MAX_K}.")
        params["k"] = number
    device = query.get("device")
    if device is not None:
        if device not in DEVICES:
            raise field_error("device", f'"{device}" is not a valid choice.')
        params["device"] = device
    at = query.get("at")
    if at is not None:
        params["at"] = _moment(at)
    return params


def _moment(text: str) -> datetime:
    # Rare: DRF's own field, for its ISO 8601 parsing and time-zone handling.
    try:
        return serializers.DateTimeField().to_internal_value(text)
    except serializers.ValidationError as error:
        raise field_error("at", str(error.detail[0])) from None
