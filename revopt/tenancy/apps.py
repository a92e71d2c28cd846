from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "revopt.tenancy"
    label = "tenancy"
    verbose_name = "Merchants and access"
