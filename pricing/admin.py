"""The merchant's approval queue and the pricing rows, in the admin.

Every decision goes through `pricing.services.approval` (the actions, the Approve / Reject / Roll back
buttons) and every guardrail edit through `pricing.services.guardrails`; nothing here writes a price, a
proposal's status or a guardrail itself. Proposals and price changes are read-only forms: no one edits a
proposed price or a status by hand, and the history of live prices is append-only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from catalog.models import Category
from revopt.charts import CurveMarker, curve_chart
from revopt.tenancy.admin_base import (
    MerchantScopedAdmin,
    ReadOnlyAdminMixin,
    is_platform_admin_request,
    merchant_for_request,
)

from .guardrails import GuardrailCheck, GuardrailLimits, GuardrailViolation, feasible_range, guardrail_checks
from .models import (
    DemandModelRun,
    ElasticityEstimate,
    Guardrail,
    PriceChange,
    PriceProposal,
    PricingSettings,
    ProposalStatus,
)
from .selectors.access import can_decide_prices
from .selectors.guardrails import guardrail_contexts_for_products, guardrail_limits_for_products
from .services.approval import (
    PriceDecisionRefused,
    price_change_rollback,
    price_proposal_approve,
    price_proposal_reject,
    price_proposals_decide_bulk,
)
from .services.guardrails import guardrail_delete, guardrail_save, guardrail_validate, pricing_settings_save
from .sparkline import profit_sparkline

NOTE_MAX = 500
STATUS_SHORT = {
    ProposalStatus.PENDING: "pending",
    ProposalStatus.APPROVED: "approved",
    ProposalStatus.AUTO_APPROVED: "auto-approved",
    ProposalStatus.REJECTED: "rejected",
    ProposalStatus.SUPERSEDED: "superseded",
}


def _money(value: Decimal | float | None) -> str:
    return "—" if value is None else f"{Decimal(str(value)).quantize(Decimal('0.01')):,}"


def _signed(value: float, digits: int = 0) -> str:
    return f"{value:+,.{digits}f}".replace("-", "−")


def _refusal_text(error: Exception) -> str:
    if isinstance(error, GuardrailViolation):
        return "it breaks a guardrail: " + "; ".join(check.message for check in error.checks)
    if isinstance(error, PriceDecisionRefused):
        return error.reason
    return str(error)


def _stored_checks(proposal: PriceProposal) -> tuple[GuardrailCheck, ...]:
    """The checks saved on the proposal (at creation, or at its decision), tolerating odd rows."""
    return tuple(
        GuardrailCheck(
            name=str(check.get("name", "")),
            passed=bool(check.get("passed")),
            limit=str(check.get("limit", "")),
            message=str(check.get("message", "")),
        )
        for check in proposal.guardrail_checks or []
        if isinstance(check, dict)
    )


def _may_decide(request: HttpRequest, merchant) -> bool:
    return can_decide_prices(user=request.user, merchant=merchant)


# --- the approval queue ---------------------------------------------------------------------------------


class CategoryFilter(admin.SimpleListFilter):
    """The product's category, listing only the categories the staff user's shop has."""

    title = "category"
    parameter_name = "category"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        categories = Category.objects.all()
        if not is_platform_admin_request(request):
            merchant = merchant_for_request(request)
            categories = Category.objects.for_merchant(merchant) if merchant else Category.objects.none()
        return [(str(pk), path_) for pk, path_ in categories.order_by("path").values_list("pk", "path")[:200]]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(product__category_id=self.value())
        return queryset


def _live_checks_for(proposals: list[PriceProposal]) -> None:
    """Attach `live_checks` to each pending proposal: its guardrails judged as they stand now, read in a
    constant number of queries per merchant on the page (the stored checks are those at creation)."""
    now = timezone.now()
    by_merchant: dict[int, list[PriceProposal]] = defaultdict(list)
    for proposal in proposals:
        if proposal.status == ProposalStatus.PENDING:
            by_merchant[proposal.merchant_id].append(proposal)
    for rows in by_merchant.values():
        products = [row.product for row in rows]
        merchant = rows[0].merchant
        limits = guardrail_limits_for_products(merchant=merchant, products=products)
        contexts = guardrail_contexts_for_products(merchant=merchant, products=products, now=now, limits=limits)
        for row in rows:
            row.live_checks = guardrail_checks(limits[row.product_id], contexts[row.product_id], row.proposed_price)
            row.is_stale = row.product.price != row.current_price


@admin.register(PriceProposal)
class PriceProposalAdmin(MerchantScopedAdmin):
    list_display = [
        "product_display",
        "price_display",
        "profit_display",
        "confidence_display",
        "guardrails_display",
        "curve_display",
        "status_display",
    ]
    list_display_links = ["product_display"]
    list_filter = ["status", CategoryFilter, "explored", "objective"]
    search_fields = ["product__sku", "product__title"]
    ordering = ["-created_at"]
    list_per_page = 50
    actions = ["approve_selected", "reject_selected"]
    change_list_template = "admin/pricing/priceproposal/change_list.html"
    change_form_template = "admin/pricing/priceproposal/change_form.html"
    fieldsets = [
        (None, {"fields": ["product", "status", "objective", "current_price", "proposed_price", "unit_cost"]}),
        (
            "Expected per week against the current price (90% intervals)",
            {"fields": ["units_display", "revenue_display", "profit_interval_display", "confidence", "explored"]},
        ),
        ("Elasticity", {"fields": ["elasticity", "elasticity_lower", "elasticity_upper", "run"]}),
        ("Decision", {"fields": ["created_at", "decided_at", "decided_by", "decision_note"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("product", "product__category", "merchant", "decided_by")

    def get_readonly_fields(self, request: HttpRequest, obj: PriceProposal | None = None) -> list[str]:
        # Every field: a proposal changes only through a decision.
        names = [field for _, options in self.fieldsets for field in options["fields"]]
        return [*names, "merchant"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: PriceProposal | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PriceProposal | None = None) -> bool:
        return False

    def has_decide_permission(self, request: HttpRequest) -> bool:
        if is_platform_admin_request(request):
            return True
        merchant = merchant_for_request(request)
        return merchant is not None and _may_decide(request, merchant)

    # --- the list -----------------------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl") if hasattr(response, "context_data") else None
        if changelist is not None:
            _live_checks_for(list(changelist.result_list))
        return response

    @admin.display(description="product", ordering="product__title")
    def product_display(self, proposal: PriceProposal) -> str:
        explored = (
            format_html(
                ' <span class="pricing-tag" title="{}">explore</span>', "Chosen to learn where the model is unsure"
            )
            if proposal.explored
            else ""
        )
        return format_html(
            '<strong>{}</strong>{}<div class="pricing-muted">{}</div>',
            proposal.product.title,
            explored,
            proposal.product.sku,
        )

    @admin.display(description="price")
    def price_display(self, proposal: PriceProposal) -> str:
        change = proposal.change_share
        direction = "up" if change > 0 else "down" if change < 0 else "flat"
        arrow = {"up": "▲", "down": "▼", "flat": "■"}[direction]
        return format_html(
            '<span class="pricing-nowrap">{} → <strong>{}</strong></span> '
            '<span class="pricing-change pricing-{}">{} {}%</span>',
            _money(proposal.current_price),
            _money(proposal.proposed_price),
            direction,
            arrow,
            _signed(change * 100, 1),
        )

    @admin.display(description="profit / week", ordering="profit_change")
    def profit_display(self, proposal: PriceProposal) -> str:
        tone = "up" if proposal.profit_change_lower > 0 else "down" if proposal.profit_change_upper < 0 else "flat"
        return format_html(
            '<span class="pricing-{}"><strong>{}</strong></span><div class="pricing-muted">{} to {}</div>',
            tone,
            _signed(proposal.profit_change),
            _signed(proposal.profit_change_lower),
            _signed(proposal.profit_change_upper),
        )

    @admin.display(description="confidence", ordering="confidence")
    def confidence_display(self, proposal: PriceProposal) -> str:
        percent = max(0.0, min(1.0, proposal.confidence)) * 100
        return format_html(
            '<span class="pricing-meter" title="Probability that the proposed price beats the current one">'
            '<span style="width:{}%"></span></span> {}%',
            f"{percent:.0f}",
            f"{percent:.0f}",
        )

    @admin.display(description="guardrails")
    def guardrails_display(self, proposal: PriceProposal) -> str:
        checks = getattr(proposal, "live_checks", None)
        if checks is None:  # decided: as checked at the time
            checks = _stored_checks(proposal)
        if getattr(proposal, "is_stale", False):
            return format_html(
                '<span class="pricing-bad" title="{}">✗ stale</span>',
                f"Made against {proposal.current_price}; the live price is {proposal.product.price}.",
            )
        failed = [check for check in checks if not check.passed]
        if failed:
            return format_html(
                '<span class="pricing-bad" title="{}">✗ {}</span>',
                " ".join(check.message for check in failed),
                ", ".join(check.name.replace("_", " ") for check in failed),
            )
        return format_html(
            '<span class="pricing-good" title="{}">✓ {}</span>',
            " ".join(check.message for check in checks) or "No guardrails set.",
            f"{len(checks)} passed" if checks else "none set",
        )

    @admin.display(description="profit curve")
    def curve_display(self, proposal: PriceProposal) -> str:
        svg = profit_sparkline(
            proposal.curve or [],
            current_price=float(proposal.current_price),
            proposed_price=float(proposal.proposed_price),
        )
        return mark_safe(svg) if svg else "—"  # noqa: S308 - built and escaped by pricing.sparkline

    @admin.display(description="status", ordering="-created_at")
    def status_display(self, proposal: PriceProposal) -> str:
        label = STATUS_SHORT.get(proposal.status, proposal.get_status_display())
        return format_html(
            '<span class="pricing-status pricing-status-{}" title="{}">{}</span><div class="pricing-muted">{}</div>',
            proposal.status,
            proposal.get_status_display(),
            label,
            timezone.localtime(proposal.created_at).strftime("%b %d, %H:%M"),
        )

    # --- the change view's read-only figures ----------------------------------------------------------

    def _interval(self, expected: float, lower: float, upper: float, digits: int = 0) -> str:
        return f"{_signed(expected, digits)} ({_signed(lower, digits)} to {_signed(upper, digits)})"

    @admin.display(description="units")
    def units_display(self, proposal: PriceProposal) -> str:
        return self._interval(proposal.units_change, proposal.units_change_lower, proposal.units_change_upper, 1)

    @admin.display(description="revenue")
    def revenue_display(self, proposal: PriceProposal) -> str:
        return self._interval(proposal.revenue_change, proposal.revenue_change_lower, proposal.revenue_change_upper)

    @admin.display(description="profit")
    def profit_interval_display(self, proposal: PriceProposal) -> str:
        return self._interval(proposal.profit_change, proposal.profit_change_lower, proposal.profit_change_upper)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        proposal = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if proposal is not None:
            extra_context.update(self._decision_context(request, proposal))
        return super().change_view(request, object_id, form_url, extra_context)

    def _decision_context(self, request: HttpRequest, proposal: PriceProposal) -> dict:
        now = timezone.now()
        limits = guardrail_limits_for_products(merchant=proposal.merchant, products=[proposal.product])
        context = guardrail_contexts_for_products(
            merchant=proposal.merchant, products=[proposal.product], now=now, limits=limits
        )[proposal.product_id]
        pending = proposal.status == ProposalStatus.PENDING
        live_checks = (
            guardrail_checks(limits[proposal.product_id], context, proposal.proposed_price)
            if pending
            else _stored_checks(proposal)
        )
        allowed = feasible_range(limits[proposal.product_id], context)
        markers = [
            CurveMarker(label=f"current {_money(proposal.current_price)}", x=float(proposal.current_price)),
            CurveMarker(
                label=f"proposed {_money(proposal.proposed_price)}", x=float(proposal.proposed_price), kind="proposed"
            ),
        ]
        if context.lowest_competitor_price is not None:
            markers.append(
                CurveMarker(
                    label=f"competitor {_money(context.lowest_competitor_price)}",
                    x=float(context.lowest_competitor_price),
                    kind="competitor",
                )
            )
        curve = [p for p in proposal.curve or [] if isinstance(p, dict) and {"price", "profit"} <= p.keys()]
        profit_chart = curve_chart(
            [
                (p["price"], p["profit"], p.get("profit_lower", p["profit"]), p.get("profit_upper", p["profit"]))
                for p in curve
            ],
            title="Expected profit per week by price",
            markers=markers,
            shade=(float(allowed[0]), float(allowed[1])) if allowed else None,
            shade_label="prices the guardrails allow",
            chart_id=f"proposal-{proposal.pk}-profit",
            empty_message="This proposal has no curve.",
        )
        demand_chart = curve_chart(
            [(p["price"], p["units"], p["units"], p["units"]) for p in curve if "units" in p],
            title="Expected units per week by price",
            markers=markers,
            chart_id=f"proposal-{proposal.pk}-units",
            height=180,
            empty_message="This proposal has no curve.",
        )
        stale = pending and proposal.product.price != proposal.current_price
        return {
            "proposal": proposal,
            "profit_chart": mark_safe(profit_chart),  # noqa: S308 - escaped by revopt.charts
            "demand_chart": mark_safe(demand_chart),  # noqa: S308 - escaped by revopt.charts
            "live_checks": live_checks,
            "feasible_range": allowed,
            "can_decide": pending and _may_decide(request, proposal.merchant),
            "is_stale": stale,
            "live_price": proposal.product.price,
            "all_passed": all(check.passed for check in live_checks) and not stale,
            "impact": [
                ("Profit / week", self.profit_interval_display(proposal)),
                ("Revenue / week", self.revenue_display(proposal)),
                ("Units / week", self.units_display(proposal)),
            ],
            "approve_url": reverse("admin:pricing_priceproposal_approve", args=[proposal.pk]),
            "reject_url": reverse("admin:pricing_priceproposal_reject", args=[proposal.pk]),
            "note_max": NOTE_MAX,
        }

    # --- decisions ------------------------------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<int:proposal_id>/approve/",
                self.admin_site.admin_view(self.approve_view),
                name="pricing_priceproposal_approve",
            ),
            path(
                "<int:proposal_id>/reject/",
                self.admin_site.admin_view(self.reject_view),
                name="pricing_priceproposal_reject",
            ),
            *super().get_urls(),
        ]

    def _decide_one(self, request: HttpRequest, proposal_id: int, *, approve: bool) -> HttpResponse:
        proposal = self.get_queryset(request).filter(pk=proposal_id).first()
        if proposal is None:
            raise Http404("No such proposal.")
        if not _may_decide(request, proposal.merchant):
            raise PermissionDenied
        note = (request.POST.get("note") or "").strip()[:NOTE_MAX]
        try:
            if approve:
                change = price_proposal_approve(proposal=proposal, actor=request.user, note=note)
            else:
                price_proposal_reject(proposal=proposal, actor=request.user, note=note)
        except (PriceDecisionRefused, GuardrailViolation) as error:
            verb = "approved" if approve else "rejected"
            self.message_user(request, f"{proposal.product}: not {verb}, {_refusal_text(error)}", messages.ERROR)
            return redirect(reverse("admin:pricing_priceproposal_change", args=[proposal.pk]))
        if approve:
            self.message_user(
                request,
                f"{proposal.product} is now {_money(change.to_price)} (was {_money(change.from_price)}).",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, f"{proposal.product}: proposal rejected, the price stays.", messages.SUCCESS)
        return redirect(reverse("admin:pricing_priceproposal_changelist"))

    def approve_view(self, request: HttpRequest, proposal_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405)
        return self._decide_one(request, proposal_id, approve=True)

    def reject_view(self, request: HttpRequest, proposal_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405)
        return self._decide_one(request, proposal_id, approve=False)

    def _decide_bulk(self, request: HttpRequest, queryset: QuerySet, *, approve: bool) -> None:
        by_merchant: dict[int, list[PriceProposal]] = defaultdict(list)
        for proposal in queryset.order_by("pk"):
            by_merchant[proposal.merchant_id].append(proposal)
        decided, refused = 0, []
        for rows in by_merchant.values():
            merchant = rows[0].merchant
            if not _may_decide(request, merchant):
                refused += [f"{row.product}: you may not decide {merchant}'s prices" for row in rows]
                continue
            result = price_proposals_decide_bulk(
                merchant=merchant, proposal_ids=[row.pk for row in rows], actor=request.user, approve=approve
            )
            decided += len(result.decided)
            names = {row.pk: str(row.product) for row in rows}
            refused += [f"{names.get(pk, pk)}: {reason}" for pk, reason in result.refused.items()]
        verb = "approved (now live)" if approve else "rejected"
        if decided:
            self.message_user(request, f"{decided} proposal{'s' if decided != 1 else ''} {verb}.", messages.SUCCESS)
        if refused:
            self.message_user(
                request,
                format_html(
                    "{} not {}:<ul>{}</ul>",
                    len(refused),
                    "approved" if approve else "rejected",
                    format_html_join("", "<li>{}</li>", ((reason,) for reason in refused)),
                ),
                messages.ERROR,
            )

    @admin.action(description="Approve selected", permissions=["decide"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._decide_bulk(request, queryset, approve=True)

    @admin.action(description="Reject selected", permissions=["decide"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._decide_bulk(request, queryset, approve=False)


# --- live price changes ---------------------------------------------------------------------------------


class RollbackForm(forms.Form):
    reason = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Why the change is undone; kept in the audit log.",
    )


@admin.register(PriceChange)
class PriceChangeAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    """Append-only: shown, never added, edited or deleted. Roll back is the one thing to do here."""

    list_display = ["product", "change_display", "source", "actor", "created_at", "reason_display"]
    list_filter = ["source"]
    search_fields = ["product__sku", "product__title", "reason"]
    date_hierarchy = "created_at"
    actions = ["roll_back"]
    change_form_template = "admin/pricing/pricechange/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("product", "actor", "merchant")

    def has_decide_permission(self, request: HttpRequest) -> bool:
        if is_platform_admin_request(request):
            return True
        merchant = merchant_for_request(request)
        return merchant is not None and _may_decide(request, merchant)

    @admin.display(description="change")
    def change_display(self, change: PriceChange) -> str:
        direction = "up" if change.to_price > change.from_price else "down"
        share = float(change.to_price / change.from_price - 1) * 100
        return format_html(
            '{} → <strong>{}</strong> <span class="pricing-change pricing-{}">{}%</span>',
            _money(change.from_price),
            _money(change.to_price),
            direction,
            _signed(share, 1),
        )

    @admin.display(description="reason")
    def reason_display(self, change: PriceChange) -> str:
        return change.reason if len(change.reason) <= 80 else change.reason[:79] + "…"

    def get_urls(self):
        return [
            path(
                "<int:change_id>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name="pricing_pricechange_rollback",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        change = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if change is not None:
            extra_context.update(
                {
                    "can_roll_back": _may_decide(request, change.merchant),
                    "rollback_url": reverse("admin:pricing_pricechange_rollback", args=[change.pk]),
                    "rollback_form": RollbackForm(),
                }
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def _roll_back(self, request: HttpRequest, change: PriceChange, reason: str) -> bool:
        try:
            rollback = price_change_rollback(change=change, actor=request.user, reason=reason)
        except (PriceDecisionRefused, GuardrailViolation) as error:
            self.message_user(request, f"{change.product}: not rolled back, {_refusal_text(error)}", messages.ERROR)
            return False
        self.message_user(
            request,
            f"{change.product} is back at {_money(rollback.to_price)} (was {_money(rollback.from_price)}).",
            messages.SUCCESS,
        )
        return True

    def rollback_view(self, request: HttpRequest, change_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405)
        change = self.get_queryset(request).filter(pk=change_id).first()
        if change is None:
            raise Http404("No such price change.")
        if not _may_decide(request, change.merchant):
            raise PermissionDenied
        form = RollbackForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "Say why the change is rolled back.", messages.ERROR)
            return redirect(reverse("admin:pricing_pricechange_change", args=[change.pk]))
        self._roll_back(request, change, form.cleaned_data["reason"])
        return redirect(reverse("admin:pricing_pricechange_changelist"))

    @admin.action(description="Roll back selected changes", permissions=["decide"])
    def roll_back(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """An intermediate page asks why; newest first, so a product's changes unwind in order."""
        changes = list(queryset.order_by("-created_at", "-pk"))
        form = RollbackForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            done = sum(self._roll_back(request, change, form.cleaned_data["reason"]) for change in changes)
            if done:
                self.message_user(request, f"{done} change{'s' if done != 1 else ''} rolled back.", messages.INFO)
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Roll back price changes",
            "changes": changes,
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/pricing/pricechange/rollback_confirm.html", context)


