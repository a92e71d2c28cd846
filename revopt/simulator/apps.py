from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    name = "revopt.simulator"
    label = "simulator"
    verbose_name = "Shop simulator"
