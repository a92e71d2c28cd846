from decimal import Decimal

from django.db import models

from revopt.tenancy.models import Merchant, MerchantOwned


class Customer(MerchantOwned):
    """A shopper as revopt knows them: identified by the shop's user id, or only by anonymous ids.

    Holds no PII beyond the e-mail support agents search by; features are computed from behaviour.
    """

    external_id = models.CharField(max_length=100, null=True, blank=True)
    email = models.EmailField(blank=True, default="")
    marketing_consent = models.BooleanField(default=False)
    location_consent = models.BooleanField(default=False)
    personalization_opt_out = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    merged_into = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Erased on request (GDPR/CCPA): PII gone, events kept anonymized, and never used to train a model again.
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="customer_external_id_unique_per_merchant",
            )
        ]
        indexes = [models.Index(fields=["merchant", "email"])]

    def __str__(self) -> str:
        return self.external_id or f"anonymous #{self.pk}"

    @property
    def is_identified(self) -> bool:
        return self.external_id is not None


class AnonymousIdentity(MerchantOwned):
    """An anonymous id (device/cookie) and the customer it belongs to; re-pointed at login."""

    anonymous_id = models.CharField(max_length=100)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="anonymous_identities")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "anonymous identities"
        constraints = [
            models.UniqueConstraint(fields=["merchant", "anonymous_id"], name="anonymous_id_unique_per_merchant")
        ]

    def __str__(self) -> str:
        return self.anonymous_id


class Device(models.TextChoices):
    DESKTOP = "desktop"
    MOBILE = "mobile"
    TABLET = "tablet"
    OTHER = "other"


class Session(MerchantOwned):
    external_id = models.CharField(max_length=100)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="sessions")
    started_at = models.DateTimeField()
    device = models.CharField(max_length=16, choices=Device.choices, default=Device.OTHER)
    utm_source = models.CharField(max_length=100, blank=True, default="")
    utm_medium = models.CharField(max_length=100, blank=True, default="")
    utm_campaign = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "external_id"], name="session_external_id_unique_per_merchant")
        ]
        indexes = [models.Index(fields=["merchant", "started_at"])]

    def __str__(self) -> str:
        return self.external_id


class Event(MerchantOwned):
    """One behavioural event in the Segment e-commerce vocabulary ("Product Viewed", ...)."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="+", db_index=False)
    message_id = models.CharField(max_length=100)
    name = models.CharField(max_length=64)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events")
    anonymous_id = models.CharField(max_length=100, blank=True, default="")
    session = models.ForeignKey(Session, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    product = models.ForeignKey(
        "catalog.Product", on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    quantity = models.IntegerField(null=True, blank=True)
    device = models.CharField(max_length=16, choices=Device.choices, default=Device.OTHER)
    properties = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "message_id"], name="event_message_id_unique_per_merchant")
        ]
        indexes = [models.Index(fields=["merchant", "timestamp"])]

    def __str__(self) -> str:
        return f"{self.name} {self.message_id}"


class OrderStatus(models.TextChoices):
    COMPLETED = "completed"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


class Order(MerchantOwned):
    external_id = models.CharField(max_length=100)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    session = models.ForeignKey(Session, on_delete=models.SET_NULL, null=True, blank=True, related_name="orders")
    message_id = models.CharField(max_length=100)
    placed_at = models.DateTimeField()
    currency = models.CharField(max_length=3, default="USD")
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    discount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    shipping = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    tax = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    coupon = models.CharField(max_length=100, blank=True, default="")
    # What incentives on this order cost the merchant beyond `discount` (free shipping's carrier cost, bonus
    # points' value): set by the offer redemption, never by the storefront. The database default lets plain
    # inserts (bench loaders) leave it out.
    incentive_cost = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal(0), db_default=Decimal(0))
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.COMPLETED)
    refunded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-placed_at"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "external_id"], name="order_external_id_unique_per_merchant")
        ]
        indexes = [models.Index(fields=["merchant", "placed_at"])]

    def __str__(self) -> str:
        return f"order {self.external_id}"


class OrderLine(MerchantOwned):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(
        "catalog.Product", on_delete=models.SET_NULL, null=True, blank=True, related_name="order_lines"
    )
    sku = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    # Cost at the time of sale, so margins stay right after the catalog's cost changes.
    unit_cost = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(quantity__gt=0), name="order_line_quantity_positive")]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.sku}"


class DataQualityReport(MerchantOwned):
    """The result of the data-quality checks for one run; a failing report closes the training gate."""

    created_at = models.DateTimeField(auto_now_add=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    passed = models.BooleanField()
    # [{"name", "status": pass|warn|fail, "value", "limit", "detail"}]
    checks = models.JSONField(default=list)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["merchant", "-created_at"])]

    def __str__(self) -> str:
        return f"data quality {'passed' if self.passed else 'FAILED'} at {self.created_at:%Y-%m-%d %H:%M}"


class ModelRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class AbandonmentModel(MerchantOwned):
    """One training of the cart-abandonment predictor (funnel). The newest succeeded one is in service, so a
    failed training never replaces it. Trained on carts before `split_at`, tested on carts from `split_at` to
    `data_end` (a temporal split: the test carts are the future the model has not seen)."""

    status = models.CharField(max_length=16, choices=ModelRunStatus.choices, default=ModelRunStatus.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True, default="")
    data_start = models.DateTimeField(null=True, blank=True)
    split_at = models.DateTimeField(null=True, blank=True)
    data_end = models.DateTimeField(null=True, blank=True)
    train_carts = models.PositiveIntegerField(default=0)
    test_carts = models.PositiveIntegerField(default=0)
    # {"auc", "brier", "log_loss", "base_rate", "calibrated", "reliability": [{"predicted", "observed", "count"}],
    #  "importances": {feature: value}, "auc_baseline": ...} — written by events.abandonment.
    metrics = models.JSONField(default=dict, blank=True)
    artifact = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [models.Index(fields=["merchant", "status", "-finished_at"])]

    def __str__(self) -> str:
        return f"abandonment model #{self.pk} ({self.status})"
