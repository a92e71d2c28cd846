"""Structural guards: a model a merchant owns cannot be added without the merchant scoping."""

import pytest
from django.apps import apps

from catalog.models import Product
from revopt.tenancy.models import Merchant, MerchantOwned, StaffMembership

# Apps whose every model holds one merchant's data.
MERCHANT_DATA_APPS = ("catalog", "events", "simulator", "tenancy")
# Models that are the tenancy itself rather than a tenant's rows.
TENANCY_ROOTS = {Merchant, StaffMembership}


def _merchant_owned_models():
    return [model for model in apps.get_models() if issubclass(model, MerchantOwned)]


def test_there_are_merchant_owned_models_to_check():
    # when
    models = _merchant_owned_models()

    # then: guards against the walk below silently checking nothing
    names = {model._meta.label for model in models}
    assert {"catalog.Product", "catalog.Category", "tenancy.ApiKey", "events.Event"} <= names


@pytest.mark.parametrize("model", _merchant_owned_models(), ids=lambda model: model._meta.label)
def test_every_merchant_owned_model_is_queried_through_for_merchant(model):
    # then
    assert callable(getattr(model._default_manager, "for_merchant", None)), (
        f"{model._meta.label}'s default manager must offer for_merchant(); build it from MerchantScopedQuerySet"
    )
    merchant_field = model._meta.get_field("merchant")
    assert merchant_field.remote_field.model is Merchant
    assert not merchant_field.null


@pytest.mark.parametrize(
    "model",
    [
        model
        for app_label in MERCHANT_DATA_APPS
        for model in apps.get_app_config(app_label).get_models()
        if model not in TENANCY_ROOTS
    ],
    ids=lambda model: model._meta.label,
)
def test_every_model_of_the_data_apps_is_merchant_owned(model):
    # then
    assert issubclass(model, MerchantOwned), f"{model._meta.label} must subclass revopt.tenancy.models.MerchantOwned"


@pytest.mark.django_db
def test_for_merchant_refuses_to_run_without_a_merchant():
    # when / then
    with pytest.raises(ValueError, match="merchant is required"):
        Product.objects.for_merchant(Merchant())
