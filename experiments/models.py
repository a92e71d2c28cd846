"""Experiments: A/B tests and bandits that decide which strategy a shopper gets, and what they prove.

An experiment has variants (index 0 is the control) with weights and a config payload the surface
reads ("which recommender", "which pricing strategy"). Shoppers are bucketed the way GrowthBook's v2
hashing does it, and the first assignment of a customer is stored (an `Exposure`) so that later
weight changes and bandit reallocations never move a shopper who was already counted.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from events.models import Customer
from revopt.tenancy.models import MerchantOwned


class Surface(models.TextChoices):
    """Which part of the shop reads the variant's config."""

    RECOMMENDATIONS = "recommendations", "Recommendations"
    PRICING = "pricing", "Pricing"
    OFFERS = "offers", "Offers and incentives"
    STOREFRONT = "storefront", "Storefront (the shop reads the config itself)"


class ExperimentKind(models.TextChoices):
    AB = "ab", "A/B test (fixed weights)"
    BANDIT = "bandit", "Bandit (Thompson sampling reallocates traffic)"
    CONTEXTUAL_BANDIT = "contextual_bandit", "Contextual bandit (chooses per request from context)"


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    ROLLED_OUT = "rolled_out", "Rolled out"


class ExperimentSettings(MerchantOwned):
    """A merchant's experimentation defaults; one row per merchant, created on first use."""

    # A global holdout: this share of shoppers sees no experiment at all (every surface's default),
    # so the combined effect of everything revopt ships can be measured against it.
    holdout_share = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)])
    holdout_seed = models.CharField(max_length=100, default="revopt-global-holdout")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "experiment settings"
        constraints = [models.UniqueConstraint(fields=["merchant"], name="experiment_settings_one_per_merchant")]

    def __str__(self) -> str:
        return f"Experiment settings of {self.merchant}"


class Layer(MerchantOwned):
    """Mutually exclusive experiments share a layer, each owning a slice [start, end) of its hash space.

    The same mechanism as GrowthBook's namespaces: a shopper's position in the layer is
    hash("__" + layer key, unit id, v1), so one shopper is in at most one experiment of the layer.
    """

    key = models.SlugField(max_length=80)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["merchant", "key"], name="layer_key_unique_per_merchant")]

    def __str__(self) -> str:
        return self.name or self.key


class Experiment(MerchantOwned):
    key = models.SlugField(max_length=80, help_text="Stable id the storefront and the hashing use.")
    name = models.CharField(max_length=200)
    hypothesis = models.TextField(blank=True, default="")
    surface = models.CharField(max_length=20, choices=Surface.choices, default=Surface.STOREFRONT)
    kind = models.CharField(max_length=20, choices=ExperimentKind.choices, default=ExperimentKind.AB)
    status = models.CharField(max_length=12, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT)

    # Bucketing (GrowthBook v2): position = hash(seed, unit id); `coverage` is the share of eligible
    # traffic included at all.
    seed = models.CharField(max_length=100, blank=True, default="", help_text="Empty: the key.")
    coverage = models.FloatField(default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    layer = models.ForeignKey(Layer, on_delete=models.PROTECT, null=True, blank=True, related_name="experiments")
    layer_start = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    layer_end = models.FloatField(default=1.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    # {"devices": ["mobile", ...], "visitor": "any"|"new"|"returning", "segments": ["Champions", ...]}
    # Empty lists mean "everyone".
    targeting = models.JSONField(default=dict, blank=True)

    # Metrics: keys of experiments.metrics.METRICS.
    primary_metric = models.CharField(max_length=40, default="revenue_per_user")
    secondary_metrics = models.JSONField(default=list, blank=True)
    # [{"metric": "refund_rate", "max_relative_change": 0.10}]: breached when the variant moves the
    # metric the harmful way by more than the threshold, significantly.
    guardrails = models.JSONField(default=list, blank=True)

    # Analysis settings.
    alpha = models.FloatField(default=0.05, validators=[MinValueValidator(0.001), MaxValueValidator(0.2)])
    power = models.FloatField(default=0.8, validators=[MinValueValidator(0.5), MaxValueValidator(0.99)])
    minimum_detectable_effect = models.FloatField(
        null=True, blank=True, help_text="Relative lift the plan is powered for, e.g. 0.05 for +5%."
    )
    planned_sample_size = models.PositiveIntegerField(
        null=True, blank=True, help_text="Units per variant, from the power calculator."
    )
    sequential = models.BooleanField(default=True, help_text="Always-valid p-values, safe to peek daily.")
    cuped = models.BooleanField(default=True, help_text="Reduce variance with each unit's pre-period metric.")
    pre_period_days = models.PositiveIntegerField(default=14, validators=[MinValueValidator(1)])
    winsorize_percentile = models.FloatField(
        default=0.99,
        validators=[MinValueValidator(0.5), MaxValueValidator(1.0)],
        help_text="Per-unit revenue is capped at this percentile of the buyers' values (1.0: no cap).",
    )

    # Bandits: the metric that rewards an arm, and the share every arm keeps. A floor costs
    # floor × (sum of the arms' gaps) on every visitor for as long as the bandit runs: keep it small.
    reward_metric = models.CharField(max_length=40, default="conversion")
    arm_floor = models.FloatField(default=0.02, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)])

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    rolled_out_at = models.DateTimeField(null=True, blank=True)
    rolled_out_variant = models.ForeignKey("Variant", on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "key"], name="experiment_key_unique_per_merchant"),
            models.CheckConstraint(
                condition=models.Q(layer_start__lt=models.F("layer_end")), name="experiment_layer_range_ordered"
            ),
        ]
        indexes = [models.Index(fields=["merchant", "status", "surface"])]

    def __str__(self) -> str:
        return self.name or self.key

    @property
    def hash_seed(self) -> str:
        return self.seed or self.key


