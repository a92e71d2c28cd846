import json

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from revopt.tenancy.admin_base import (
    MerchantScopedAdmin,
    MerchantScopedInline,
    ReadOnlyAdminMixin,
    merchant_for_request,
)

from .metrics import METRICS
from .models import (
    AllocationChange,
    AnalysisSnapshot,
    ContextualDecision,
    Experiment,
    ExperimentSettings,
    ExperimentStatus,
    Exposure,
    Layer,
    Variant,
)
from .results import Verdict
from .selectors.screens import analysis_from_snapshot
from .services.lifecycle import (
    SETTINGS_FIELDS,
    ExperimentValidationError,
    VariantSpec,
    experiment_create,
    experiment_roll_out,
    experiment_start,
    experiment_stop,
)

METRIC_CHOICES = [(key, f"{metric.label} ({key})") for key, metric in METRICS.items()]
# Once an experiment runs, changing how shoppers are bucketed or how it is judged would move shoppers
# between variants or move the goalposts: only its name and hypothesis stay editable.
FROZEN_ONCE_STARTED = [
    "key",
    "surface",
    "kind",
    "seed",
    "coverage",
    "layer",
    "layer_start",
    "layer_end",
    "targeting",
    "primary_metric",
    "secondary_metrics",
    "guardrails",
    "alpha",
    "power",
    "minimum_detectable_effect",
    "planned_sample_size",
    "sequential",
    "cuped",
    "pre_period_days",
    "winsorize_percentile",
    "reward_metric",
    "arm_floor",
]
ALWAYS_READ_ONLY = [
    "status",
    "results_link",
    "created_at",
    "created_by",
    "started_at",
    "stopped_at",
    "rolled_out_at",
    "rolled_out_variant",
]


def _is_draft(experiment: Experiment | None) -> bool:
    return experiment is None or experiment.status == ExperimentStatus.DRAFT


class VariantInlineFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        kept = [form.cleaned_data for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")]
        if len(kept) < 2:
            raise forms.ValidationError("An experiment compares at least two variants.")
        total = sum(row.get("weight") or 0.0 for row in kept)
        if abs(total - 1.0) > 0.001:
            raise forms.ValidationError(f"The weights must add up to 1 (they add up to {total:g}).")


class VariantInline(MerchantScopedInline):
    """Variants are edited with their draft; once it runs, weights change only through the services
    (which log the change and keep already-assigned shoppers where they are)."""

    model = Variant
    formset = VariantInlineFormSet
    fields = ["index", "key", "name", "weight", "config"]
    ordering = ["index"]

    def get_extra(self, request: HttpRequest, obj: Experiment | None = None, **kwargs) -> int:
        return 2 if obj is None else 0

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> list[str]:
        return [] if _is_draft(obj) else list(self.fields)

    def has_add_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return _is_draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return _is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return _is_draft(obj) and super().has_delete_permission(request, obj)


@admin.register(Experiment)
class ExperimentAdmin(MerchantScopedAdmin):
    """Created through `experiment_create`, moved through its life by the lifecycle services (the actions);
    the admin never writes a transition itself."""

    inlines = [VariantInline]
    list_display = ["name", "key", "surface", "kind", "status", "started_at", "results_link"]
    list_filter = ["status", "surface", "kind"]
    search_fields = ["key", "name"]
    ordering = ["-created_at"]
    actions = ["start", "stop", "roll_out_winner"]
    readonly_fields = ALWAYS_READ_ONLY

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> list[str]:
        return list(ALWAYS_READ_ONLY) + ([] if _is_draft(obj) else FROZEN_ONCE_STARTED)

    def formfield_for_dbfield(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name in ("primary_metric", "reward_metric"):
            return forms.ChoiceField(
                choices=METRIC_CHOICES, initial=db_field.default, label=db_field.verbose_name.capitalize()
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: Experiment | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        refused: ExperimentValidationError | None = getattr(request, "_experiment_refused", None)
        if refused is None:
            return form

        class RefusedByTheService(form):
            """Shows the service's refusal next to the field it names (or above the form)."""

            def clean(self) -> dict:
                cleaned = super().clean()
                field = refused.field.split(".")[0].split("[")[0]
                self.add_error(field if field in self.fields else None, refused.reason)
                return cleaned

        return RefusedByTheService

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ExperimentValidationError as refused:
            # The transaction of the first attempt rolled back; show the form again with the reason.
            request._experiment_refused = refused
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Experiment, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
        # A new experiment is created with its variants by `experiment_create`, in save_related.

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)
            return
        data = form.cleaned_data
        variant_rows = [
            row
            for formset in formsets
            for row in (variant_form.cleaned_data for variant_form in formset.forms)
            if row and not row.get("DELETE")
        ]
        variant_rows.sort(key=lambda row: row.get("index") or 0)
        created = experiment_create(
            merchant=data.get("merchant") or merchant_for_request(request),
            key=data["key"],
            name=data["name"],
            variants=[
                VariantSpec(key=row["key"], name=row["name"], weight=row["weight"], config=row.get("config") or {})
                for row in variant_rows
            ],
            surface=data["surface"],
            kind=data["kind"],
            hypothesis=data.get("hypothesis", ""),
            primary_metric=data["primary_metric"],
            secondary_metrics=data.get("secondary_metrics") or [],
            guardrails=data.get("guardrails") or [],
            targeting=data.get("targeting") or None,
            layer=data.get("layer"),
            layer_start=data["layer_start"],
            layer_end=data["layer_end"],
            actor=request.user,
            **{name: data[name] for name in SETTINGS_FIELDS if name in data and data[name] is not None},
        )
        form.instance.pk, form.instance.merchant = created.pk, created.merchant
        for formset in formsets:  # the change message reads what the formsets saved: nothing, the service did
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        variants = formset.save(commit=False)
        for variant in variants:
            variant.merchant_id = form.instance.merchant_id
            variant.save()
        for variant in formset.deleted_objects:
            variant.delete()

    @admin.display(description="results")
    def results_link(self, experiment: Experiment) -> str:
        if experiment.pk is None:
            return "—"
        url = reverse("experiments:results", args=[experiment.key])
        return format_html('<a href="{}?merchant={}">Results page</a>', url, experiment.merchant.slug)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("merchant")

    def has_lifecycle_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("experiments.change_experiment")

    def _each(self, request: HttpRequest, queryset: QuerySet, step, done: str) -> None:
        for experiment in queryset.order_by("pk"):
            try:
                step(experiment=experiment, actor=request.user)
            except ExperimentValidationError as refused:
                self.message_user(request, f"{experiment}: {refused.reason}", messages.ERROR)
            else:
                self.message_user(request, f"{experiment} {done}.", messages.SUCCESS)

    @admin.action(description="Start the selected drafts", permissions=["lifecycle"])
    def start(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, experiment_start, "is running")

    @admin.action(description="Stop the selected experiments", permissions=["lifecycle"])
    def stop(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, experiment_stop, "is stopped")

    @admin.action(description="Roll out the winner of the latest analysis", permissions=["lifecycle"])
    def roll_out_winner(self, request: HttpRequest, queryset: QuerySet) -> None:
        for experiment in queryset.order_by("pk"):
            snapshot = (
                AnalysisSnapshot.objects.for_merchant(experiment.merchant_id)
                .filter(experiment=experiment)
                .order_by("-computed_at", "-pk")
                .first()
            )
            analysis = analysis_from_snapshot(snapshot)
            winner = (
                experiment.variants.filter(key=analysis.winner).first()
                if analysis is not None and analysis.verdict == Verdict.WINNER and analysis.winner
                else None
            )
            if winner is None:
                self.message_user(
                    request,
                    f"{experiment}: the latest analysis names no winner; roll a variant out from the results page.",
                    messages.ERROR,
                )
                continue
            try:
                experiment_roll_out(experiment=experiment, variant=winner, actor=request.user)
            except ExperimentValidationError as refused:
                self.message_user(request, f"{experiment}: {refused.reason}", messages.ERROR)
            else:
                self.message_user(request, f"{experiment}: {winner} is rolled out to every shopper.", messages.SUCCESS)


@admin.register(Layer)
class LayerAdmin(MerchantScopedAdmin):
    list_display = ["key", "name", "created_at"]
    search_fields = ["key", "name"]


@admin.register(ExperimentSettings)
class ExperimentSettingsAdmin(MerchantScopedAdmin):
    list_display = ["__str__", "holdout_share", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One row per merchant: a manager whose shop has one edits it instead.
        merchant = merchant_for_request(request)
        if merchant is not None and ExperimentSettings.objects.for_merchant(merchant).exists():
            return False
        return super().has_add_permission(request)


class _ReadOnly(ReadOnlyAdminMixin, MerchantScopedAdmin):
    """Rows the services write (assignment, bandits, analysis): shown for audit and replay, never edited."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("experiment")


@admin.register(Exposure)
class ExposureAdmin(_ReadOnly):
    list_display = ["unit_id", "experiment", "variant", "exposed_at", "device"]
    list_filter = ["device"]
    search_fields = ["unit_id", "experiment__key"]
    date_hierarchy = "exposed_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("variant")


@admin.register(AllocationChange)
class AllocationChangeAdmin(_ReadOnly):
    list_display = ["experiment", "effective_at", "source", "weights_display", "actor"]
    list_filter = ["source"]
    search_fields = ["experiment__key"]

    @admin.display(description="weights")
    def weights_display(self, change: AllocationChange) -> str:
        return ", ".join(f"{key} {weight:.1%}" for key, weight in (change.weights or {}).items())


@admin.register(ContextualDecision)
class ContextualDecisionAdmin(_ReadOnly):
    list_display = ["pk", "experiment", "variant", "decided_at", "propensity", "reward"]
    search_fields = ["experiment__key"]
    date_hierarchy = "decided_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("variant")


@admin.register(AnalysisSnapshot)
class AnalysisSnapshotAdmin(_ReadOnly):
    list_display = ["experiment", "computed_at", "verdict"]
    search_fields = ["experiment__key"]
    fields = ["experiment", "computed_at", "verdict", "analysis_display"]
    readonly_fields = fields

    @admin.display(description="verdict")
    def verdict(self, snapshot: AnalysisSnapshot) -> str:
        analysis = analysis_from_snapshot(snapshot)
        return analysis.verdict_reason if analysis is not None else "—"

    @admin.display(description="analysis")
    def analysis_display(self, snapshot: AnalysisSnapshot) -> str:
        return format_html("<pre>{}</pre>", json.dumps(snapshot.analysis, indent=2, sort_keys=True))
