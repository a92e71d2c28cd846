import factory
from django.utils import timezone

from events.models import Customer

from .tenancy import MerchantFactory


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    merchant = factory.SubFactory(MerchantFactory)
    external_id = factory.Sequence(lambda n: f"user-{n}")
    created_at = factory.LazyFunction(timezone.now)