# --- guardrails and settings ----------------------------------------------------------------------------

LIMIT_NAMES = tuple(asdict(GuardrailLimits()))


class GuardrailForm(forms.ModelForm):
    class Meta:
        model = Guardrail
        fields = ["merchant", "scope", "category", "product", *LIMIT_NAMES, "note"]
        help_texts = {
            "min_margin": "A share: 0.20 means (price − cost) / price of at least 20%.",
            "max_change_per_step": "A share of the current price: 0.10 allows ±10% per change.",
            "max_change_per_week": "A share of the price in force seven days earlier.",
            "period_days": "The window the maximum number of changes counts over (7 when blank).",
            "competitor_band_low": "A ratio to the lowest competitor price of the last seven days: 0.90 is 90%.",
            "competitor_band_high": "1.10 is 110% of the lowest competitor price.",
            "map_price": "Minimum advertised price set by the brand; product rows only.",
        }

    request_merchant = None

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        merchant = cleaned.get("merchant") or self.request_merchant
        if merchant is None:
            raise ValidationError({"merchant": ["Choose the shop."]} if "merchant" in self.fields else "No shop.")
        try:
            guardrail_validate(
                merchant=merchant,
                scope=cleaned.get("scope"),
                category=cleaned.get("category"),
                product=cleaned.get("product"),
                limits=GuardrailLimits(**{name: cleaned.get(name) for name in LIMIT_NAMES}),
                guardrail=self.instance if self.instance.pk else None,
                must_be_new=self.instance.pk is None,
            )
        except ValidationError as error:
            for field, field_errors in error.message_dict.items():
                self.add_error(field if field in self.fields else None, field_errors)
        return cleaned

    def validate_unique(self) -> None:
        # guardrail_validate names the target that already has a row; the model's checks would too, without
        # the merchant (hidden from shop staff), so they are skipped here.
        return None


