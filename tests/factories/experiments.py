import factory
from django.utils import timezone

from experiments.models import Experiment, ExperimentStatus, Exposure, Layer, Variant

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
