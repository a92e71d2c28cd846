from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "revopt.tenancy"
    label = "tenancy"
    verbose_name = "Merchants and access"

    def ready(self) -> None:
        from revopt import db  # noqa: F401  (registers the any_of lookup)

        from . import schema  # noqa: F401  (registers the OpenAPI extension)
