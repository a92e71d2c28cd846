"""Model summaries as JSON columns hold: numpy scalars and arrays become plain numbers and lists."""

from __future__ import annotations

import math

import numpy as np


def jsonable(value: object) -> object:
    """numpy scalars and arrays as plain numbers and lists; non-finite floats as None (JSON has no NaN, and
    PostgreSQL's jsonb refuses it); anything else unknown as its string."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int | str | bool) or value is None:
        return value
    return str(value)
