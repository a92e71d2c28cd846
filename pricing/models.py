"""Pricing rows: the merchant's pricing settings and guardrails, the demand model's fits and estimates,
price proposals waiting for a decision, and the append-only history of every live price change.

Prices are the same for every shopper: nothing here is keyed by a customer, a location or a device.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from catalog.models import Category, Product
from revopt.tenancy.models import MerchantOwned


class Objective(models.TextChoices):
    PROFIT = "profit", "Profit (gross margin)"
    REVENUE = "revenue", "Revenue"
    SELL_THROUGH = "sell_through", "Sell-through (clear stock by the horizon)"


class PricingSettings(MerchantOwned):
    """A merchant's pricing defaults; one row per merchant, created on first use."""

    objective = models.CharField(max_length=16, choices=Objective.choices, default=Objective.PROFIT)
    # Proposals whose change is at most this share of the current price, and that pass every guardrail,
    # go live without a person (0 disables auto-approval).
    auto_approve_max_change = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("0.5"))],
    )
    # Thompson sampling over the elasticity posterior when it is wide, instead of the posterior mean.
    explore = models.BooleanField(default=True)
    # Inventory is judged against the demand expected over this many days.
    horizon_days = models.PositiveIntegerField(default=28, validators=[MinValueValidator(1), MaxValueValidator(365)])
    # Stock that would take longer than this to sell at today's demand is dead stock, worth a price cut to clear;
    # blank: never cut a price to clear stock.
    dead_stock_cover_days = models.PositiveIntegerField(
        default=365, null=True, blank=True, validators=[MinValueValidator(30), MaxValueValidator(3650)]
    )
    # Days of history the demand model is fitted on.
    history_days = models.PositiveIntegerField(default=180, validators=[MinValueValidator(14), MaxValueValidator(730)])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "pricing settings"
        constraints = [models.UniqueConstraint(fields=["merchant"], name="pricing_settings_one_per_merchant")]

    def __str__(self) -> str:
        return f"Pricing settings of {self.merchant}"


class GuardrailScope(models.TextChoices):
    MERCHANT = "merchant", "Whole shop"
    CATEGORY = "category", "Category (and its subcategories)"
    PRODUCT = "product", "Product"


class Guardrail(MerchantOwned):
    """Limits every price must respect. A blank field inherits from the wider scope (product → category,
    nearest ancestor first → shop); `pricing.services.guardrails.guardrail_limits_for` resolves them.
    Fractions are shares: 0.10 is 10%."""

    scope = models.CharField(max_length=16, choices=GuardrailScope.choices)
    category = models.ForeignKey(Category, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    price_floor = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    price_ceiling = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # Minimum (price - cost) / price.
    min_margin = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    max_change_per_step = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    # Against the price in force seven days before the change.
    max_change_per_week = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    max_changes_per_period = models.PositiveIntegerField(null=True, blank=True)
    period_days = models.PositiveIntegerField(null=True, blank=True)
    # Band relative to the lowest competitor price seen in the last seven days: 0.90 → 1.10.
    competitor_band_low = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    competitor_band_high = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    # Minimum advertised price set by the brand (product scope only).
    map_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    note = models.CharField(max_length=300, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(scope="merchant", category__isnull=True, product__isnull=True)
                    | models.Q(scope="category", category__isnull=False, product__isnull=True)
                    | models.Q(scope="product", category__isnull=True, product__isnull=False)
                ),
                name="guardrail_scope_matches_target",
            ),
            models.UniqueConstraint(
                fields=["merchant"], condition=models.Q(scope="merchant"), name="guardrail_one_per_merchant"
            ),
            models.UniqueConstraint(fields=["merchant", "category"], name="guardrail_one_per_category"),
            models.UniqueConstraint(fields=["merchant", "product"], name="guardrail_one_per_product"),
        ]

    def __str__(self) -> str:
        target = self.product or self.category or "whole shop"
        return f"Guardrails: {target}"


class ModelRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class DemandModelRun(MerchantOwned):
    """One fit of the demand model. The estimates in service are those of the latest succeeded run, so a
    failed fit never replaces them."""

    status = models.CharField(max_length=16, choices=ModelRunStatus.choices, default=ModelRunStatus.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    history_start = models.DateField(null=True, blank=True)
    history_end = models.DateField(null=True, blank=True)
    products_fitted = models.PositiveIntegerField(default=0)
    product_days = models.PositiveIntegerField(default=0)
    # Shared coefficients and diagnostics: day-of-week factors, competitor and promotion effects,
    # category means and spreads, iterations, convergence.
    summary = models.JSONField(default=dict, blank=True)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["merchant", "status", "-started_at"])]

    def __str__(self) -> str:
        return f"Demand fit #{self.pk} ({self.status})"


