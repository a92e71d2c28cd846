"""Local development and the demo: the embedded default with DEBUG on."""

from .base import *  # noqa: F403

DEBUG = True
