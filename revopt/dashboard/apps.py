from django.apps import AppConfig


class DashboardConfig(AppConfig):
    # Installed for its template tags (charts, money); it owns no models.
    name = "revopt.dashboard"
    label = "dashboard"
    verbose_name = "Merchant dashboard"
