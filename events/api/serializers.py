from django.conf import settings
from rest_framework import serializers

from revopt.api import FieldErrorSerializer


class EventBatchInputSerializer(serializers.Serializer):
    """The envelope only; each event is checked by the ingest service and answered on its own."""

    batch = serializers.ListField(
        child=serializers.JSONField(),
        allow_empty=False,
        max_length=settings.REVOPT["EVENT_BATCH_MAX"],
        help_text="Segment-spec events (track, identify, page), at most 1,000.",
    )


class EventResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    messageId = serializers.CharField(source="message_id", allow_null=True)  # noqa: N815
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "rejected"])
    errors = FieldErrorSerializer(many=True)


class EventBatchOutputSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = EventResultSerializer(many=True)
