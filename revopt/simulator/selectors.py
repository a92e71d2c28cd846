"""Reads of the simulator's runs, always for one merchant."""

from revopt.tenancy.models import Merchant

from .models import SimulationRun


def simulation_run_latest(
    *, merchant: Merchant, status: str | None = SimulationRun.Status.COMPLETED
) -> SimulationRun | None:
    runs = SimulationRun.objects.for_merchant(merchant)
    if status is not None:
        runs = runs.filter(status=status)
    return runs.order_by("-started_at", "-pk").first()