class Variant(MerchantOwned):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    index = models.PositiveSmallIntegerField(help_text="0 is the control.")
    key = models.SlugField(max_length=80)
    name = models.CharField(max_length=200)
    weight = models.FloatField(validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    # What the surface does for this variant, e.g. {"strategy": "popularity"} for recommendations.
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["experiment", "index"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "index"], name="variant_index_unique_per_experiment"),
            models.UniqueConstraint(fields=["experiment", "key"], name="variant_key_unique_per_experiment"),
        ]

    def __str__(self) -> str:
        return self.name or self.key

    @property
    def is_control(self) -> bool:
        return self.index == 0


class Exposure(MerchantOwned):
    """A customer's first exposure to an experiment: their variant for the rest of the test (sticky).

    One row per (experiment, customer). `unit_id` is the id that was hashed (the shop's user id when
    known, else the anonymous id), kept so an assignment can be re-derived and audited.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="exposures")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    unit_id = models.CharField(max_length=100)
    exposed_at = models.DateTimeField()
    device = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "customer"], name="exposure_one_per_customer"),
        ]
        indexes = [models.Index(fields=["experiment", "variant"]), models.Index(fields=["experiment", "exposed_at"])]

    def __str__(self) -> str:
        return f"{self.unit_id} → {self.variant_id}"


class AllocationSource(models.TextChoices):
    START = "start", "Experiment started"
    MANUAL = "manual", "Changed by a merchant"
    BANDIT = "bandit", "Bandit reallocation"
    ROLLOUT = "rollout", "Winner rolled out"


class AllocationChange(MerchantOwned):
    """Every change of the variant weights, in order: the sample-ratio check needs the weights that
    were in force when each unit arrived, and a bandit's reallocations must be replayable (the
    posterior it read and the random seed it drew with are stored)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="allocation_changes")
    effective_at = models.DateTimeField()
    source = models.CharField(max_length=10, choices=AllocationSource.choices)
    weights = models.JSONField(help_text="{variant key: weight}")
    # Bandits (experiments.services.bandits): {"metric", "arms": {key: {"kind": "beta", "alpha", "beta"} |
    # {"kind": "normal_inverse_gamma", "mean", "kappa", "alpha", "beta", "n"}}, "units": {key: n},
    # "seed": int, "draws": int, "floor": float}
    detail = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["experiment", "effective_at", "pk"]
        indexes = [models.Index(fields=["experiment", "effective_at"])]

    def __str__(self) -> str:
        return f"{self.source} at {self.effective_at:%Y-%m-%d %H:%M}"


class ContextualDecision(MerchantOwned):
    """One choice of a contextual bandit, with everything needed to replay or evaluate it off-policy:
    the context features, the arm, the probability the policy gave it, the seed, and later the reward."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="decisions")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="decisions")
    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    decided_at = models.DateTimeField()
    context = models.JSONField(help_text="{feature: value} as the policy saw it")
    propensity = models.FloatField()
    seed = models.BigIntegerField()
    model_state = models.ForeignKey(
        "ContextualModelState", on_delete=models.SET_NULL, null=True, blank=True, related_name="decisions"
    )
    reward = models.FloatField(null=True, blank=True)
    rewarded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["experiment", "decided_at"])]

    def __str__(self) -> str:
        return f"decision {self.pk} → {self.variant_id}"


class ContextualModelState(MerchantOwned):
    """The posterior of a contextual bandit after an update: decisions point at the state they used."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="model_states")
    created_at = models.DateTimeField()
    # {"features": [...], "arms": {key: {"precision": [[...]], "b": [...]}}, "noise_variance": float, plus
    # the floor, draws and reward sums}: experiments.bandits.contextual.ContextualPolicy.to_json()
    state = models.JSONField()
    decisions_used = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["experiment", "-created_at"]

    def __str__(self) -> str:
        return f"model state {self.pk} of {self.experiment_id}"


class AnalysisSnapshot(MerchantOwned):
    """One analysis of an experiment (daily by the scheduler, or on demand): the results page reads the
    latest, and the sequence of snapshots is the record of what a merchant saw on each peek."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="snapshots")
    computed_at = models.DateTimeField()
    # experiments.results.ExperimentAnalysis.as_dict()
    analysis = models.JSONField()

    class Meta:
        ordering = ["experiment", "-computed_at"]
        indexes = [models.Index(fields=["experiment", "-computed_at"])]

    def __str__(self) -> str:
        return f"analysis of {self.experiment_id} at {self.computed_at:%Y-%m-%d %H:%M}"
