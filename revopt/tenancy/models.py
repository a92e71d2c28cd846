from django.conf import settings
from django.db import models


class Merchant(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    currency = models.CharField(max_length=3, default="USD")
    timezone = models.CharField(max_length=64, default="UTC")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MerchantScopedQuerySet(models.QuerySet):
    def for_merchant(self, merchant: Merchant | int) -> "MerchantScopedQuerySet":
        merchant_id = merchant if isinstance(merchant, int) else merchant.pk
        if merchant_id is None:
            raise ValueError("a merchant is required to query merchant-owned rows")
        return self.filter(merchant_id=merchant_id)


class MerchantOwned(models.Model):
    """Base of every row a merchant owns.

    Selectors reach these rows only through `Model.objects.for_merchant(merchant)`; the tenancy tests
    walk every subclass so a new model cannot forget its merchant.
    """

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="+")

    objects = MerchantScopedQuerySet.as_manager()

    class Meta:
        abstract = True


class Role(models.TextChoices):
    MERCHANT_MANAGER = "merchant_manager", "Merchant manager"
    SUPPORT_AGENT = "support_agent", "Support agent"
    PLATFORM_ADMIN = "platform_admin", "Platform admin"


class StaffMembership(models.Model):
    """Which merchant a staff user works for, and in which role.

    Platform admins belong to no merchant and see every merchant's data.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, null=True, blank=True, related_name="staff")
    role = models.CharField(max_length=32, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role=Role.PLATFORM_ADMIN) | models.Q(merchant__isnull=False),
                name="membership_merchant_required_unless_platform_admin",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} at {self.merchant or 'all merchants'}"


class ApiKey(MerchantOwned):
    """A storefront's credential. Only a SHA-256 digest is stored; the key itself is shown once."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditLogEntry(MerchantOwned):
    """Append-only record of who changed what, written by the services that make the change."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit log entries"
        indexes = [models.Index(fields=["merchant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id}"
