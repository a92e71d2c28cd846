import factory
from django.utils import timezone

from recommendations.engine.precomputed import Precomputed, precomputed_to_bytes
from recommendations.models import (
    PlacementItemRule,
    PlacementRule,
    RecommenderSettings,
    RecommenderVersion,
    ServedRecommendation,
    VersionStatus,
)

from .catalog import ProductFactory
from .tenancy import MerchantFactory


class RecommenderSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RecommenderSettings

    merchant = factory.SubFactory(MerchantFactory)


class RecommenderVersionFactory(factory.django.DjangoModelFactory):
    """A finished candidate with an (empty) artifact; pass status=... and metrics=... as the test needs."""

    class Meta:
        model = RecommenderVersion

    merchant = factory.SubFactory(MerchantFactory)
    number = factory.Sequence(lambda n: n + 1)
    status = VersionStatus.CANDIDATE
    metrics = factory.LazyFunction(lambda: {"ndcg@10": 0.1})
    artifact = factory.LazyAttribute(lambda o: precomputed_to_bytes(Precomputed(version=o.number)))
    progress = 1.0


class PlacementRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlacementRule

    merchant = factory.SubFactory(MerchantFactory)
    placement = "home"


class PlacementItemRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlacementItemRule

    merchant = factory.SubFactory(MerchantFactory)
    product = factory.SubFactory(ProductFactory, merchant=factory.SelfAttribute("..merchant"))
    action = "block"


class ServedRecommendationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServedRecommendation

    merchant = factory.SubFactory(MerchantFactory)
    placement = "home"
    product_ids = factory.LazyFunction(list)
    item_count = factory.LazyAttribute(lambda o: len(o.product_ids))
    source = "model"
    created_at = factory.LazyFunction(timezone.now)


def published_version(*, merchant, precomputed: Precomputed, number: int = 1) -> RecommenderVersion:
    """An active version whose artifact is `precomputed`, published to the cache as training would."""
    from recommendations.cache import publish_precomputed

    precomputed.version = number
    version = RecommenderVersionFactory(
        merchant=merchant,
        number=number,
        status=VersionStatus.ACTIVE,
        artifact=precomputed_to_bytes(precomputed),
        activated_at=timezone.now(),
    )
    publish_precomputed(version=version, precomputed=precomputed)
    return version
