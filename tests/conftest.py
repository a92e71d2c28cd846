import pytest
from rest_framework.test import APIClient

from revopt.tenancy.services import api_key_create
from tests.factories.tenancy import MerchantFactory


@pytest.fixture
def merchant():
    return MerchantFactory(name="Acme Outdoor", slug="acme-outdoor")


@pytest.fixture
def other_merchant():
    return MerchantFactory(name="Other Shop", slug="other-shop")


def _client_for(merchant) -> APIClient:
    client = APIClient()
    issued = api_key_create(merchant=merchant, name="storefront")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    client.raw_key = issued.raw_key
    return client


@pytest.fixture
def api_client(merchant) -> APIClient:
    """A storefront client authenticated with `merchant`'s API key."""
    return _client_for(merchant)


@pytest.fixture
def other_api_client(other_merchant) -> APIClient:
    """The storefront of another merchant: must never see `merchant`'s rows."""
    return _client_for(other_merchant)


@pytest.fixture
def anonymous_api_client() -> APIClient:
    return APIClient()
