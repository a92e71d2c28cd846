"""Loyalty and customer intelligence rows: the scheduled insight runs (RFM and clusters, lifetime value,
churn) and each customer's latest scores, the retention list, and the points program with its
append-only ledger.

A customer's points balance is never stored: it is the sum of their ledger entries.
"""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from events.models import Customer, Order, Session
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
        verbose_name_plural = "retention settings"

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


# --- Funnel: incentives at the cart and abandoned-cart recovery ---------------------------------------------


class IncentiveKind(models.TextChoices):
    NONE = "none", "No offer"
    FREE_SHIPPING = "free_shipping", "Free shipping"
    PERCENT_5 = "percent_5", "5% off"
    PERCENT_10 = "percent_10", "10% off"
    POINTS = "points", "Bonus loyalty points"


class OfferChannel(models.TextChoices):
    ONSITE = "onsite", "On the site, at the cart"
    RECOVERY = "recovery", "In a cart-recovery message"


class OfferSettings(MerchantOwned):
    """A merchant's incentive rules; one row per merchant, created on first use."""

    enabled = models.BooleanField(default=True)
    # Face cost of the offers issued per day (the shop's time zone), in the shop's currency: never exceeded.
    daily_budget = models.DecimalField(max_digits=12, decimal_places=2, default=100, validators=[MinValueValidator(0)])
    # At most this many offers per customer in any window of `frequency_window_days`.
    max_offers_per_customer = models.PositiveIntegerField(default=1)
    frequency_window_days = models.PositiveIntegerField(default=7, validators=[MinValueValidator(1)])
    # Share of decisions whose incentive is drawn at random (uniformly among the allowed kinds, "none"
    # included): the randomized data the uplift model learns from.
    exploration_share = models.FloatField(default=0.1)
    # Subset of IncentiveKind values the decision may choose from ("none" is always possible).
    allowed_kinds = models.JSONField(default=list, blank=True)
    # What an offer costs the merchant beyond the discount itself.
    shipping_cost = models.DecimalField(max_digits=8, decimal_places=2, default=6.95)
    # The shop's own free-shipping threshold: a cart worth at least this already ships free, so free shipping is
    # never offered to it (worthless to the shopper, a wasted offer). None: the shop has no such threshold.
    free_shipping_threshold = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    points_bonus = models.PositiveIntegerField(default=200)
    point_value = models.DecimalField(max_digits=8, decimal_places=4, default=0.01)
    # Margin rate assumed for a cart line whose product has no cost.
    default_margin_rate = models.FloatField(default=0.35)
    offer_valid_hours = models.PositiveIntegerField(default=24, validators=[MinValueValidator(1)])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant"], name="offer_settings_one_per_merchant")]
        verbose_name_plural = "offer settings"

    def __str__(self) -> str:
        return f"Offer settings of {self.merchant}"


class DecisionReason(models.TextChoices):
    BEST_EXPECTED_MARGIN = "best_expected_margin", "Highest expected margin (uplift model)"
    NO_OFFER_PAYS = "no_offer_pays", "No incentive raises expected margin"
    EXPLORATION = "exploration", "Randomized for learning"
    EXPERIMENT_ARM = "experiment_arm", "Fixed by the shopper's experiment arm"
    NO_MODEL = "no_model", "No uplift model trained yet"
    OPTED_OUT = "opted_out", "Customer opted out of personalization"
    CUSTOMER_CAP = "customer_cap", "Customer frequency cap reached"
    BUDGET_EXHAUSTED = "budget_exhausted", "Daily budget spent"
    DISABLED = "disabled", "Offers switched off"
    ALREADY_DECIDED = "already_decided", "Same cart decided before"
    ALREADY_SHIPS_FREE = "already_ships_free", "Cart already ships free"


