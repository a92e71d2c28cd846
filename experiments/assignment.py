"""Which variant a unit gets, decided from plain values: the global holdout, targeting, the layer, then
GrowthBook's bucketing. No Django and no stickiness here: the services look up a unit's stored exposure
first and only ask `decide` about units that have none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from . import hashing

HASH_VERSION = 2


class Reason(StrEnum):
    ASSIGNED = "assigned"  # bucketed now
    STICKY = "sticky"  # an earlier exposure decides
    ROLLED_OUT = "rolled_out"  # every unit gets the winner's config
    DECIDED = "decided"  # a contextual bandit chose for this request
    HOLDOUT = "holdout"  # the merchant's global holdout: no experiment at all
    NOT_TARGETED = "not_targeted"
    NOT_IN_LAYER = "not_in_layer"  # another experiment of the layer owns this unit's slice
    NOT_COVERED = "not_covered"  # outside the experiment's coverage
    NOT_RUNNING = "not_running"  # asked for by key, but a draft or stopped
    PREVIEW = "preview"  # a contextual bandit is not asked to decide for a preview (it logs every decision)


class Visitor(StrEnum):
    ANY = "any"
    NEW = "new"
    RETURNING = "returning"


@dataclass(frozen=True)
class Targeting:
    """Who may enter; an empty set means everyone. Segments compare without regard to case."""

    devices: frozenset[str] = frozenset()
    visitor: Visitor = Visitor.ANY
    segments: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, data: Mapping[str, object] | None) -> Targeting:
        """From the experiment's stored JSON (already validated when it was saved)."""
        data = data or {}
        return cls(
            devices=frozenset(str(device) for device in _strings(data.get("devices"))),
            visitor=Visitor(data.get("visitor") or Visitor.ANY),
            segments=frozenset(str(segment).casefold() for segment in _strings(data.get("segments"))),
        )

    def matches(self, attributes: UnitAttributes) -> bool:
        if self.devices and attributes.device not in self.devices:
            return False
        if self.segments and (attributes.segment is None or attributes.segment.casefold() not in self.segments):
            return False
        if self.visitor == Visitor.NEW:
            return attributes.returning is False
        if self.visitor == Visitor.RETURNING:
            return attributes.returning is True
        return True

    @property
    def needs_visitor(self) -> bool:
        return self.visitor != Visitor.ANY


def _strings(value: object) -> Iterable[object]:
    return value if isinstance(value, (list, tuple, set, frozenset)) else ()


@dataclass(frozen=True)
class UnitAttributes:
    device: str | None = None
    segment: str | None = None
    # Whether the customer completed an order before now; None when unknown.
    returning: bool | None = None


@dataclass(frozen=True)
class ExperimentPlan:
    """What bucketing needs to know about an experiment."""

    seed: str
    weights: tuple[float, ...]  # by variant index
    coverage: float = 1.0
    targeting: Targeting = Targeting()
    layer: hashing.Namespace | None = None  # (layer key, start, end)


@dataclass(frozen=True)
class Holdout:
    share: float
    seed: str


@dataclass(frozen=True)
class Decision:
    variant_index: int | None
    reason: Reason
    hash_value: float | None = None  # the unit's v2 bucket in this experiment, when it was computed


def in_holdout(*, holdout: Holdout | None, unit_id: str) -> bool:
    if holdout is None or holdout.share <= 0:
        return False
    return hashing.hash(holdout.seed, unit_id, HASH_VERSION) < holdout.share


def eligibility(
    *, plan: ExperimentPlan, unit_id: str, attributes: UnitAttributes, holdout: Holdout | None = None
) -> Reason | None:
    """Why the unit cannot enter (holdout, targeting, layer), or None when it may be bucketed."""
    if in_holdout(holdout=holdout, unit_id=unit_id):
        return Reason.HOLDOUT
    if not plan.targeting.matches(attributes):
        return Reason.NOT_TARGETED
    if plan.layer is not None and not hashing.in_namespace(unit_id, plan.layer):
        return Reason.NOT_IN_LAYER
    return None


def bucket(*, plan: ExperimentPlan, unit_id: str) -> Decision:
    """GrowthBook's choice for an eligible unit: the variant whose range holds hash(seed, unit, v2)."""
    position = hashing.hash(plan.seed, unit_id, HASH_VERSION)
    ranges = hashing.bucket_ranges(len(plan.weights), plan.coverage, plan.weights)
    index = hashing.choose_variation(position, ranges)
    if index < 0:
        return Decision(None, Reason.NOT_COVERED, position)
    return Decision(index, Reason.ASSIGNED, position)


def decide(
    *, plan: ExperimentPlan, unit_id: str, attributes: UnitAttributes, holdout: Holdout | None = None
) -> Decision:
    """The variant for a unit seen for the first time: holdout, then targeting, then the layer, then buckets."""
    excluded = eligibility(plan=plan, unit_id=unit_id, attributes=attributes, holdout=holdout)
    if excluded is not None:
        return Decision(None, excluded)
    return bucket(plan=plan, unit_id=unit_id)


def ranges_overlap(first: Sequence[float], second: Sequence[float]) -> bool:
    """Whether two [start, end) slices of a layer share any position."""
    return first[0] < second[1] and second[0] < first[1]
