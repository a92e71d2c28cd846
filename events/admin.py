from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from revopt.tenancy.admin_base import MerchantScopedAdmin, MerchantScopedInline, ReadOnlyAdminMixin

from . import services
from .models import AbandonmentModel, AnonymousIdentity, Customer, DataQualityReport, Event, Order, OrderLine, Session


class AnonymousIdentityInline(ReadOnlyAdminMixin, MerchantScopedInline):
    model = AnonymousIdentity
    fields = ("anonymous_id", "created_at")
    readonly_fields = fields
    extra = 0


@admin.register(Customer)
class CustomerAdmin(MerchantScopedAdmin):
    list_display = ("__str__", "email", "created_at", "marketing_consent", "personalization_opt_out", "merged_into")
    list_filter = ("marketing_consent", "personalization_opt_out", ("external_id", admin.EmptyFieldListFilter))
    search_fields = ("external_id", "email", "anonymous_identities__anonymous_id")
    readonly_fields = ("external_id", "created_at", "merged_into")
    fields = (
        "external_id",
        "email",
        "marketing_consent",
        "location_consent",
        "personalization_opt_out",
        "created_at",
        "merged_into",
    )
    inlines = [AnonymousIdentityInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ("external_id", "customer", "started_at", "device", "utm_source", "utm_campaign")
    list_filter = ("device", "utm_source")
    search_fields = ("external_id", "customer__external_id")
    date_hierarchy = "started_at"
    list_select_related = ("customer",)


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ("timestamp", "name", "customer", "product", "price", "quantity", "device")
    list_filter = ("name", "device")
    search_fields = ("message_id", "customer__external_id", "anonymous_id", "product__sku")
    date_hierarchy = "timestamp"
    list_select_related = ("customer", "product")
    show_full_result_count = False


class OrderLineInline(ReadOnlyAdminMixin, MerchantScopedInline):
    model = OrderLine
    fields = ("sku", "product", "quantity", "unit_price", "unit_cost")
    readonly_fields = fields
    extra = 0


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ("external_id", "customer", "placed_at", "total", "currency", "status")
    list_filter = ("status", "currency")
    search_fields = ("external_id", "customer__external_id", "customer__email")
    date_hierarchy = "placed_at"
    list_select_related = ("customer",)
    inlines = [OrderLineInline]


@admin.register(DataQualityReport)
class DataQualityReportAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    list_display = ("created_at", "verdict", "failing_checks", "window_start", "window_end")
    list_filter = ("passed",)
    readonly_fields = ("created_at", "verdict", "window_start", "window_end", "checks_table")
    fields = readonly_fields
    actions = ["run_again"]

    @admin.display(description="verdict", ordering="passed")
    def verdict(self, report: DataQualityReport) -> str:
        colour, word = ("#117a48", "passed") if report.passed else ("#b42318", "failed — training blocked")
        return format_html('<strong style="color:{}">{}</strong>', colour, word)

    @admin.display(description="failing checks")
    def failing_checks(self, report: DataQualityReport) -> str:
        return ", ".join(check["label"] for check in report.checks if check["status"] == "fail") or "—"

    @admin.display(description="checks")
    def checks_table(self, report: DataQualityReport) -> str:
        colours = {"pass": "#117a48", "warn": "#b54708", "fail": "#b42318"}
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td style="color:{};font-weight:600">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (c["label"], colours[c["status"]], c["status"], c["value"], c["limit"], c["detail"])
                for c in report.checks
            ),
        )
        return format_html(
            "<table><thead><tr><th>check</th><th>status</th><th>value</th><th>limit</th><th>detail</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.action(description="Run the data-quality checks again for these merchants")
    def run_again(self, request, queryset) -> None:
        merchants = {report.merchant for report in queryset.select_related("merchant")}
        for merchant in merchants:
            report = services.data_quality_report_create(merchant=merchant)
            self.message_user(request, f"{merchant}: {'passed' if report.passed else 'failed'}")


@admin.register(AbandonmentModel)
class AbandonmentModelAdmin(ReadOnlyAdminMixin, MerchantScopedAdmin):
    """Trainings of the cart-abandonment predictor: the newest succeeded one serves."""

    list_display = ("__str__", "status", "started_at", "finished_at", "test_auc", "baseline_auc", "carts")
    list_filter = ("status",)
    readonly_fields = (
        "status",
        "started_at",
        "finished_at",
        "progress",
        "error",
        "data_start",
        "split_at",
        "data_end",
        "train_carts",
        "test_carts",
        "test_auc",
        "baseline_auc",
        "brier",
        "calibration",
        "reliability_table",
        "importances_table",
    )
    fields = readonly_fields

    @admin.display(description="test AUC")
    def test_auc(self, run: AbandonmentModel) -> str:
        return _rounded(run.metrics.get("auc"))

    @admin.display(description="AUC of cart value + device")
    def baseline_auc(self, run: AbandonmentModel) -> str:
        return _rounded(run.metrics.get("auc_baseline"))

    @admin.display(description="Brier score")
    def brier(self, run: AbandonmentModel) -> str:
        return _rounded(run.metrics.get("brier"))

    @admin.display(description="carts (train / test)")
    def carts(self, run: AbandonmentModel) -> str:
        return f"{run.train_carts} / {run.test_carts}"

    @admin.display(description="calibration")
    def calibration(self, run: AbandonmentModel) -> str:
        metrics = run.metrics
        if not metrics:
            return "—"
        return (
            f"{metrics.get('calibration_method', 'none')}; mean predicted {_rounded(metrics.get('mean_predicted'))} "
            f"for {_rounded(metrics.get('base_rate'))} observed"
        )

    @admin.display(description="reliability (test carts by predicted decile)")
    def reliability_table(self, run: AbandonmentModel) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (_rounded(row["predicted"]), _rounded(row["observed"]), row["count"])
                for row in run.metrics.get("reliability", [])
            ),
        )
        return format_html("<table><tr><th>predicted</th><th>observed</th><th>carts</th></tr>{}</table>", rows)

    @admin.display(description="permutation importance (AUC lost)")
    def importances_table(self, run: AbandonmentModel) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td></tr>",
            ((name, _rounded(value)) for name, value in run.metrics.get("importances", {}).items()),
        )
        return format_html("<table>{}</table>", rows)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("artifact")


def _rounded(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
