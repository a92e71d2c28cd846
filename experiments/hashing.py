"""GrowthBook's bucketing, bit for bit: a storefront already running a GrowthBook SDK puts every shopper
in the same variant as revopt does, given the same seed, unit id and weights.

The functions follow the JavaScript SDK (packages/sdk-js/src/util.ts): FNV-1a 32-bit over the string's
UTF-16 code units (what `charCodeAt` returns), hash version 2 for variants and version 1 for namespaces
(revopt's layers). No Django here.
"""

from __future__ import annotations

from collections.abc import Sequence

FNV_OFFSET_BASIS = 0x811C9DC5
FNV_PRIME = 0x01000193
MASK_32 = 0xFFFFFFFF

Range = tuple[float, float]
Namespace = tuple[str, float, float]


def _code_units(text: str) -> Sequence[int]:
    if text.isascii():
        return text.encode("ascii")
    # Characters outside the Basic Multilingual Plane are two code units (a surrogate pair) in JavaScript.
    return memoryview(text.encode("utf-16-le")).cast("H")


def fnv1a32(text: str) -> int:
    """FNV-1a, 32 bits, over UTF-16 code units: JavaScript's `hashFnv32a`."""
    value = FNV_OFFSET_BASIS
    for unit in _code_units(text):
        value = ((value ^ unit) * FNV_PRIME) & MASK_32
    return value


def hash(seed: str, value: str, version: int) -> float | None:
    """A position in [0, 1) for `value`; None for an unknown hash version (as the SDK does).

    Version 2 (what new GrowthBook experiments use) hashes twice so that similar seeds do not give
    correlated buckets; version 1 is kept for namespaces, which GrowthBook still hashes with it.
    """
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def equal_weights(count: int) -> list[float]:
    if count <= 0:
        return []
    return [1 / count] * count


def bucket_ranges(count: int, coverage: float = 1.0, weights: Sequence[float] | None = None) -> list[Range]:
    """Each variant's [start, end) slice of the hash space.

    Variant i owns the start of its weight's slice, shortened to `coverage` of it, so that raising
    the coverage only adds units, never moves one. Weights that do not fit (wrong length, a sum outside
    0.99-1.01) fall back to equal weights, as the SDK does.
    """
    coverage = min(max(coverage, 0.0), 1.0)
    equal = equal_weights(count)
    chosen = list(weights) if weights is not None else equal
    if len(chosen) != count:
        chosen = equal
    total = sum(chosen)
    if total < 0.99 or total > 1.01:
        chosen = equal
    ranges: list[Range] = []
    cumulative = 0.0
    for weight in chosen:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_variation(position: float, ranges: Sequence[Range]) -> int:
    """The index of the range holding `position`; -1 when it falls in none (not covered)."""
    for index, (start, end) in enumerate(ranges):
        if start <= position < end:
            return index
    return -1


def in_namespace(unit_id: str, namespace: Namespace) -> bool:
    """Whether the unit falls in the namespace's slice [start, end): GrowthBook's mutual exclusion."""
    key, start, end = namespace
    position = hash("__" + key, unit_id, 1)
    if position is None:
        return False
    return start <= position < end
