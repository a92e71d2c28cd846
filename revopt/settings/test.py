"""Test settings: the embedded default, or PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set.

Tasks stay eager so tests can assert their effects; the worker test switches eagerness off for
itself and talks to a real worker through Redis.
"""

import os

from .base import *  # noqa: F403
from .base import REDIS_URL, VAR_DIR

SECRET_KEY = "revopt-test-key"
CELERY_TASK_ALWAYS_EAGER = True
# One queue per test process (xdist runs several): the real worker started by the `celery_worker_queue`
# fixture consumes only this queue, so it never runs a task meant for another process's test database.
CELERY_TASK_DEFAULT_QUEUE = f"revopt-test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "test-media")},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if REDIS_URL:
    # On a loaded CI machine a live Redis can take longer than the production quarter second to answer;
    # the serving tests would then see the circuit breaker's database fallback instead of the cache they
    # test. The dead-Redis test sets its own short timeout.
    CACHES["default"]["OPTIONS"] = {"socket_connect_timeout": 5.0, "socket_timeout": 5.0}  # noqa: F405
