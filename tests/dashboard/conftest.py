import pytest
from django.test import Client

from revopt.tenancy.models import Role
from revopt.tenancy.services import staff_member_create

PASSWORD = "correct-horse-battery"


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def manager(merchant):
    return staff_member_create(username="manager", password=PASSWORD, role=Role.MERCHANT_MANAGER, merchant=merchant)


@pytest.fixture
def manager_client(manager) -> Client:
    return _login(manager)


@pytest.fixture
def support_client(merchant) -> Client:
    agent = staff_member_create(username="agent", password=PASSWORD, role=Role.SUPPORT_AGENT, merchant=merchant)
    return _login(agent)


@pytest.fixture
def platform_admin_client(db) -> Client:
    admin = staff_member_create(username="root", password=PASSWORD, role=Role.PLATFORM_ADMIN, merchant=None)
    return _login(admin)
