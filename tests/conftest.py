import pytest
from rest_framework.test import APIClient

from revopt.tenancy.services import api_key_create
from tests.factories.tenancy import MerchantFactory


@pytest.fixture(autouse=True)
def _isolated_cache():
    """Each test gets its own cache namespace: cached lists must not outlive the test's database rows.

    A fresh key prefix rather than cache.clear(), which on Redis would flush the other xdist workers' keys.
    """
    import uuid

    from django.core.cache import cache

    from experiments.selectors.assignment import live_experiments_forget
    from experiments.services.bandits import contextual_policies_forget
    from loyalty.selectors.uplift import uplift_serving_forget
    from recommendations.cache import cache_reset_circuit
    from recommendations.selectors import fallback_popularity_forget

    previous = cache.key_prefix
    cache.key_prefix = f"test-{uuid.uuid4().hex[:12]}"
    cache_reset_circuit()
    fallback_popularity_forget()
    live_experiments_forget()
    contextual_policies_forget()
    uplift_serving_forget()
    yield
    cache.key_prefix = previous


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


def _staff(username: str, role: str, merchant):
    from revopt.tenancy.models import Role
    from revopt.tenancy.services import staff_member_create

    return staff_member_create(username=username, password="pw-for-tests-1", role=Role(role), merchant=merchant)


@pytest.fixture
def merchant_manager(merchant):
    """A staff user in the merchant manager role group of `merchant`."""
    return _staff("manager", "merchant_manager", merchant)


@pytest.fixture
def other_merchant_manager(other_merchant):
    return _staff("other-manager", "merchant_manager", other_merchant)


@pytest.fixture
def support_agent(merchant):
    return _staff("support", "support_agent", merchant)


@pytest.fixture
def platform_admin(db):
    return _staff("platform", "platform_admin", None)


@pytest.fixture(scope="session")
def celery_worker_queue(django_db_setup, tmp_path_factory):
    """A real `celery worker` process on the test database, for tests marked `celery_worker`.

    Depends on `django_db_setup` so it starts after the test database exists and is torn down
    before that database is dropped. Yields the queue the worker consumes (the test settings route
    tasks there, one queue per xdist process, so a worker never runs another process's tasks).
    """
    import os
    import subprocess
    import sys
    import time
    from urllib.parse import quote

    from django.conf import settings
    from django.db import connection

    from revopt.celery import app

    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL (run under bin/with-services)")
    if connection.vendor != "postgresql":
        pytest.skip("a worker process cannot share the in-memory/SQLite test database")

    # Once pytest-django has created it, NAME is the test database (test_revopt, or test_revopt_gw0 under xdist).
    db = connection.settings_dict
    database_url = (
        f"postgres://{quote(db['USER'] or '', safe='')}:{quote(db['PASSWORD'] or '', safe='')}"
        f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"
    )
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    node_name = f"{queue}-{os.getpid()}@localhost"
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "revopt.settings.base",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    command = [
        sys.executable, "-m", "celery", "-A", "revopt", "worker",
        "--pool=solo", "--concurrency=1", "--loglevel=INFO", "--without-heartbeat", "--without-gossip",
        "--without-mingle", "-Q", queue, "-n", node_name,
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR)

    def worker_log() -> str:
        return log_path.read_text(errors="replace")[-4000:]

    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[node_name], timeout=0.5):
            if worker.poll() is not None:
                pytest.fail(f"celery worker exited with {worker.returncode}:\n{worker_log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"celery worker did not answer a ping within 60s:\n{worker_log()}")
        yield queue
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.fixture(autouse=True)
def _abandonment_serving_forgotten():
    """The abandonment model in service is memoised per merchant id in the process: ids repeat across tests."""
    from events.selectors.abandonment import abandonment_serving_forget

    abandonment_serving_forget()
    yield
