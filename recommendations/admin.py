import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from catalog.models import Category
from revopt.tenancy.admin_base import MerchantScopedAdmin, ReadOnlyAdminMixin, merchant_for_request
from revopt.tenancy.models import Merchant

from .models import (
    FeedbackKind,
    ItemRuleAction,
    PlacementItemRule,
    PlacementRule,
    RecommenderSettings,
    RecommenderVersion,
    VersionStatus,
)
from .services.placements import (
    PLACEMENT_RULE_FIELDS,
    placement_item_rule_create,
    placement_item_rule_delete,
    placement_rule_save,
)
from .services.versions import (
    VersionNotActivatable,
    metrics_columns,
    promotion_summary,
    recommender_version_activate,
)

# The metric order of engine.evaluation.format_table (not imported: the admin must not load the ML stack).
EVALUATION_COLUMNS = ("precision@10", "recall@10", "ndcg@10", "map@10", "coverage", "novelty", "fit_seconds")

STATUS_COLOURS = {
    VersionStatus.TRAINING: "#175cd3",
    VersionStatus.CANDIDATE: "#6941c6",
    VersionStatus.ACTIVE: "#117a48",
    VersionStatus.RETIRED: "#667085",
    VersionStatus.REJECTED: "#b54708",
    VersionStatus.FAILED: "#b42318",
}
METRIC_ROWS = ("precision@10", "recall@10", "ndcg@10", "map@10", "coverage", "novelty")