class ElasticityEstimate(MerchantOwned):
    """A product's own-price elasticity from one demand fit, partially pooled toward its category."""

    run = models.ForeignKey(DemandModelRun, on_delete=models.CASCADE, related_name="estimates")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    elasticity = models.FloatField()
    elasticity_sd = models.FloatField()
    lower = models.FloatField()
    upper = models.FloatField()
    # The product's own estimate before pooling (null when its price never moved).
    own_elasticity = models.FloatField(null=True, blank=True)
    own_se = models.FloatField(null=True, blank=True)
    # Share of the category prior in the estimate: 0 = own data only, 1 = the category's alone.
    pooling_weight = models.FloatField()
    # Expected units per day at the reference price on an average day of the history.
    base_units_per_day = models.FloatField()
    reference_price = models.DecimalField(max_digits=12, decimal_places=2)
    days_observed = models.PositiveIntegerField()
    units_observed = models.FloatField()
    price_points = models.PositiveIntegerField()
    # Standard error of log(base_units_per_day), and the category whose prior the estimate was pooled toward.
    log_base_se = models.FloatField(default=0.0)
    category = models.ForeignKey(Category, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "product"], name="elasticity_one_per_product_per_run")]
        indexes = [models.Index(fields=["merchant", "product", "-run"])]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.elasticity:.2f} [{self.lower:.2f}, {self.upper:.2f}]"


class ProposalStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a decision"
    APPROVED = "approved", "Approved"
    AUTO_APPROVED = "auto_approved", "Approved automatically"
    REJECTED = "rejected", "Rejected"
    # A newer proposal for the same product replaced it before anyone decided.
    SUPERSEDED = "superseded", "Superseded"


class PriceProposal(MerchantOwned):
    """A price the engine suggests for one product, with what it expects to happen and why.

    Expected changes are per week against keeping the current price, each with a 90% interval.
    """

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="price_proposals")
    run = models.ForeignKey(DemandModelRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=ProposalStatus.choices, default=ProposalStatus.PENDING)
    objective = models.CharField(max_length=16, choices=Objective.choices)
    current_price = models.DecimalField(max_digits=12, decimal_places=2)
    proposed_price = models.DecimalField(max_digits=12, decimal_places=2)
    unit_cost = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    elasticity = models.FloatField()
    elasticity_lower = models.FloatField()
    elasticity_upper = models.FloatField()
    # Chosen by a Thompson draw from the elasticity posterior rather than at its mean.
    explored = models.BooleanField(default=False)
    units_change = models.FloatField()
    units_change_lower = models.FloatField()
    units_change_upper = models.FloatField()
    revenue_change = models.FloatField()
    revenue_change_lower = models.FloatField()
    revenue_change_upper = models.FloatField()
    profit_change = models.FloatField()
    profit_change_lower = models.FloatField()
    profit_change_upper = models.FloatField()
    # Posterior probability that the proposed price beats the current one on the objective.
    confidence = models.FloatField()
    reasons = models.JSONField(default=list)
    # [{"name", "passed", "limit", "message"}] as checked when the proposal was made.
    guardrail_checks = models.JSONField(default=list)
    # [{"price", "units", "profit", "profit_lower", "profit_upper", "revenue"}] per week, for the chart.
    curve = models.JSONField(default=list)
    created_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decision_note = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["merchant", "status", "-created_at"]),
            models.Index(fields=["merchant", "product", "-created_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["product"], condition=models.Q(status="pending"), name="proposal_one_pending_per_product"
            ),
            models.CheckConstraint(condition=models.Q(proposed_price__gt=0), name="proposal_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.current_price} → {self.proposed_price} ({self.status})"

    @property
    def change_share(self) -> float:
        return float(self.proposed_price / self.current_price - 1)


class PriceChangeSource(models.TextChoices):
    APPROVED = "approved", "Approved proposal"
    AUTO_APPROVED = "auto_approved", "Auto-approved proposal"
    ROLLBACK = "rollback", "Rollback"


class PriceChange(MerchantOwned):
    """One live price change: append-only (the admin cannot edit or delete it, the services only insert)."""

    product = models.ForeignKey(Product, on_delete=models.RESTRICT, related_name="price_changes")
    from_price = models.DecimalField(max_digits=12, decimal_places=2)
    to_price = models.DecimalField(max_digits=12, decimal_places=2)
    source = models.CharField(max_length=16, choices=PriceChangeSource.choices)
    proposal = models.ForeignKey(PriceProposal, on_delete=models.RESTRICT, null=True, blank=True, related_name="+")
    # For a rollback: the change it undid.
    reverts = models.ForeignKey("self", on_delete=models.RESTRICT, null=True, blank=True, related_name="reverted_by")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["merchant", "product", "-created_at"])]
        constraints = [models.CheckConstraint(condition=models.Q(to_price__gt=0), name="price_change_positive")]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.from_price} → {self.to_price} ({self.source})"
