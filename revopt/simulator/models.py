from django.db import models

from revopt.tenancy.models import MerchantOwned


class SimulationRun(MerchantOwned):
    """One simulated shop history and the ground truth behind it (true tastes, demand, elasticities)."""

    class Status(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    seed = models.BigIntegerField()
    config = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # What the simulator itself counted (sessions, carts, orders ...), to compare with what revopt stored.
    stats = models.JSONField(default=dict, blank=True)
    ground_truth = models.JSONField(default=dict, blank=True)
    # Why a failed run failed (the first rejected events, a catalog import error ...).
    error = models.TextField(blank=True, default="")
    catalog_import = models.ForeignKey(
        "catalog.CatalogImport", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The storefront key the run sent its events with; revoked when the run ends.
    api_key = models.ForeignKey("tenancy.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"simulation #{self.pk} (seed {self.seed})"
