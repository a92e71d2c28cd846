"""Production: every service comes from the environment, and a missing one stops start-up."""

import environ
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403

_env = environ.Env()
for required in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"):
    if not _env.str(required, default=""):
        raise ImproperlyConfigured(f"{required} must be set in the environment for production")

DEBUG = False
SESSION_COOKIE_SECURE = _env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = _env.bool("CSRF_COOKIE_SECURE", default=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