class OfferDecision(MerchantOwned):
    """One decision for a cart, logged whatever it was (including "none") with its reason. An offer carries a
    one-time code: the first order that uses it redeems it."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey(Session, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    session_external_id = models.CharField(max_length=100, blank=True, default="")
    cart_id = models.CharField(max_length=100)
    channel = models.CharField(max_length=16, choices=OfferChannel.choices, default=OfferChannel.ONSITE)
    decided_at = models.DateTimeField()
    kind = models.CharField(max_length=16, choices=IncentiveKind.choices)
    value = models.FloatField(default=0.0)  # percent off, or points awarded
    code = models.CharField(max_length=40, blank=True, default="")  # "" for kind none
    reason = models.CharField(max_length=32, choices=DecisionReason.choices)
    explanation = models.CharField(max_length=300, blank=True, default="")
    cart_value = models.DecimalField(max_digits=12, decimal_places=2)
    cart_margin = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    # The most the offer can cost (reserved from the day's budget when issued).
    cost = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    abandonment_probability = models.FloatField(null=True, blank=True)
    # P(order | chosen kind) − P(order | none) and the expected margin gain over no offer, from the uplift model.
    expected_uplift = models.FloatField(null=True, blank=True)
    expected_margin_gain = models.FloatField(null=True, blank=True)
    # {kind: {"p_order", "expected_margin"}} for every kind considered.
    scores = models.JSONField(default=dict, blank=True)
    # The cart snapshot (events.abandonment.CartSnapshot as a dict) the decision saw: the uplift training row.
    features = models.JSONField(default=dict, blank=True)
    # True when `kind` was drawn at random with probability `propensity` (unbiased data for the uplift model).
    randomized = models.BooleanField(default=False)
    propensity = models.FloatField(null=True, blank=True)
    experiment_key = models.CharField(max_length=100, blank=True, default="")
    variant_key = models.CharField(max_length=100, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeemed_order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Outcome, filled once known: did the session (or the customer within the offer's validity) order.
    converted_order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "code"], condition=~models.Q(code=""), name="offer_code_unique_per_merchant"
            )
        ]
        indexes = [
            models.Index(fields=["merchant", "customer", "decided_at"]),
            models.Index(fields=["merchant", "decided_at"]),
            models.Index(fields=["merchant", "cart_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for cart {self.cart_id}"


class OfferBudgetDay(MerchantOwned):
    """The face cost of offers issued on one day; raised only by a conditional UPDATE that keeps it within
    the budget, so concurrent decisions can never overspend."""

    day = models.DateField()
    spent = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    offers = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant", "day"], name="offer_budget_day_unique")]

    def __str__(self) -> str:
        return f"{self.day}: {self.spent}"


class UpliftModel(MerchantOwned):
    """One training of the incentive uplift model on randomized decisions. The newest succeeded one serves."""

    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True, default="")
    method = models.CharField(max_length=16, default="x_learner")
    decisions = models.PositiveIntegerField(default=0)  # randomized decisions trained on
    # {"kinds": [...], "ate": {kind: {"estimate", "low", "high", "n"}}, "qini": {kind: ...},
    #  "policy_value": {...}, "feature_names": [...]}
    metrics = models.JSONField(default=dict, blank=True)
    artifact = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [models.Index(fields=["merchant", "status", "-finished_at"])]

    def __str__(self) -> str:
        return f"uplift model #{self.pk} ({self.status})"


class RecoverySettings(MerchantOwned):
    """How a merchant's abandoned carts are followed up; one row per merchant, created on first use."""

    enabled = models.BooleanField(default=True)
    # A cart counts as abandoned once the session has been idle this long without an order.
    abandoned_after_minutes = models.PositiveIntegerField(default=30, validators=[MinValueValidator(5)])
    # Delays of the messages after abandonment, in minutes; empty = the default, 1 h and 24 h.
    delays_minutes = models.JSONField(default=list, blank=True)
    include_recommendations = models.BooleanField(default=True)
    # Ask the offer decision (channel "recovery") for an incentive in the last message.
    include_offer = models.BooleanField(default=True)
    webhook_url = models.URLField(blank=True, default="")
    webhook_secret = models.CharField(max_length=100, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant"], name="recovery_settings_one_per_merchant")]
        verbose_name_plural = "recovery settings"

    def __str__(self) -> str:
        return f"Recovery settings of {self.merchant}"


class RecoveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


class RecoveryMessage(MerchantOwned):
    """One scheduled follow-up of an abandoned cart. The merchant's e-mail/SMS tool pulls due messages from
    the API or receives them by webhook; an order by the customer cancels the pending ones."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey(Session, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    cart_id = models.CharField(max_length=100)
    step = models.PositiveSmallIntegerField()  # 1 = first message
    abandoned_at = models.DateTimeField()
    scheduled_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=RecoveryStatus.choices, default=RecoveryStatus.PENDING)
    cart_value = models.DecimalField(max_digits=12, decimal_places=2)
    # {"items": [...], "recommendations": [...], "offer": {...} | None}, fixed when the message falls due.
    content = models.JSONField(default=dict, blank=True)
    offer = models.ForeignKey(OfferDecision, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    cancelled_reason = models.CharField(max_length=100, blank=True, default="")
    delivery_attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True, default="")
    recovered_order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "cart_id", "step"], name="recovery_message_once_per_step")
        ]
        indexes = [
            models.Index(fields=["merchant", "status", "scheduled_at"]),
            models.Index(fields=["merchant", "customer", "status"]),
        ]

    def __str__(self) -> str:
        return f"recovery {self.step} of cart {self.cart_id} ({self.status})"