@admin.register(Guardrail)
class GuardrailAdmin(MerchantScopedAdmin):
    form = GuardrailForm
    list_display = ["__str__", "scope", "limits_display", "updated_at"]
    list_filter = ["scope"]
    search_fields = ["product__sku", "product__title", "category__path", "note"]
    # Searched, not listed: a shop has thousands of products (the search is scoped by the catalog admins).
    autocomplete_fields = ["category", "product"]
    fieldsets = [
        (None, {"fields": ["merchant", "scope", "category", "product", "note"]}),
        ("Price level", {"fields": ["price_floor", "price_ceiling", "min_margin", "map_price"]}),
        ("Competitors", {"fields": ["competitor_band_low", "competitor_band_high"]}),
        (
            "How fast prices may move",
            {"fields": ["max_change_per_step", "max_change_per_week", "max_changes_per_period", "period_days"]},
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("category", "product", "merchant")

    def get_fieldsets(self, request: HttpRequest, obj: Guardrail | None = None):
        fieldsets = super().get_fieldsets(request, obj)
        if is_platform_admin_request(request):
            return fieldsets
        first, *rest = fieldsets
        return [(first[0], {**first[1], "fields": [f for f in first[1]["fields"] if f != "merchant"]}), *rest]

    def get_form(self, request: HttpRequest, obj: Guardrail | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request_merchant = merchant_for_request(request)
        return form

    @admin.display(description="limits")
    def limits_display(self, guardrail: Guardrail) -> str:
        parts = [
            f"{name.replace('_', ' ')} {getattr(guardrail, name)}"
            for name in LIMIT_NAMES
            if getattr(guardrail, name) is not None
        ]
        return "; ".join(parts) or "— (inherits everything)"

    def save_model(self, request: HttpRequest, obj: Guardrail, form, change: bool) -> None:
        data = form.cleaned_data
        saved = guardrail_save(
            merchant=data.get("merchant") or merchant_for_request(request),
            actor=request.user,
            scope=data["scope"],
            category=data.get("category"),
            product=data.get("product"),
            limits=GuardrailLimits(**{name: data.get(name) for name in LIMIT_NAMES}),
            note=data.get("note") or "",
            guardrail=obj if change else None,
        )
        obj.pk, obj.merchant = saved.pk, saved.merchant

    def delete_model(self, request: HttpRequest, obj: Guardrail) -> None:
        guardrail_delete(guardrail=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for guardrail in queryset:
            guardrail_delete(guardrail=guardrail, actor=request.user)


@admin.register(PricingSettings)
class PricingSettingsAdmin(MerchantScopedAdmin):
    list_display = ["__str__", "objective", "auto_approve_display", "explore", "horizon_days", "updated_at"]
    readonly_fields = ["updated_at"]

    @admin.display(description="auto-approve band")
    def auto_approve_display(self, settings: PricingSettings) -> str:
        band = settings.auto_approve_max_change
        return "off" if band <= 0 else f"±{band * 100:.4g}%"

    def has_add_permission(self, request: HttpRequest) -> bool:
        merchant = merchant_for_request(request)
        if merchant is not None and PricingSettings.objects.for_merchant(merchant).exists():
            return False
        return super().has_add_permission(request)

    def save_model(self, request: HttpRequest, obj: PricingSettings, form, change: bool) -> None:
        if not self._is_platform_admin(request):
            obj.merchant = merchant_for_request(request)
        pricing_settings_save(settings=obj, actor=request.user, changed_fields=list(form.changed_data))


class _ReadOnly(ReadOnlyAdminMixin, MerchantScopedAdmin):
    """Rows the demand model writes: shown for audit, never edited."""


@admin.register(DemandModelRun)
class DemandModelRunAdmin(_ReadOnly):
    list_display = ["__str__", "status", "started_at", "finished_at", "products_fitted", "product_days", "progress"]
    list_filter = ["status"]


@admin.register(ElasticityEstimate)
class ElasticityEstimateAdmin(_ReadOnly):
    list_display = ["product", "elasticity", "lower", "upper", "pooling_weight", "days_observed", "run"]
    search_fields = ["product__sku", "product__title"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("product", "run")
