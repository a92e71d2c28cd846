from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "revopt.tenancy"
    label = "tenancy"
    verbose_name = "Merchants and access"

    def ready(self) -> None:
        from . import schema  # noqa: F401  (registers the OpenAPI extension)
