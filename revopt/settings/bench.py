"""The serving benchmark's server (bench/recommend.py): production settings plus one bare endpoint.

Everything production does (DEBUG off, PostgreSQL, the Redis cache, the full middleware stack) stays
on, so the bare endpoint and the recommendations endpoint differ only in the work of the view.
"""

import environ

from .production import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

# Each run's keys carry their own prefix, so a run never reads what an earlier one left in Redis.
CACHES["default"]["KEY_PREFIX"] = environ.Env().str("REVOPT_CACHE_KEY_PREFIX", default="")  # noqa: F405
