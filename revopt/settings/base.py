"""Settings for every environment.

The defaults need no services: SQLite under var/, Celery tasks run eagerly in-process, an in-memory
cache. Production behaviour is switched on by environment variables (read through django-environ):
DATABASE_URL selects PostgreSQL, REDIS_URL selects Redis as Celery broker, result backend and cache.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("REVOPT_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost", "testserver"]),
)

SECRET_KEY = env.str("SECRET_KEY", default="revopt-insecure-development-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "revopt.tenancy",
    "catalog",
    "events",
    "recommendations",
    "pricing",
    "experiments",
    "loyalty",
    "revopt.simulator",
    "revopt.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "revopt.urls"
WSGI_APPLICATION = "revopt.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'revopt.sqlite3'}"),
}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the dev server read while the simulator or a task writes.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", "timeout": 30}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A full 1,000-event batch with order payloads runs to a few megabytes.
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "revopt" / "static"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"

REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "revopt.redis_cache.RedisCache", "LOCATION": REDIS_URL}}
    # A dead Redis must cost a request a quarter second, not a hang (recommendations then answer from the DB).
    redis_timeout = env.float("REDIS_CACHE_TIMEOUT", default=0.25)
    CACHES["default"]["OPTIONS"] = {"socket_connect_timeout": redis_timeout, "socket_timeout": redis_timeout}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Room for a demo shop's published recommendation lists (one key per customer and product).
    CACHES["default"]["OPTIONS"] = {"MAX_ENTRIES": 200_000}

# --- Celery -----------------------------------------------------------------------------------
# Without a broker the tasks run eagerly in-process, so the embedded default needs no services.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=30 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=35 * 60)
CELERY_TASK_DEFAULT_RETRY_DELAY = 30
CELERY_TASK_MAX_RETRIES = 3
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    # Daily: unspent loyalty points past their expiry are written off, and tiers follow the 365-day window.
    "loyalty-points-expire": {"task": "loyalty.tasks.points_expire_all", "schedule": crontab(minute=45, hour=0)},
    # Nightly: RFM segments, clusters and lifetime value from the day's orders (before the 03:15 pricing fit).
    "loyalty-insights-nightly": {"task": "loyalty.tasks.insights_refresh_all", "schedule": crontab(minute=30, hour=2)},
    # Weekly, Monday after the night's insights (CLV feeds the retention offers): churn model, scores, retention list.
    "loyalty-churn-weekly": {
        "task": "loyalty.tasks.churn_refresh_all",
        "schedule": crontab(minute=45, hour=3, day_of_week=1),
    },
    # Nightly: the incentive uplift model learns from the randomized offer decisions whose outcome is known.
    "loyalty-uplift-nightly": {"task": "loyalty.tasks.uplift_model_train_all", "schedule": crontab(minute=50, hour=2)},
    "data-quality-reports": {
        "task": "events.tasks.data_quality_reports_run_all",
        "schedule": crontab(minute=15, hour="*/6"),
    },
    # Nightly, after the 00:15 data-quality report that opens (or closes) the training gate.
    "recommenders-nightly": {
        "task": "recommendations.tasks.recommender_train_all",
        "schedule": crontab(minute=30, hour=3),
    },
    # Hourly: bandits move traffic towards the arms likely to be best.
    "bandits-reallocate": {
        "task": "experiments.tasks.bandits_reallocate_running",
        "schedule": crontab(minute=5),
    },
    # Daily, after the night's data-quality report and training: one analysis snapshot per running experiment.
    "experiments-analyze-daily": {
        "task": "experiments.tasks.experiments_analyze_running",
        "schedule": crontab(minute=30, hour=4),
    },
    # Nightly, after the data-quality report and before the experiments' analysis: refit demand, then propose.
    "pricing-nightly": {
        "task": "pricing.tasks.pricing_refresh_all",
        "schedule": crontab(minute=15, hour=3),
    },
    # Hourly: contextual bandits learn from the decisions whose reward window closed.
    "contextual-bandits-update": {
        "task": "experiments.tasks.contextual_bandits_update_running",
        "schedule": crontab(minute=20),
    },
    # Nightly, after the data-quality report: the cart-abandonment predictor (funnel) on the last 90 days of carts.
    "abandonment-nightly": {
        "task": "events.tasks.abandonment_models_train_all",
        "schedule": crontab(minute=50, hour=3),
    },
    # Every 10 minutes: follow-ups of the carts abandoned since (loyalty recovery); every 5: the webhook delivery.
    "recovery-enqueue": {"task": "loyalty.tasks.abandoned_carts_enqueue_all", "schedule": crontab(minute="*/10")},
    "recovery-dispatch": {"task": "loyalty.tasks.recovery_dispatch_all", "schedule": crontab(minute="*/5")},
}
RECOMMENDER_TRAIN_SOFT_TIME_LIMIT = env.int("REVOPT_RECOMMENDER_TRAIN_SOFT_TIME_LIMIT", default=50 * 60)
RECOMMENDER_TRAIN_TIME_LIMIT = env.int("REVOPT_RECOMMENDER_TRAIN_TIME_LIMIT", default=60 * 60)
CELERY_TASK_ANNOTATIONS = {
    "recommendations.tasks.recommender_train_task": {
        "soft_time_limit": RECOMMENDER_TRAIN_SOFT_TIME_LIMIT,
        "time_limit": RECOMMENDER_TRAIN_TIME_LIMIT,
    },
    # One analysis is a few aggregate statements over the experiment's exposures (bench/experiments.py).
    "experiments.tasks.experiment_analyze_task": {"soft_time_limit": 10 * 60, "time_limit": 15 * 60},
    # A fit reads the merchant's history in a few grouped queries; proposals are one optimizer call per product.
    "pricing.tasks.demand_model_fit_task": {"soft_time_limit": 30 * 60, "time_limit": 35 * 60},
    "pricing.tasks.price_proposals_generate_task": {"soft_time_limit": 30 * 60, "time_limit": 35 * 60},
    "pricing.tasks.pricing_refresh_task": {"soft_time_limit": 55 * 60, "time_limit": 60 * 60},
    # A training fits a few dozen small boosted-tree models on the randomized decisions (seconds per thousand).
    "loyalty.tasks.uplift_model_train_task": {"soft_time_limit": 20 * 60, "time_limit": 25 * 60},
    # At most 200 webhook POSTs of 5 s each, and a run stops after 3 failures in a row (loyalty.services.recovery).
    "loyalty.tasks.recovery_dispatch_task": {"soft_time_limit": 10 * 60, "time_limit": 12 * 60},
}

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["revopt.tenancy.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["revopt.tenancy.permissions.HasMerchantApiKey"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "revopt.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "revopt storefront API",
    "DESCRIPTION": (
        "Storefront endpoints of revopt. Authenticate with the merchant's API key: "
        "`Authorization: Bearer <key>` or `X-Api-Key: <key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}

# --- revopt -----------------------------------------------------------------------------------
REVOPT = {
    # Clocks drift; an event this far in the future is still accepted.
    "EVENT_FUTURE_SKEW": timedelta(minutes=env.int("REVOPT_EVENT_FUTURE_SKEW_MINUTES", default=5)),
    "EVENT_BATCH_MAX": 1000,
    # Data-quality gate: a check fails when its share of offending rows exceeds the limit.
    "DATA_QUALITY_WINDOW_DAYS": env.int("REVOPT_DATA_QUALITY_WINDOW_DAYS", default=30),
    "DATA_QUALITY_VOLUME_DROP": env.float("REVOPT_DATA_QUALITY_VOLUME_DROP", default=0.5),
    # A training older than the hard time limit was killed; a new one may start (see recommender_version_create).
    "RECOMMENDER_TRAIN_TIME_LIMIT": RECOMMENDER_TRAIN_TIME_LIMIT,
    # Recovery webhooks reach public addresses only; these internal networks (CIDRs, comma-separated) too.
    "WEBHOOK_ALLOWED_NETWORKS": env.list("REVOPT_WEBHOOK_ALLOWED_NETWORKS", default=[]),
}
# A typo in the allowed networks stops the process at start, not a merchant's save later.
for _network in REVOPT["WEBHOOK_ALLOWED_NETWORKS"]:
    try:
        ipaddress.ip_network(_network.strip(), strict=False)
    except ValueError as _error:
        raise ImproperlyConfigured(f"REVOPT_WEBHOOK_ALLOWED_NETWORKS: {_error}") from _error

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
