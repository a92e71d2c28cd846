"""Production settings come from the environment and refuse to start without what they need."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER, "
    "s.CACHES['default']['BACKEND'], s.DEBUG]))"
)


def _run(settings_module: str, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ALLOWED_HOSTS")
    }
    clean.update(env, DJANGO_SETTINGS_MODULE=settings_module, REVOPT_VAR_DIR=str(ROOT / "var"))
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True)


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"])
def test_production_refuses_to_start_without_a_required_variable(missing):
    env = {
        "SECRET_KEY": "s3cret",
        "DATABASE_URL": "postgres://u:p@db.internal:5432/revopt",
        "REDIS_URL": "redis://cache.internal:6379/0",
        "ALLOWED_HOSTS": "revopt.example",
    }
    del env[missing]

    result = _run("revopt.settings.production", **env)

    assert result.returncode != 0
    assert f"{missing} must be set" in result.stderr


def test_production_uses_postgres_redis_and_real_workers():
    result = _run(
        "revopt.settings.production",
        SECRET_KEY="s3cret",
        DATABASE_URL="postgres://u:p@db.internal:5432/revopt",
        REDIS_URL="redis://cache.internal:6379/0",
        ALLOWED_HOSTS="revopt.example",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        '["django.db.backends.postgresql", "redis://cache.internal:6379/0", false, '
        '"revopt.redis_cache.RedisCache", false]'
    )


def test_the_embedded_default_needs_no_services():
    result = _run("revopt.settings.dev")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        '["django.db.backends.sqlite3", "memory://", true, "django.core.cache.backends.locmem.LocMemCache", true]'
    )