def _number(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


class TrainNowForm(forms.Form):
    merchant = forms.ModelChoiceField(queryset=Merchant.objects.filter(is_active=True), help_text="The shop to train.")

    def __init__(self, *args, choose_merchant: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not choose_merchant:
            del self.fields["merchant"]


@admin.register(RecommenderVersion)
class RecommenderVersionAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    """Read-only history of trainings, with rollback and "Train now"; every change goes through a service."""

    list_display = [
        "number",
        "status_badge",
        "progress_display",
        "ndcg_vs_active",
        "data_window",
        "counts",
        "trigger",
        "created_at",
        "activated_at",
    ]
    list_filter = ["status", "trigger"]
    list_select_related = ["merchant"]
    ordering = ["-created_at", "-number"]
    actions = ["activate"]
    change_list_template = "admin/recommendations/recommenderversion/change_list.html"
    fields = [
        "number",
        "status_badge",
        "status_reason",
        "progress_display",
        "trigger",
        "created_by",
        "created_at",
        "finished_at",
        "activated_at",
        "retired_at",
        "data_window",
        "counts",
        "metrics_table",
        "evaluation_table",
        "params_display",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The artifact runs to megabytes; lists and detail pages never need it.
        return super().get_queryset(request).defer("artifact")

    def has_activate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("recommendations.change_recommenderversion")

    has_train_permission = has_activate_permission

    @admin.display(description="status", ordering="status")
    def status_badge(self, version: RecommenderVersion) -> str:
        return format_html(
            '<span style="background:{};color:#fff;border-radius:4px;padding:1px 6px;font-weight:600">{}</span>',
            STATUS_COLOURS.get(version.status, "#667085"),
            version.get_status_display(),
        )

    @admin.display(description="progress")
    def progress_display(self, version: RecommenderVersion) -> str:
        percent = round(version.progress * 100)
        return format_html(
            '<progress max="100" value="{}" title="{}%"></progress> {}',
            percent,
            percent,
            version.progress_message or f"{percent}%",
        )

    @admin.display(description="NDCG@10 (judged against)")
    def ndcg_vs_active(self, version: RecommenderVersion) -> str:
        score = (version.metrics or {}).get("ndcg@10")
        return promotion_summary(version) or (f"{score:.4f}" if isinstance(score, float) else "—")

    @admin.display(description="data window")
    def data_window(self, version: RecommenderVersion) -> str:
        if version.data_window_start is None or version.data_window_end is None:
            return "—"
        return f"{version.data_window_start:%Y-%m-%d} → {version.data_window_end:%Y-%m-%d}"

    @admin.display(description="interactions / customers / products")
    def counts(self, version: RecommenderVersion) -> str:
        return f"{version.interaction_count:,} / {version.customer_count:,} / {version.product_count:,}"

    @admin.display(description="offline metrics (temporal holdout)")
    def metrics_table(self, version: RecommenderVersion) -> str:
        columns = metrics_columns(version)
        if not columns:
            return "—"
        header = format_html_join("", "<th>{}</th>", ((title,) for title, _ in columns))
        rows = format_html_join(
            "",
            "<tr><td>{}</td>{}</tr>",
            (
                (name, format_html_join("", "<td>{}</td>", ((_number(cells.get(name, "—")),) for _, cells in columns)))
                for name in METRIC_ROWS
            ),
        )
        return format_html(
            "<p>{} customers in the holdout. NDCG@10 judged: {}</p>"
            "<table><thead><tr><th>metric</th>{}</tr></thead><tbody>{}</tbody></table>",
            version.metrics.get("holdout_users", "?"),
            promotion_summary(version) or "—",
            header,
            rows,
        )

    @admin.display(description="evaluation beside the baselines")
    def evaluation_table(self, version: RecommenderVersion) -> str:
        rows = version.evaluation or []
        if not rows:
            return "—"
        # PostgreSQL's jsonb does not keep key order: the ranker and its seeds first, then the
        # metrics in the order the engine reports them, then anything else.
        known = ("ranker", "seeds", *EVALUATION_COLUMNS)
        stored = set(key for row in rows for key in row)
        keys = [key for key in known if key in stored] + sorted(stored.difference(known))
        # compare() writes a mean and its "<metric>_sd" per metric: one "mean ± sd" cell each.
        with_sd = {key for key in keys if f"{key}_sd" in keys}
        columns = [key for key in keys if not (key.endswith("_sd") and key[:-3] in with_sd)]

        def cell(row: dict, key: str) -> str:
            if key in with_sd and isinstance(row.get(key), float):
                return f"{row[key]:.4f} ± {row.get(f'{key}_sd', 0.0):.4f}"
            return _number(row.get(key, ""))

        header = format_html_join("", "<th>{}</th>", ((column,) for column in columns))
        body = format_html_join(
            "",
            "<tr>{}</tr>",
            ((format_html_join("", "<td>{}</td>", ((cell(row, column),) for column in columns)),) for row in rows),
        )
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", header, body)

    @admin.display(description="parameters")
    def params_display(self, version: RecommenderVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(version.params, indent=2, sort_keys=True))

    @admin.action(description="Activate / roll back to this version", permissions=["activate"])
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one version to activate.", messages.ERROR)
            return
        version = queryset.select_related("merchant").get()
        try:
            recommender_version_activate(
                version=version, activated_by=request.user, reason=f"activated in the admin by {request.user}"
            )
        except VersionNotActivatable as refused:
            self.message_user(request, str(refused), messages.ERROR)
            return
        self.message_user(request, f"{version} now serves {version.merchant}.", messages.SUCCESS)

    def get_urls(self):
        train_view = self.admin_site.admin_view(self.train_now_view)
        return [
            path("train-now/", train_view, name="recommendations_recommenderversion_train_now"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "has_train_permission": self.has_train_permission(request),
            # While a training runs, the list reloads itself so its progress bar moves.
            "auto_refresh": self.get_queryset(request).filter(status=VersionStatus.TRAINING).exists(),
        }
        return super().changelist_view(request, extra_context)

    def train_now_view(self, request: HttpRequest) -> HttpResponse:
        choose_merchant = self._is_platform_admin(request)
        merchant = merchant_for_request(request)
        if not self.has_train_permission(request) or (merchant is None and not choose_merchant):
            raise PermissionDenied
        form = TrainNowForm(request.POST if request.method == "POST" else None, choose_merchant=choose_merchant)
        if request.method == "POST" and form.is_valid():
            merchant = form.cleaned_data.get("merchant") or merchant
            # Imported here: the task pulls in the training stack (scikit-learn, LightFM), which web
            # processes need only when someone presses this button.
            from .tasks import recommender_train_task

            recommender_train_task.delay(merchant.pk, trigger="admin", created_by_id=request.user.pk)
            self.message_user(
                request, f"Training of {merchant}'s recommenders is queued; its progress shows below.", messages.INFO
            )
            return redirect(reverse("admin:recommendations_recommenderversion_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Train the recommenders now",
            "form": form,
            "merchant": merchant,
        }
        return TemplateResponse(request, "admin/recommendations/recommenderversion/train_now.html", context)


class RecommenderSettingsForm(forms.ModelForm):
    class Meta:
        model = RecommenderSettings
        fields = [
            "merchant",
            "feedback_weights",
            "half_life_days",
            "training_window_days",
            "promotion_tolerance",
            "new_arrival_days",
        ]

    def clean_feedback_weights(self) -> dict[str, float]:
        weights = self.cleaned_data["feedback_weights"]
        if not isinstance(weights, dict):
            raise forms.ValidationError('Give one weight per feedback kind, e.g. {"view": 1, "purchase": 8}.')
        unknown = sorted(set(weights) - set(FeedbackKind.values))
        if unknown:
            raise forms.ValidationError(
                f"Unknown feedback kinds: {', '.join(unknown)} (known: {', '.join(FeedbackKind.values)})."
            )
        cleaned: dict[str, float] = {}
        for kind, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                raise forms.ValidationError(f"The weight of {kind!r} must be a number ≥ 0.")
            cleaned[kind] = float(weight)
        return cleaned


@admin.register(RecommenderSettings)
class RecommenderSettingsAdmin(MerchantScopedAdmin):
    form = RecommenderSettingsForm
    list_display = ["__str__", "half_life_days", "training_window_days", "promotion_tolerance", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One row per merchant: a manager whose shop has one edits it instead.
        merchant = merchant_for_request(request)
        if merchant is not None and RecommenderSettings.objects.for_merchant(merchant).exists():
            return False
        return super().has_add_permission(request)


class PlacementRuleForm(forms.ModelForm):
    class Meta:
        model = PlacementRule
        fields = ["merchant", "placement", *PLACEMENT_RULE_FIELDS, "repurchasable_categories", "allowed_categories"]

    def clean(self) -> dict:
        cleaned = super().clean()
        merchant = cleaned.get("merchant")
        if merchant is not None:  # a platform admin chose the shop: its rules may name only its categories
            for field in ("repurchasable_categories", "allowed_categories"):
                if any(category.merchant_id != merchant.pk for category in cleaned.get(field) or []):
                    self.add_error(field, f"Choose categories of {merchant} only.")
        return cleaned


class _CategoriesOfTheMerchant:
    """Many-to-many pickers offer only the staff user's own merchant's categories."""

    def formfield_for_manytomany(self, db_field, request: HttpRequest, **kwargs):
        if not self._is_platform_admin(request):
            merchant = merchant_for_request(request)
            kwargs["queryset"] = Category.objects.for_merchant(merchant) if merchant else Category.objects.none()
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(PlacementRule)
class PlacementRuleAdmin(_CategoriesOfTheMerchant, MerchantScopedAdmin):
    """Saves through `placement_rule_save`, which audits the change and drops the cached rules."""

    form = PlacementRuleForm
    list_display = [
        "placement",
        "exclude_purchased",
        "max_per_category",
        "mmr_lambda",
        "impression_discount",
        "default_k",
        "updated_at",
    ]
    filter_horizontal = ["repurchasable_categories", "allowed_categories"]
    readonly_fields = ["updated_at"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        # The service keys a rule by its placement; moving a rule to another placement is a new rule.
        return [*super().get_readonly_fields(request, obj), *(["placement"] if obj is not None else [])]

    def save_model(self, request: HttpRequest, obj: PlacementRule, form, change: bool) -> None:
        merchant = form.cleaned_data.get("merchant") or merchant_for_request(request)
        saved = placement_rule_save(
            merchant=merchant,
            placement=obj.placement,
            actor=request.user,
            repurchasable_category_ids=[category.pk for category in form.cleaned_data["repurchasable_categories"]],
            allowed_category_ids=[category.pk for category in form.cleaned_data["allowed_categories"]],
            **{name: form.cleaned_data[name] for name in PLACEMENT_RULE_FIELDS},
        )
        obj.pk, obj.merchant = saved.pk, saved.merchant

    def save_related(self, request: HttpRequest, form, formsets, change: bool) -> None:
        # The service has set the categories already; the form must not set them a second time.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


class PlacementItemRuleForm(forms.ModelForm):
    class Meta:
        model = PlacementItemRule
        fields = ["merchant", "product", "action", "placement", "position", "boost", "starts_at", "ends_at"]

    def clean(self) -> dict:
        # What placement_item_rule_create refuses, said on the form's fields instead of as an error page.
        cleaned = super().clean()
        action = cleaned.get("action")
        if action == ItemRuleAction.PIN and not cleaned.get("position"):
            self.add_error("position", "A pin needs a position.")
        if action == ItemRuleAction.BOOST and cleaned.get("boost") is None:
            self.add_error("boost", "A boost needs a multiplier.")
        starts_at, ends_at = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", "The rule must end after it starts.")
        merchant, product = cleaned.get("merchant"), cleaned.get("product")
        if merchant is not None and product is not None and product.merchant_id != merchant.pk:
            self.add_error("product", f"Choose a product of {merchant}.")
        return cleaned


@admin.register(PlacementItemRule)
class PlacementItemRuleAdmin(MerchantScopedAdmin):
    """Pins, boosts and blocks, created and deleted through the placement services (no in-place edits)."""

    form = PlacementItemRuleForm
    list_display = ["product", "action", "placement", "position", "boost", "starts_at", "ends_at"]
    list_filter = ["action", "placement"]
    search_fields = ["product__sku", "product__title"]
    autocomplete_fields = ["product"]
    list_select_related = ["product"]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("recommendations.change_placementitemrule")

    def save_model(self, request: HttpRequest, obj: PlacementItemRule, form, change: bool) -> None:
        merchant = form.cleaned_data.get("merchant") or merchant_for_request(request)
        if obj.product.merchant_id != merchant.pk:
            raise PermissionDenied
        created = placement_item_rule_create(
            merchant=merchant,
            product=obj.product,
            action=obj.action,
            placement=obj.placement,
            position=obj.position,
            boost=obj.boost,
            starts_at=obj.starts_at,
            ends_at=obj.ends_at,
            actor=request.user,
        )
        obj.pk, obj.merchant = created.pk, created.merchant

    def delete_model(self, request: HttpRequest, obj: PlacementItemRule) -> None:
        placement_item_rule_delete(rule=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for rule in queryset.select_related("merchant"):
            placement_item_rule_delete(rule=rule, actor=request.user)
