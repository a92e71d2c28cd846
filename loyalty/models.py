"""Loyalty and customer intelligence rows: the scheduled insight runs (RFM and clusters, lifetime value,
churn) and each customer's latest scores, the retention list, and the points program with its
append-only ledger.

A customer's points balance is never stored: it is the sum of their ledger entries.
"""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from events.models import Customer, Order
from revopt.tenancy.models import MerchantOwned


class Segment(models.TextChoices):
    """The classic RFM segments, named as a merchant would say them."""

    CHAMPIONS = "champions", "Champions"
    LOYAL = "loyal", "Loyal"
    POTENTIAL_LOYALISTS = "potential_loyalists", "Potential loyalists"
    NEW = "new", "New customers"
    PROMISING = "promising", "Promising"
    NEEDS_ATTENTION = "needs_attention", "Need attention"
    ABOUT_TO_SLEEP = "about_to_sleep", "About to sleep"
    AT_RISK = "at_risk", "At risk"
    CANNOT_LOSE = "cannot_lose", "Can't lose them"
    HIBERNATING = "hibernating", "Hibernating"
    LOST = "lost", "Lost"


class InsightKind(models.TextChoices):
    SEGMENTS = "segments", "RFM segments and clusters"
    LIFETIME_VALUE = "lifetime_value", "Lifetime value (BG/NBD + Gamma-Gamma)"
    CHURN = "churn", "Churn model"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class InsightRun(MerchantOwned):
    """One scheduled computation. Scores in service come from the latest succeeded run of each kind, so a
    failed run never replaces them."""

    kind = models.CharField(max_length=16, choices=InsightKind.choices)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # The moment the customers were scored as of (the end of the observed history).
    as_of = models.DateTimeField()
    customers = models.PositiveIntegerField(default=0)
    progress = models.FloatField(default=0.0)
    # segments: {"silhouette": {k: score}, "clusters": k, "profiles": [...]}; lifetime_value: {"bgnbd": {...},
    # "gamma_gamma": {...}}; churn: {"auc", "precision", "recall", "threshold", "calibration": [...], ...}
    summary = models.JSONField(default=dict, blank=True)
    # The fitted churn model (a pickled scikit-learn pipeline), kept to score customers between trainings.
    artifact = models.BinaryField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["merchant", "kind", "status", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"


class CustomerInsight(MerchantOwned):
    """A customer's latest scores; each run kind fills its own columns (blank until it has run)."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="insight")
    as_of = models.DateTimeField()
    # RFM (from orders that were not cancelled; refunded orders count as neither purchase nor revenue).
    orders = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    first_order_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)
    recency_days = models.FloatField(null=True, blank=True)  # days since the last order
    r_score = models.PositiveSmallIntegerField(null=True, blank=True)  # 1..5, 5 = most recent
    f_score = models.PositiveSmallIntegerField(null=True, blank=True)
    m_score = models.PositiveSmallIntegerField(null=True, blank=True)
    segment = models.CharField(max_length=24, choices=Segment.choices, blank=True, default="")
    cluster = models.SmallIntegerField(null=True, blank=True)
    segments_run = models.ForeignKey(InsightRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Lifetime value.
    p_alive = models.FloatField(null=True, blank=True)
    expected_purchases_90d = models.FloatField(null=True, blank=True)
    expected_order_value = models.FloatField(null=True, blank=True)
    clv_12m = models.FloatField(null=True, blank=True)
    lifetime_value_run = models.ForeignKey(
        InsightRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Churn: probability of no purchase in the merchant's churn horizon.
    churn_probability = models.FloatField(null=True, blank=True)
    churn_run = models.ForeignKey(InsightRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        indexes = [
            models.Index(fields=["merchant", "segment"]),
            models.Index(fields=["merchant", "-churn_probability"]),
        ]

    def __str__(self) -> str:
        return f"insight of {self.customer_id}"


class RetentionSettings(MerchantOwned):
    """A merchant's churn and retention choices; one row per merchant, created on first use."""

    churn_horizon_days = models.PositiveIntegerField(default=90, validators=[MinValueValidator(14)])
    # Customers at or above this churn probability enter the retention list (None: the model's own threshold).
    churn_threshold = models.FloatField(null=True, blank=True)
    # Spend on retention offers per scoring (weekly), in the shop's currency.
    weekly_budget = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant"], name="retention_settings_one_per_merchant")]

    def __str__(self) -> str:
        return f"Retention settings of {self.merchant}"


class RetentionStatus(models.TextChoices):
    SUGGESTED = "suggested", "Suggested"
    SENT = "sent", "Sent"
    DISMISSED = "dismissed", "Dismissed"


class RetentionCandidate(MerchantOwned):
    """A customer the churn model flags, with the re-engagement offer suggested for them."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(InsightRun, on_delete=models.CASCADE, related_name="+")
    churn_probability = models.FloatField()
    clv_12m = models.FloatField(null=True, blank=True)
    offer = models.CharField(max_length=32)  # e.g. "percent_10", "free_shipping", "double_points"
    offer_cost = models.DecimalField(max_digits=12, decimal_places=2)
    # Expected margin the offer saves: P(churn) × P(offer wins them back) × value at stake − cost.
    expected_value = models.FloatField()
    reason = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=RetentionStatus.choices, default=RetentionStatus.SUGGESTED)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-expected_value"]
        indexes = [models.Index(fields=["merchant", "run", "-expected_value"])]

    def __str__(self) -> str:
        return f"retain {self.customer_id} with {self.offer}"


# --- the points program ---------------------------------------------------------------------------


class LoyaltyProgram(MerchantOwned):
    name = models.CharField(max_length=200)
    # Points earned per unit of the shop's currency spent (order subtotal after discounts).
    points_per_currency_unit = models.DecimalField(max_digits=8, decimal_places=2, default=1)
    # Earned points expire this many days after they were earned (None: never).
    expiry_days = models.PositiveIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["merchant"], condition=models.Q(is_active=True), name="loyalty_one_active_program"
            )
        ]

    def __str__(self) -> str:
        return self.name


class EarnAction(models.TextChoices):
    REVIEW = "review", "Writes a review"
    REFERRAL = "referral", "Refers a friend who orders"
    SIGNUP = "signup", "Creates an account"
    BIRTHDAY = "birthday", "Birthday"


class EarnRule(MerchantOwned):
    """Points for an action other than an order (orders earn per currency unit)."""

    program = models.ForeignKey(LoyaltyProgram, on_delete=models.CASCADE, related_name="earn_rules")
    action = models.CharField(max_length=16, choices=EarnAction.choices)
    points = models.PositiveIntegerField()
    # At most this many times per customer (None: no limit).
    limit_per_customer = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["program", "action"], name="earn_rule_one_per_action")]

    def __str__(self) -> str:
        return f"{self.action}: {self.points} points"


class Tier(MerchantOwned):
    """A level reached by points earned over the last 365 days (not the spendable balance)."""

    program = models.ForeignKey(LoyaltyProgram, on_delete=models.CASCADE, related_name="tiers")
    name = models.CharField(max_length=100)
    threshold_points = models.PositiveIntegerField()
    # Orders earn this many times the base rate at this tier.
    earn_multiplier = models.DecimalField(max_digits=4, decimal_places=2, default=1)
    benefits = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["threshold_points"]
        constraints = [
            models.UniqueConstraint(fields=["program", "threshold_points"], name="tier_threshold_unique"),
            models.UniqueConstraint(fields=["program", "name"], name="tier_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (from {self.threshold_points} points)"


class RewardKind(models.TextChoices):
    AMOUNT_OFF = "amount_off", "Amount off an order"
    PERCENT_OFF = "percent_off", "Percent off an order"
    FREE_SHIPPING = "free_shipping", "Free shipping"
    FREE_PRODUCT = "free_product", "A free product"


class Reward(MerchantOwned):
    program = models.ForeignKey(LoyaltyProgram, on_delete=models.CASCADE, related_name="rewards")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=RewardKind.choices)
    points_cost = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    value = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    # Only customers at this tier or above may redeem it (None: everyone).
    minimum_tier = models.ForeignKey(Tier, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["points_cost"]

    def __str__(self) -> str:
        return f"{self.name} ({self.points_cost} points)"


class LoyaltyAccount(MerchantOwned):
    """A customer's membership of a program: the row every ledger write locks, so concurrent redemptions
    of one customer queue up instead of overspending."""

    program = models.ForeignKey(LoyaltyProgram, on_delete=models.CASCADE, related_name="accounts")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="loyalty_accounts")
    tier = models.ForeignKey(Tier, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    tier_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["program", "customer"], name="loyalty_account_unique")]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.program_id}"


class EntryKind(models.TextChoices):
    EARN = "earn", "Earned"
    REDEEM = "redeem", "Redeemed"
    EXPIRE = "expire", "Expired"
    ADJUST = "adjust", "Adjusted by staff"
    CLAWBACK = "clawback", "Clawed back (refund)"


class PointsEntry(MerchantOwned):
    """One append-only ledger line: + for earning, − for spending, expiring and clawing back.

    `idempotency_key` is unique per merchant, so a retried earn or redeem is recorded once (an order earns
    under "order:<order id>", a refund claws back under "refund:<order id>").
    """

    account = models.ForeignKey(LoyaltyAccount, on_delete=models.CASCADE, related_name="entries")
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    points = models.IntegerField()
    idempotency_key = models.CharField(max_length=200)
    order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    reward = models.ForeignKey(Reward, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    action = models.CharField(max_length=16, blank=True, default="")
    reason = models.CharField(max_length=500, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    # For earned points: when they expire unless spent first (spending uses the oldest points first).
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "idempotency_key"], name="points_entry_idempotent"),
            models.CheckConstraint(condition=~models.Q(points=0), name="points_entry_not_zero"),
        ]
        indexes = [models.Index(fields=["account", "created_at"])]

    def __str__(self) -> str:
        return f"{self.points:+d} {self.kind} ({self.account_id})"


class Redemption(MerchantOwned):
    """A reward bought with points: the one-time code the shop's checkout accepts."""

    account = models.ForeignKey(LoyaltyAccount, on_delete=models.CASCADE, related_name="redemptions")
    reward = models.ForeignKey(Reward, on_delete=models.RESTRICT, related_name="redemptions")
    entry = models.OneToOneField(PointsEntry, on_delete=models.CASCADE, related_name="redemption")
    code = models.CharField(max_length=40)
    created_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant", "code"], name="redemption_code_unique")]

    def __str__(self) -> str:
        return self.code
