"""Celery entry points for experiments: each loads by id and calls one service."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)

# --- analysis (daily snapshots) ---------------------------------------------------------------

# --- bandits (scheduled reallocation, contextual model updates) -------------------------------
