from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from revopt.tenancy.models import MerchantOwned


class Category(MerchantOwned):
    """A node of the merchant's category tree; `path` is the full name path ("Home > Kitchen")."""

    name = models.CharField(max_length=200)
    path = models.CharField(max_length=1000)
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["merchant", "path"], name="category_path_unique_per_merchant")]

    def __str__(self) -> str:
        return self.path

    @property
    def depth(self) -> int:
        return self.path.count(" > ")


class Product(MerchantOwned):
    sku = models.CharField(max_length=100)
    # The shop's own product id when it differs from the SKU (Segment's `product_id`).
    external_id = models.CharField(max_length=100, blank=True, default="")
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True, default="")
    brand = models.CharField(max_length=200, blank=True, default="")
    category = models.ForeignKey(Category, on_delete=models.SET_NULL, null=True, blank=True, related_name="products")
    attributes = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    compare_at_price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    cost = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    currency = models.CharField(max_length=3, default="USD")
    inventory = models.IntegerField(default=0)
    rating = models.DecimalField(
        max_digits=3,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(5)],
    )
    rating_count = models.PositiveIntegerField(default=0)
    image_url = models.URLField(max_length=1000, blank=True, default="")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "sku"], name="product_sku_unique_per_merchant"),
            models.CheckConstraint(condition=models.Q(price__gt=0), name="product_price_positive"),
        ]
        indexes = [
            models.Index(fields=["merchant", "external_id"]),
            models.Index(fields=["merchant", "is_active", "category"]),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.sku})"

    @property
    def in_stock(self) -> bool:
        return self.inventory > 0


class CompetitorPriceObservation(MerchantOwned):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="competitor_prices")
    competitor = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    currency = models.CharField(max_length=3, default="USD")
    observed_at = models.DateTimeField()
    source_url = models.URLField(max_length=1000, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-observed_at"]
        indexes = [models.Index(fields=["merchant", "product", "-observed_at"])]
        constraints = [models.CheckConstraint(condition=models.Q(price__gt=0), name="competitor_price_positive")]

    def __str__(self) -> str:
        return f"{self.competitor}: {self.price} for {self.product_id}"


class CatalogImport(MerchantOwned):
    """One CSV import run and its per-row report, kept so a merchant can see what was skipped and why."""

    filename = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    rows_total = models.PositiveIntegerField(default=0)
    products_created = models.PositiveIntegerField(default=0)
    products_updated = models.PositiveIntegerField(default=0)
    rows_skipped = models.PositiveIntegerField(default=0)
    rows_failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.created_at:%Y-%m-%d %H:%M})"
