"""The loyalty rows in the admin.

Programs are edited with their earn rules, tiers and rewards inline (saved through
`loyalty.services.points.loyalty_program_save`, audited). Accounts, the points ledger and redemptions are
read-only: the ledger is append-only, and the one thing to do with points here is "Adjust points", which asks
for a reason and goes through `points_adjust` (audited). The insight runs, customer scores and retention list
are written by the scheduled services and only shown here.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from revopt.tenancy.admin_base import (
    MerchantScopedAdmin,
    MerchantScopedInline,
    ReadOnlyAdminMixin,
    is_platform_admin_request,
    merchant_for_request,
)

from .models import (
    CustomerInsight,
    EarnRule,
    IncentiveKind,
    InsightRun,
    LoyaltyAccount,
    LoyaltyProgram,
    OfferDecision,
    OfferSettings,
    PointsEntry,
    RecoveryMessage,
    RecoverySettings,
    Redemption,
    RetentionCandidate,
    Reward,
    Tier,
    UpliftModel,
)
from .services.offers import offer_settings_save
from .services.points import REASON_MAX, LoyaltyError, loyalty_program_save, points_adjust
from .services.recovery import recovery_delays_problem, recovery_settings_save
from .webhook_target import webhook_target_check

# --- programs -------------------------------------------------------------------------------------------


class LoyaltyProgramForm(forms.ModelForm):
    class Meta:
        model = LoyaltyProgram
        fields = ["merchant", "name", "points_per_currency_unit", "expiry_days", "is_active"]
        help_texts = {
            "points_per_currency_unit": "Points per unit of the shop's currency (order subtotal after discounts).",
            "expiry_days": "Earned points expire this many days later unless spent first (blank: never).",
            "is_active": "A shop runs one active program at a time.",
        }

    request_merchant = None

    def clean(self) -> dict:
        cleaned = super().clean()
        merchant = cleaned.get("merchant") or self.request_merchant
        if cleaned.get("is_active") and merchant is not None:
            others = LoyaltyProgram.objects.for_merchant(merchant).filter(is_active=True)
            if self.instance.pk is not None:
                others = others.exclude(pk=self.instance.pk)
            other = others.first()
            if other is not None:
                self.add_error("is_active", f"{other.name} is the shop's active program: deactivate it first.")
        return cleaned


class _ProgramPartInline(MerchantScopedInline):
    extra = 0


class EarnRuleInline(_ProgramPartInline):
    model = EarnRule
    fields = ["action", "points", "limit_per_customer"]


class TierInline(_ProgramPartInline):
    model = Tier
    fields = ["name", "threshold_points", "earn_multiplier", "benefits"]


class RewardInline(_ProgramPartInline):
    model = Reward
    fields = ["name", "kind", "points_cost", "value", "minimum_tier", "is_active"]
    # Redemptions point at their reward: a reward is retired (unticked "is active"), never deleted.
    can_delete = False


@admin.register(LoyaltyProgram)
class LoyaltyProgramAdmin(MerchantScopedAdmin):
    form = LoyaltyProgramForm
    inlines = [EarnRuleInline, TierInline, RewardInline]
    list_display = ["name", "is_active", "points_per_currency_unit", "expiry_days", "created_at"]
    list_filter = ["is_active"]

    def get_form(self, request: HttpRequest, obj: LoyaltyProgram | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request_merchant = merchant_for_request(request)
        return form

    def has_delete_permission(self, request: HttpRequest, obj: LoyaltyProgram | None = None) -> bool:
        # Deleting a program would delete its members' ledgers: a program with members is deactivated instead.
        if obj is not None and obj.accounts.exists():
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: LoyaltyProgram, form, change: bool) -> None:
        if not is_platform_admin_request(request):
            obj.merchant = merchant_for_request(request)
        loyalty_program_save(program=obj, actor=request.user)

    def save_formset(self, request: HttpRequest, form, formset, change: bool) -> None:
        rows = formset.save(commit=False)
        for row in rows:
            row.merchant_id = form.instance.merchant_id
            row.save()
        for row in formset.deleted_objects:
            row.delete()
        formset.save_m2m()


# --- accounts and points ----------------------------------------------------------------------------------


class AdjustPointsForm(forms.Form):
    points = forms.IntegerField(help_text="Positive adds points, negative takes them away.")
    reason = forms.CharField(
        max_length=REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why; kept in the ledger and the audit log.",
    )

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError("Adjust by a non-zero number of points.")
        return points

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why the points are adjusted.")
        return reason


class RecentEntriesInline(ReadOnlyAdminMixin, MerchantScopedInline):
    model = PointsEntry
    fields = ["created_at", "kind", "points", "reason", "reward", "order", "expires_at", "actor"]
    readonly_fields = fields
    ordering = ["-created_at", "-pk"]
    extra = 0
    max_num = 0
    verbose_name_plural = "ledger"


@admin.register(LoyaltyAccount)
class LoyaltyAccountAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ["customer", "email_display", "program", "tier", "balance_display", "tier_changed_at", "adjust"]
    list_filter = ["tier", "program"]
    search_fields = ["customer__external_id", "customer__email"]
    actions = ["adjust_points"]
    inlines = [RecentEntriesInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("customer", "program", "tier", "merchant")
            .annotate(balance=Sum("entries__points"))
        )

    def get_list_display(self, request: HttpRequest):
        names = list(super().get_list_display(request))
        return names if self.has_adjust_permission(request) else [name for name in names if name != "adjust"]

    def has_adjust_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("loyalty.change_loyaltyaccount")

    @admin.display(description="e-mail")
    def email_display(self, account: LoyaltyAccount) -> str:
        return account.customer.email or "—"

    @admin.display(description="balance", ordering="balance")
    def balance_display(self, account: LoyaltyAccount) -> int:
        return int(account.balance or 0)

    @admin.display(description="")
    def adjust(self, account: LoyaltyAccount) -> str:
        url = reverse("admin:loyalty_loyaltyaccount_adjust", args=[account.pk])
        return format_html('<a href="{}">Adjust points</a>', url)

    def get_urls(self):
        return [
            path(
                "<int:account_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="loyalty_loyaltyaccount_adjust",
            ),
            *super().get_urls(),
        ]

    def _adjust_page(
        self, request: HttpRequest, accounts: list[LoyaltyAccount], form: AdjustPointsForm, form_action: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Adjust points",
            "accounts": accounts,
            "form": form,
            "form_action": form_action,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/loyalty/loyaltyaccount/adjust.html", context)

    def _adjust(self, request: HttpRequest, accounts: list[LoyaltyAccount], form: AdjustPointsForm) -> int:
        done = 0
        for account in accounts:
            try:
                entry = points_adjust(
                    account=account,
                    points=form.cleaned_data["points"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                )
            except LoyaltyError as refused:
                self.message_user(request, f"{account.customer}: not adjusted, {refused.reason}", messages.ERROR)
                continue
            done += 1
            self.message_user(request, f"{account.customer}: {entry.points:+d} points.", messages.SUCCESS)
        return done

    def adjust_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        account = self.get_queryset(request).filter(pk=account_id).first()
        if account is None:
            raise Http404("No such account.")
        if not self.has_adjust_permission(request):
            raise PermissionDenied
        form = AdjustPointsForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            self._adjust(request, [account], form)
            return redirect(reverse("admin:loyalty_loyaltyaccount_change", args=[account.pk]))
        return self._adjust_page(request, [account], form, form_action="")

    @admin.action(description="Adjust points of the selected accounts", permissions=["adjust"])
    def adjust_points(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        accounts = list(queryset.order_by("pk"))
        form = AdjustPointsForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            self._adjust(request, accounts, form)
            return None
        return self._adjust_page(request, accounts, form, form_action="")


@admin.register(PointsEntry)
class PointsEntryAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    """The append-only ledger: never added, edited or deleted here."""

    list_display = ["created_at", "account", "kind", "points", "reason", "reward", "order", "expires_at", "actor"]
    list_filter = ["kind"]
    search_fields = ["account__customer__external_id", "account__customer__email", "idempotency_key", "reason"]
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("account__customer", "reward", "order", "actor", "merchant")


@admin.register(Redemption)
class RedemptionAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ["code", "account", "reward", "created_at", "used_at"]
    search_fields = ["code", "account__customer__external_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("account__customer", "reward", "merchant")


# --- insights (written by the scheduled services) -----------------------------------------------------------


@admin.register(InsightRun)
class InsightRunAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ["__str__", "kind", "status", "started_at", "finished_at", "as_of", "customers"]
    list_filter = ["kind", "status"]
    exclude = ["artifact"]


@admin.register(CustomerInsight)
class CustomerInsightAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ["customer", "segment", "cluster", "orders", "revenue", "p_alive", "clv_12m", "churn_probability"]
    list_filter = ["segment"]
    search_fields = ["customer__external_id", "customer__email"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("customer", "merchant")


@admin.register(RetentionCandidate)
class RetentionCandidateAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ["customer", "churn_probability", "clv_12m", "offer", "offer_cost", "expected_value", "status"]
    list_filter = ["status", "offer"]
    search_fields = ["customer__external_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("customer", "merchant")


# --- funnel: offers at the cart -----------------------------------------------------------------------------


class OfferSettingsForm(forms.ModelForm):
    allowed_kinds = forms.MultipleChoiceField(
        choices=[(kind.value, kind.label) for kind in IncentiveKind if kind != IncentiveKind.NONE],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The incentives the decision may offer; none ticked = all of them. No offer is always possible.",
    )

    class Meta:
        model = OfferSettings
        fields = [
            "merchant",
            "enabled",
            "daily_budget",
            "max_offers_per_customer",
            "frequency_window_days",
            "exploration_share",
            "allowed_kinds",
            "shipping_cost",
            "free_shipping_threshold",
            "points_bonus",
            "point_value",
            "default_margin_rate",
            "offer_valid_hours",
        ]
        help_texts = {
            "daily_budget": "Face cost of the offers issued per day (the shop's time zone): never exceeded.",
            "exploration_share": "Share of decisions drawn at random (0..1): the data the uplift model learns from.",
            "default_margin_rate": "Margin rate (0..1) assumed for a cart line whose product has no cost.",
            "free_shipping_threshold": (
                "The shop's own free-shipping threshold: a cart worth at least this already ships free and is never "
                "offered free shipping. Empty if the shop has none."
            ),
        }

    def clean_exploration_share(self) -> float:
        share = self.cleaned_data["exploration_share"]
        if not 0 <= share <= 1:
            raise forms.ValidationError("A share between 0 and 1.")
        return share

    def clean_default_margin_rate(self) -> float:
        rate = self.cleaned_data["default_margin_rate"]
        if not 0 <= rate <= 1:
            raise forms.ValidationError("A rate between 0 and 1.")
        return rate

    def clean_free_shipping_threshold(self) -> Decimal | None:
        threshold = self.cleaned_data["free_shipping_threshold"]
        if threshold is not None and threshold < 0:
            raise forms.ValidationError("A cart value of 0 or more (empty: the shop has no threshold).")
        return threshold

    def clean_allowed_kinds(self) -> list[str]:
        kinds = list(self.cleaned_data.get("allowed_kinds") or [])
        unknown = [kind for kind in kinds if kind not in IncentiveKind.values or kind == IncentiveKind.NONE]
        if unknown:
            raise forms.ValidationError(f"Not an incentive: {', '.join(unknown)}.")
        return kinds


@admin.register(OfferSettings)
class OfferSettingsAdmin(MerchantScopedAdmin):
    form = OfferSettingsForm
    list_display = ["__str__", "enabled", "daily_budget", "max_offers_per_customer", "exploration_share", "updated_at"]

    def save_model(self, request: HttpRequest, obj: OfferSettings, form, change: bool) -> None:
        if not is_platform_admin_request(request):
            obj.merchant = merchant_for_request(request)
        offer_settings_save(settings=obj, actor=request.user)


class _RedeemedFilter(admin.SimpleListFilter):
    title = "redeemed"
    parameter_name = "redeemed"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [("yes", "Redeemed"), ("no", "Not redeemed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(redeemed_order__isnull=False)
        if self.value() == "no":
            return queryset.filter(redeemed_order__isnull=True)
        return queryset


@admin.register(OfferDecision)
class OfferDecisionAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ["decided_at", "cart_id", "customer", "channel", "kind", "reason", "cost", "code", "redeemed_at"]
    list_filter = ["kind", "reason", _RedeemedFilter, "channel", "randomized"]
    search_fields = ["code", "cart_id", "customer__external_id"]
    date_hierarchy = "decided_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("customer", "merchant")


# --- funnel: the incentive uplift model (written by the nightly training) -----------------------------------


@admin.register(UpliftModel)
class UpliftModelAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ["__str__", "method", "status", "started_at", "finished_at", "decisions", "progress"]
    list_filter = ["status", "method"]
    exclude = ["artifact"]


# --- funnel: abandoned-cart recovery ------------------------------------------------------------------------


class RecoverySettingsForm(forms.ModelForm):
    webhook_url = forms.URLField(
        assume_scheme="https",
        required=False,
        widget=forms.URLInput(attrs={"class": "vURLField", "size": 60}),
        help_text="Due messages are POSTed here (https), signed with the secret; empty: pull them from the API.",
    )

    class Meta:
        model = RecoverySettings
        fields = [
            "merchant",
            "enabled",
            "abandoned_after_minutes",
            "delays_minutes",
            "include_recommendations",
            "include_offer",
            "webhook_url",
            "webhook_secret",
        ]
        help_texts = {
            "abandoned_after_minutes": "A cart is abandoned once its session is idle this long without an order.",
            "delays_minutes": "Minutes after abandonment of each message, e.g. [60, 1440]: 1 to 5 increasing "
            "values from 15 minutes to 14 days (20160). Empty: [60, 1440].",
            "include_offer": "Ask the offer decision for an incentive in the last message.",
            "webhook_secret": "Signs each webhook body: X-Revopt-Signature = sha256=HMAC-SHA256(secret, body).",
        }
        # A short JSON list, not a page of text.
        widgets = {"delays_minutes": forms.TextInput(attrs={"size": 30})}

    def clean_delays_minutes(self) -> list[int]:
        delays = self.cleaned_data.get("delays_minutes") or []
        if delays == []:
            return []
        problem = recovery_delays_problem(delays)
        if problem is not None:
            raise forms.ValidationError(problem)
        return delays

    def clean(self) -> dict:
        cleaned = super().clean()
        url = cleaned.get("webhook_url") or ""
        if url and not url.startswith("https://"):
            self.add_error("webhook_url", "Use an https:// address: the messages carry customers' e-mails.")
        elif url and (refusal := webhook_target_check(url).refusal) is not None:
            self.add_error("webhook_url", f"This address cannot receive webhooks: {refusal}.")
        if url and not (cleaned.get("webhook_secret") or "").strip():
            self.add_error("webhook_secret", "A secret is needed to sign the webhook.")
        return cleaned


@admin.register(RecoverySettings)
class RecoverySettingsAdmin(MerchantScopedAdmin):
    form = RecoverySettingsForm
    list_display = ["__str__", "enabled", "abandoned_after_minutes", "delays_minutes", "include_offer", "updated_at"]

    def save_model(self, request: HttpRequest, obj: RecoverySettings, form, change: bool) -> None:
        if not is_platform_admin_request(request):
            obj.merchant = merchant_for_request(request)
        recovery_settings_save(settings=obj, actor=request.user)


@admin.register(RecoveryMessage)
class RecoveryMessageAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    """Written by the recovery services: scheduled, sent, cancelled or failed; only shown here (erased customers'
    messages left out)."""

    list_display = ["__str__", "customer", "step", "scheduled_at", "status", "sent_at", "cancelled_reason"]
    list_filter = ["status", "step"]
    search_fields = ["cart_id", "customer__external_id"]
    date_hierarchy = "scheduled_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request).filter(customer__erased_at__isnull=True)
        return queryset.select_related("customer", "merchant")
