"""Shapes of the experiments API: who is asking (ids and attributes) in, their variants out."""

from rest_framework import serializers

from events.models import Device
from experiments.assignment import Reason
from experiments.services.assignment import MAX_EXPERIMENT_KEYS, MAX_SEGMENT, MAX_UNIT_ID


class UnitAttributesSerializer(serializers.Serializer):
    """What targeting reads; any other attribute the storefront sends is accepted and ignored."""

    device = serializers.ChoiceField(choices=Device.values, required=False)
    segment = serializers.CharField(
        required=False, max_length=MAX_SEGMENT, help_text='The shopper\'s segment, e.g. "Champions".'
    )


class AssignInputSerializer(serializers.Serializer):
    customer_id = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_UNIT_ID, help_text="The shop's user id, when logged in."
    )
    anonymous_id = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_UNIT_ID, help_text="The device/cookie id."
    )
    attributes = UnitAttributesSerializer(required=False)
    experiments = serializers.ListField(
        child=serializers.SlugField(max_length=80),
        required=False,
        max_length=MAX_EXPERIMENT_KEYS,
        help_text="Only these experiments (keys); default every live experiment of the shop.",
    )
    at = serializers.DateTimeField(required=False, help_text="The moment of the request (ISO 8601); default now.")

    def validate(self, data: dict) -> dict:
        if not (data.get("customer_id") or "").strip() and not (data.get("anonymous_id") or "").strip():
            raise serializers.ValidationError({"customer_id": ["Send customer_id or anonymous_id."]})
        return data


class AssignmentSerializer(serializers.Serializer):
    experiment = serializers.CharField(help_text="The experiment's key.")
    variant = serializers.CharField(allow_null=True, help_text="The variant's key; null outside every variant.")
    variant_index = serializers.IntegerField(allow_null=True, help_text="0 is the control.")
    config = serializers.DictField(help_text="What to do for this shopper; {} means the shop's default.")
    in_experiment = serializers.BooleanField(
        help_text="Whether the shopper is counted in the experiment (false for a rolled-out winner's config)."
    )
    reason = serializers.ChoiceField(choices=[reason.value for reason in Reason])


class AssignOutputSerializer(serializers.Serializer):
    unit_id = serializers.CharField(help_text="The id that was hashed: customer_id when given, else anonymous_id.")
    assignments = AssignmentSerializer(many=True)
