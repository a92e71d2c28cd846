import factory
from django.utils import timezone

from experiments.metrics import METRICS
from experiments.models import AnalysisSnapshot, Experiment, ExperimentStatus, Exposure, Layer, Variant
from experiments.results import DailyPoint, ExperimentAnalysis, MetricResult, VariantSummary, Verdict

from .events import CustomerFactory
from .tenancy import MerchantFactory


class LayerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Layer

    merchant = factory.SubFactory(MerchantFactory)
    key = factory.Sequence(lambda n: f"layer-{n}")
    name = factory.LazyAttribute(lambda o: o.key.replace("-", " ").title())


class ExperimentFactory(factory.django.DjangoModelFactory):
    """A draft experiment without variants; `experiment_with_variants` adds them."""

    class Meta:
        model = Experiment

    merchant = factory.SubFactory(MerchantFactory)
    key = factory.Sequence(lambda n: f"experiment-{n}")
    name = factory.LazyAttribute(lambda o: o.key.replace("-", " ").title())
    status = ExperimentStatus.DRAFT


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Variant

    experiment = factory.SubFactory(ExperimentFactory)
    merchant = factory.LazyAttribute(lambda o: o.experiment.merchant)
    index = factory.Sequence(lambda n: n)
    key = factory.LazyAttribute(lambda o: "control" if o.index == 0 else f"variant-{o.index}")
    name = factory.LazyAttribute(lambda o: o.key.replace("-", " ").title())
    weight = 0.5


def experiment_with_variants(
    *, weights: tuple[float, ...] = (0.5, 0.5), configs: tuple[dict, ...] | None = None, **experiment_fields
) -> Experiment:
    """An experiment with one variant per weight: "control", "variant-1", ..."""
    if "status" in experiment_fields and experiment_fields["status"] != ExperimentStatus.DRAFT:
        experiment_fields.setdefault("started_at", timezone.now())
    experiment = ExperimentFactory(**experiment_fields)
    for index, weight in enumerate(weights):
        VariantFactory(
            experiment=experiment,
            index=index,
            weight=weight,
            config=(configs[index] if configs else {}),
        )
    return experiment


class ExposureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Exposure

    variant = factory.SubFactory(VariantFactory)
    experiment = factory.LazyAttribute(lambda o: o.variant.experiment)
    merchant = factory.LazyAttribute(lambda o: o.variant.merchant)
    customer = factory.LazyAttribute(lambda o: CustomerFactory(merchant=o.variant.merchant))
    unit_id = factory.LazyAttribute(lambda o: o.customer.external_id or f"anon-{o.customer.pk}")
    exposed_at = factory.LazyFunction(timezone.now)


# --- analyses, as the results page reads them (added for the experiment screens) ------------------


def metric_result(
    *,
    metric: str = "revenue_per_user",
    role: str = "primary",
    variant: str = "variant-1",
    control_value: float = 10.0,
    relative_lift: float = 0.042,
    half_width: float = 0.03,
    p_value: float = 0.004,
    significant: bool = True,
    **overrides: object,
) -> MetricResult:
    """A MetricResult with consistent numbers: the interval is the lift ± half_width."""
    treatment_value = control_value * (1 + relative_lift)
    fields = {
        "metric": metric,
        "label": METRICS[metric].label,
        "role": role,
        "variant": variant,
        "control_value": control_value,
        "treatment_value": treatment_value,
        "absolute_lift": treatment_value - control_value,
        "absolute_low": control_value * (relative_lift - half_width),
        "absolute_high": control_value * (relative_lift + half_width),
        "relative_lift": relative_lift,
        "relative_low": relative_lift - half_width,
        "relative_high": relative_lift + half_width,
        "p_value": p_value,
        "adjusted_p_value": min(1.0, p_value * 2),
        "significant": significant,
        "sequential_p_value": min(1.0, p_value * 3),
        "sequential_low": relative_lift - half_width * 1.2,
        "sequential_high": relative_lift + half_width * 1.2,
        "cuped_variance_reduction": 0.31,
        "probability_to_beat_control": 0.991,
        "expected_loss": 0.0004,
        "units_control": 5000,
        "units_treatment": 5000,
    }
    fields.update(overrides)
    return MetricResult(**fields)


def experiment_analysis(experiment: Experiment, *, metrics=None, daily=None, **overrides):
    """An ExperimentAnalysis of `experiment` (its variants must exist): a winning variant-1 by default."""

    variants = list(experiment.variants.order_by("index"))
    units = overrides.pop("units", 5000)
    fields = {
        "experiment_key": experiment.key,
        "computed_at": timezone.now().isoformat(),
        "window_start": experiment.started_at.isoformat() if experiment.started_at else None,
        "window_end": timezone.now().isoformat(),
        "alpha": experiment.alpha,
        "verdict": Verdict.WINNER,
        "verdict_reason": "Variant 1 raises revenue per active user by 4.2% (95% CI +1.2% to +7.2%).",
        "winner": variants[1].key if len(variants) > 1 else None,
        "srm_p_value": 0.41,
        "srm_flagged": False,
        "planned_units_per_variant": experiment.planned_sample_size,
        "units_total": units * len(variants),
        "variants": [
            VariantSummary(
                key=variant.key,
                name=variant.name,
                is_control=variant.index == 0,
                units=units,
                weight=variant.weight,
                expected_share=variant.weight,
            )
            for variant in variants
        ],
        "metrics": metrics
        if metrics is not None
        else [
            metric_result(variant=variants[1].key),
            metric_result(
                metric="refund_rate",
                role="guardrail",
                variant=variants[1].key,
                control_value=0.05,
                relative_lift=0.02,
                half_width=0.05,
                p_value=0.4,
                significant=False,
                guardrail_threshold=0.10,
                guardrail_status="ok",
            ),
        ],
        "daily": daily
        if daily is not None
        else [
            DailyPoint(
                day=f"2026-03-0{day}",
                variant=variants[1].key,
                units=day * 1000,
                relative_lift=0.04,
                low=0.04 - 0.1 / day,
                high=0.04 + 0.1 / day,
            )
            for day in range(1, 6)
        ],
    }
    fields.update(overrides)
    return ExperimentAnalysis(**fields)


class AnalysisSnapshotFactory(factory.django.DjangoModelFactory):
    """Pass `analysis=experiment_analysis(experiment).as_dict()` for a readable one."""

    class Meta:
        model = AnalysisSnapshot

    experiment = factory.SubFactory(ExperimentFactory)
    merchant = factory.LazyAttribute(lambda o: o.experiment.merchant)
    computed_at = factory.LazyFunction(timezone.now)
    analysis = factory.LazyAttribute(lambda o: experiment_analysis(o.experiment).as_dict())
