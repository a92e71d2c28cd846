import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from revopt.tenancy.models import MerchantOwned


class Placement(models.TextChoices):
    HOME = "home", "Home page"
    PDP = "pdp", "Product page"
    CART = "cart", "Cart"
    POST_PURCHASE = "post_purchase", "Post-purchase"
    EMAIL = "email", "Email"
    SEARCH = "search", "Search re-rank"


class FeedbackKind(models.TextChoices):
    """The kinds of feedback training reads from events, strongest last."""

    VIEW = "view", "Product viewed"
    CLICK = "click", "Product clicked"
    WISHLIST = "wishlist", "Added to wishlist"
    CART = "cart", "Added to cart"
    PURCHASE = "purchase", "Purchased"


DEFAULT_FEEDBACK_WEIGHTS = {
    FeedbackKind.VIEW: 1.0,
    FeedbackKind.CLICK: 2.0,
    FeedbackKind.WISHLIST: 3.0,
    FeedbackKind.CART: 4.0,
    FeedbackKind.PURCHASE: 8.0,
}


def default_feedback_weights() -> dict[str, float]:
    return {str(kind): weight for kind, weight in DEFAULT_FEEDBACK_WEIGHTS.items()}


class RecommenderSettings(MerchantOwned):
    """How a merchant's recommenders are trained; one row per merchant, created on first use."""

    feedback_weights = models.JSONField(default=default_feedback_weights)
    # Older interactions count less: weight halves every `half_life_days`.
    half_life_days = models.FloatField(default=30.0, validators=[MinValueValidator(1.0)])
    training_window_days = models.PositiveIntegerField(default=180, validators=[MinValueValidator(7)])
    # A candidate may score this much lower (relative NDCG@10) than the active model and still replace it.
    promotion_tolerance = models.FloatField(default=0.02, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)])
    # Products younger than this are "new arrivals".
    new_arrival_days = models.PositiveIntegerField(default=14)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "recommender settings"
        constraints = [models.UniqueConstraint(fields=["merchant"], name="recommender_settings_one_per_merchant")]

    def __str__(self) -> str:
        return f"Recommender settings of {self.merchant}"


class PlacementRule(MerchantOwned):
    """Business rules of one placement; a placement without a row uses the defaults below."""

    placement = models.CharField(max_length=16, choices=Placement.choices)
    exclude_purchased = models.BooleanField(default=True)
    # Consumables: products of these categories (and their subcategories) may be recommended again.
    repurchasable_categories = models.ManyToManyField("catalog.Category", blank=True, related_name="+")
    # Only products of these categories (and their subcategories); empty means every category.
    allowed_categories = models.ManyToManyField("catalog.Category", blank=True, related_name="+")
    max_per_category = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    # Maximal marginal relevance: 1.0 is pure relevance, lower trades relevance for variety.
    mmr_lambda = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    # Each impression of an item the visitor did not click multiplies its score by this factor.
    impression_discount = models.FloatField(default=0.85, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    impression_window_days = models.PositiveIntegerField(default=7)
    default_k = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1), MaxValueValidator(100)])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["placement"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "placement"], name="placement_rule_unique_per_merchant")
        ]

    def __str__(self) -> str:
        return f"{self.get_placement_display()} rules"


class ItemRuleAction(models.TextChoices):
    PIN = "pin", "Pin"
    BOOST = "boost", "Boost"
    BLOCK = "block", "Block"


class PlacementItemRule(MerchantOwned):
    """A merchandiser's override for one product: pinned to a position, boosted, or never shown.

    An empty placement applies the rule to every placement.
    """

    placement = models.CharField(max_length=16, choices=Placement.choices, blank=True, default="")
    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=8, choices=ItemRuleAction.choices)
    # Pins: 1-based position in the list. Boosts: the score multiplier.
    position = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    boost = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.0)])
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["placement", "action", "position"]
        indexes = [models.Index(fields=["merchant", "placement"])]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.product} on {self.placement or 'every placement'}"


class VersionStatus(models.TextChoices):
    TRAINING = "training", "Training"
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


class RecommenderVersion(MerchantOwned):
    """One training of a merchant's recommenders: what went in, how it scored, whether it serves.

    A version is born `training`; it ends `failed` (an error, or the data-quality gate was closed),
    `rejected` (offline metrics worse than the active version's beyond the tolerance), or `candidate`
    and then `active`. Activating a version retires the previous active one; rolling back re-activates
    a retired one. At most one version per merchant is active.
    """

    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.TRAINING)
    params = models.JSONField(default=dict, blank=True)
    data_window_start = models.DateTimeField(null=True, blank=True)
    data_window_end = models.DateTimeField(null=True, blank=True)
    interaction_count = models.PositiveIntegerField(default=0)
    customer_count = models.PositiveIntegerField(default=0)
    product_count = models.PositiveIntegerField(default=0)
    # Offline metrics on a temporal holdout ({"ndcg@10": ..., "precision@10": ...}) and the full table
    # of revopt's ranker beside the baselines.
    metrics = models.JSONField(default=dict, blank=True)
    evaluation = models.JSONField(default=list, blank=True)
    # The precomputed candidates (engine.Precomputed), compressed; the cache is warmed from it.
    artifact = models.BinaryField(null=True, blank=True, editable=False)
    progress = models.FloatField(default=0.0)
    progress_message = models.CharField(max_length=200, blank=True, default="")
    status_reason = models.TextField(blank=True, default="")
    trigger = models.CharField(max_length=32, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "number"], name="recommender_version_number_unique"),
            models.UniqueConstraint(
                fields=["merchant"],
                condition=models.Q(status="active"),
                name="recommender_version_one_active_per_merchant",
            ),
        ]
        indexes = [models.Index(fields=["merchant", "status"])]

    def __str__(self) -> str:
        return f"Recommender v{self.number} ({self.get_status_display()})"


class ServedSource(models.TextChoices):
    MODEL = "model", "Trained model"
    NON_PERSONAL = "non_personal", "Non-personal mix"
    FALLBACK = "fallback", "Database fallback"


class ServedRecommendation(MerchantOwned):
    """One list the API answered; its id is the `recommendation_id` events carry back for attribution."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    placement = models.CharField(max_length=16, choices=Placement.choices)
    customer = models.ForeignKey("events.Customer", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    anonymous_id = models.CharField(max_length=100, blank=True, default="")
    session_external_id = models.CharField(max_length=100, blank=True, default="")
    product_ids = models.JSONField(default=list)
    # len(product_ids), so impressions aggregate in the database without JSON functions.
    item_count = models.PositiveIntegerField(default=0)
    version = models.ForeignKey(RecommenderVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    source = models.CharField(max_length=16, choices=ServedSource.choices)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["merchant", "created_at"]),
            models.Index(fields=["merchant", "placement", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.placement} list {self.id}"
