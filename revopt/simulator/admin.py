from django.contrib import admin
from django.utils.html import format_html, format_html_join

from revopt.tenancy.admin_base import MerchantScopedAdmin

from .models import SimulationRun


@admin.register(SimulationRun)
class SimulationRunAdmin(MerchantScopedAdmin):
    list_display = ("pk", "seed", "status", "started_at", "finished_at", "sessions", "conversion")
    list_filter = ("status",)
    fields = ("seed", "status", "started_at", "finished_at", "stats_table", "config", "error", "catalog_import")
    readonly_fields = fields

    def get_queryset(self, request):
        # Ground truth runs to megabytes per run; the admin never shows it.
        return super().get_queryset(request).defer("ground_truth")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="sessions")
    def sessions(self, run: SimulationRun) -> int | None:
        return run.stats.get("sessions")

    @admin.display(description="conversion")
    def conversion(self, run: SimulationRun) -> str:
        value = run.stats.get("conversion")
        return f"{value:.2%}" if isinstance(value, float) else "—"

    @admin.display(description="what the simulator counted")
    def stats_table(self, run: SimulationRun) -> str:
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", sorted(run.stats.items()))
        return format_html("<table>{}</table>", rows)
