"""Assigning shoppers to variants, GrowthBook-compatible and sticky.

A unit is the shop's user id when the storefront knows it, else the anonymous (device/cookie) id, which
is what a GrowthBook SDK hashes with `hashAttribute: id, fallbackAttribute: anonymousId`. The first
assignment of a customer to an experiment is stored as an `Exposure` and decides every later one: after
a weight change, after log-in (the anonymous customer's exposures follow the merge), and on another
device once the shopper is identified. Only shoppers never exposed are bucketed, by the hash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from events.identity import IdentityResolver
from events.models import Customer, Device
from experiments.assignment import Reason, UnitAttributes, decide, eligibility
from experiments.models import Experiment, Exposure, Surface
from experiments.selectors.assignment import (
    LiveExperiment,
    LiveExperiments,
    LiveVariant,
    customer_exposures,
    customer_has_ordered,
    live_experiments,
    unit_lookup,
)
from revopt.tenancy.models import Merchant

MAX_UNIT_ID = 100
MAX_SEGMENT = 100
MAX_EXPERIMENT_KEYS = 50
# Two first requests of one new shopper at once both create the customer; the unique index stops the
# second, which then finds the first's rows.
RESOLVE_ATTEMPTS = 3
_EXPOSURE = Exposure._meta.db_table


class AssignmentRequestError(ValueError):
    """A request the caller must fix; `field` is the API field at fault."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Assignment:
    experiment_key: str
    surface: str
    variant_key: str | None
    variant_index: int | None
    # What the surface does: the variant's config; {} (the surface's own default) when the unit is in no
    # variant (holdout, not targeted, ...).
    config: dict = field(default_factory=dict)
    # True when the unit is counted in the experiment (assigned, sticky, decided); a rolled-out winner's
    # config applies to everyone but counts no one.
    in_experiment: bool = False
    reason: str = Reason.NOT_COVERED
    hash_value: float | None = None


def _aware(at: datetime | None) -> datetime:
    if at is None:
        return timezone.now()
    return at if timezone.is_aware(at) else at.replace(tzinfo=UTC)


def _attributes(attributes: Mapping[str, object] | None) -> tuple[str | None, str | None]:
    """(device, segment) from the caller's attributes; other keys are the storefront's own and ignored."""
    attributes = attributes or {}
    device = attributes.get("device")
    if device is not None and device not in Device.values:
        raise AssignmentRequestError("attributes.device", f"One of: {', '.join(Device.values)}.")
    segment = attributes.get("segment")
    if segment is not None and (not isinstance(segment, str) or len(segment) > MAX_SEGMENT):
        raise AssignmentRequestError("attributes.segment", f"A segment name of at most {MAX_SEGMENT} characters.")
    return device, (segment.strip() or None) if isinstance(segment, str) else None


def _variant_assignment(
    experiment: LiveExperiment, variant: LiveVariant, reason: Reason, hash_value: float | None = None
) -> Assignment:
    return Assignment(
        experiment_key=experiment.key,
        surface=experiment.surface,
        variant_key=variant.key,
        variant_index=variant.index,
        config=dict(variant.config),  # a copy: the memo's snapshot stays as loaded
        in_experiment=reason != Reason.ROLLED_OUT,
        reason=reason,
        hash_value=hash_value,
    )


def _stored_variant(experiment: LiveExperiment, exposures: dict[int, int]) -> LiveVariant | None:
    variant_id = exposures.get(experiment.id)
    return experiment.variant_by_id(variant_id) if variant_id is not None else None


def _outside(experiment_key: str, surface: str, reason: Reason, hash_value: float | None = None) -> Assignment:
    return Assignment(experiment_key, surface, None, None, {}, False, reason, hash_value)


def _chosen(
    *, merchant: Merchant, live: LiveExperiments, experiment_keys: Sequence[str] | None, surface: str | None
) -> tuple[list[LiveExperiment], list[Assignment]]:
    """The live experiments asked for, and answers for keys that exist but are not live.

    Raises AssignmentRequestError for a key the merchant has no experiment under.
    """
    if experiment_keys is None:
        return [e for e in live.experiments if e.surface != Surface.PRICING and surface in (None, e.surface)], []
    keys = list(dict.fromkeys(experiment_keys))
    if len(keys) > MAX_EXPERIMENT_KEYS:
        raise AssignmentRequestError("experiments", f"At most {MAX_EXPERIMENT_KEYS} experiments.")
    by_key = live.by_key()
    missing = [key for key in keys if key not in by_key]
    idle: dict[str, str] = {}
    if missing:
        idle = dict(Experiment.objects.for_merchant(merchant).filter(key__in=missing).values_list("key", "surface"))
        unknown = [key for key in missing if key not in idle]
        if unknown:
            raise AssignmentRequestError("experiments", f"Unknown experiment(s): {', '.join(unknown[:10])}.")
    priced = [key for key in keys if (by_key[key].surface if key in by_key else idle[key]) == Surface.PRICING]
    if priced:
        # Prices are the same for every shopper, so pricing experiments randomise products, never people.
        raise AssignmentRequestError(
            "experiments",
            f"{', '.join(priced[:10])} randomises products, not shoppers: read prices from /api/v1/prices.",
        )
    chosen = [by_key[key] for key in keys if key in by_key and (surface is None or by_key[key].surface == surface)]
    not_running = [
        _outside(key, idle[key], Reason.NOT_RUNNING)
        for key in keys
        if key in idle and (surface is None or idle[key] == surface)
    ]
    return chosen, not_running


def assignments_for_unit(
    *,
    merchant: Merchant,
    customer_external_id: str | None = None,
    anonymous_id: str | None = None,
    attributes: Mapping[str, object] | None = None,
    experiment_keys: Sequence[str] | None = None,
    surface: str | None = None,
    at: datetime | None = None,
    record: bool = True,
) -> list[Assignment]:
    """The unit's variant in each live experiment asked for (all of the merchant's by default), in the
    order asked (else by key).

    With `record`, the customer is resolved as ingest does (created on first sight, linked at log-in) and
    a unit's first assignment to an experiment is stored; later requests read it back (reason "sticky").
    Without it (previews) nothing is written. Raises AssignmentRequestError naming the API field at fault.
    """
    customer_external_id = (customer_external_id or "").strip() or None
    anonymous_id = (anonymous_id or "").strip() or None
    unit_id = customer_external_id or anonymous_id
    if unit_id is None:
        raise AssignmentRequestError("customer_id", "Send customer_id or anonymous_id.")
    for name, value in (("customer_id", customer_external_id), ("anonymous_id", anonymous_id)):
        if value is not None and len(value) > MAX_UNIT_ID:
            raise AssignmentRequestError(name, f"Ensure this field has no more than {MAX_UNIT_ID} characters.")
    device, segment = _attributes(attributes)
    at = _aware(at)
    live = live_experiments(merchant_id=merchant.pk)
    chosen, answers = _chosen(merchant=merchant, live=live, experiment_keys=experiment_keys, surface=surface)
    by_key = {answer.experiment_key: answer for answer in answers}
    for experiment in chosen:
        if not experiment.is_running and experiment.rolled_out_index is not None:
            winner = experiment.variants[experiment.rolled_out_index]
            by_key[experiment.key] = _variant_assignment(experiment, winner, Reason.ROLLED_OUT)
    running = [experiment for experiment in chosen if experiment.is_running]
    if running:
        unit = _Unit(
            merchant=merchant,
            unit_id=unit_id,
            customer_external_id=customer_external_id,
            anonymous_id=anonymous_id,
            device=device,
            segment=segment,
            at=at,
        )
        by_key.update(unit.assign(running=running, live=live, record=record))
    order = list(dict.fromkeys(experiment_keys)) if experiment_keys is not None else sorted(by_key)
    return [by_key[key] for key in order if key in by_key]


@dataclass
class _Unit:
    """One request's unit: who it is, and the assignments of the running experiments."""

    merchant: Merchant
    unit_id: str
    customer_external_id: str | None
    anonymous_id: str | None
    device: str | None
    segment: str | None
    at: datetime
    customer: Customer | None = None

    def assign(self, *, running: list[LiveExperiment], live: LiveExperiments, record: bool) -> dict[str, Assignment]:
        experiment_ids = [experiment.id for experiment in running]
        lookup = unit_lookup(
            merchant_id=self.merchant.pk,
            customer_external_id=self.customer_external_id,
            anonymous_id=self.anonymous_id,
            experiment_ids=experiment_ids,
        )
        if not record:
            return self._decide(running, live, lookup.known_customer_id, lookup.exposures, record=False)
        if lookup.customer_id is not None:
            return self._decide(running, live, lookup.customer_id, lookup.exposures, record=True)
        for attempt in range(RESOLVE_ATTEMPTS):
            try:
                with transaction.atomic():
                    customer, created = self._resolve()
                    exposures = (
                        {}
                        if created
                        else customer_exposures(
                            merchant_id=self.merchant.pk, customer_id=customer.pk, experiment_ids=experiment_ids
                        )
                    )
                    return self._decide(running, live, customer.pk, exposures, record=True)
            except IntegrityError:
                if attempt == RESOLVE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _resolve(self) -> tuple[Customer, bool]:
        """The customer behind the ids, written the way ingest writes it (new, promoted, merged, re-linked)."""
        resolver = IdentityResolver(
            merchant=self.merchant,
            user_ids=[self.customer_external_id] if self.customer_external_id else [],
            anonymous_ids=[self.anonymous_id] if self.anonymous_id else [],
        )
        customer = resolver.resolve(user_id=self.customer_external_id, anonymous_id=self.anonymous_id, seen_at=self.at)
        created = customer.pk is None
        resolver.flush()
        self.customer = resolver.canonical(customer)
        return self.customer, created

    def _decide(
        self,
        running: list[LiveExperiment],
        live: LiveExperiments,
        customer_id: int | None,
        exposures: dict[int, int],
        *,
        record: bool,
    ) -> dict[str, Assignment]:
        answers: dict[str, Assignment] = {}
        fresh = [experiment for experiment in running if _stored_variant(experiment, exposures) is None]
        returning = None
        if any(experiment.plan.targeting.needs_visitor or experiment.is_contextual for experiment in fresh):
            returning = customer_has_ordered(merchant_id=self.merchant.pk, customer_id=customer_id, before=self.at)
        attributes = UnitAttributes(device=self.device, segment=self.segment, returning=returning)
        new_exposures: dict[int, tuple[LiveExperiment, LiveVariant]] = {}
        for experiment in running:
            stored = _stored_variant(experiment, exposures)
            if stored is not None:
                answers[experiment.key] = _variant_assignment(experiment, stored, Reason.STICKY)
            elif experiment.is_contextual:
                answers[experiment.key] = self._contextual(experiment, live, attributes, customer_id, record=record)
            else:
                decision = decide(
                    plan=experiment.plan, unit_id=self.unit_id, attributes=attributes, holdout=live.holdout
                )
                if decision.variant_index is None:
                    answers[experiment.key] = _outside(
                        experiment.key, experiment.surface, decision.reason, decision.hash_value
                    )
                    continue
                variant = experiment.variants[decision.variant_index]
                answers[experiment.key] = _variant_assignment(
                    experiment, variant, Reason.ASSIGNED, hash_value=decision.hash_value
                )
                new_exposures[experiment.id] = (experiment, variant)
        if record and new_exposures and customer_id is not None:
            stored_first = self._exposures_insert(customer_id, new_exposures)
            for experiment, variant in stored_first:
                answers[experiment.key] = _variant_assignment(experiment, variant, Reason.STICKY)
        return answers

    def _exposures_insert(
        self, customer_id: int, rows: dict[int, tuple[LiveExperiment, LiveVariant]]
    ) -> list[tuple[LiveExperiment, LiveVariant]]:
        """Store first exposures in one statement; a row another request stored first wins (ON CONFLICT DO
        NOTHING), and is returned so the caller answers with it."""
        merchant_id = self.merchant.pk
        exposed_at = connection.ops.adapt_datetimefield_value(self.at)
        values = []
        params: list[object] = []
        for experiment_id, (_, variant) in rows.items():
            values.append("(%s, %s, %s, %s, %s, %s, %s)")
            params += [merchant_id, experiment_id, variant.id, customer_id, self.unit_id, exposed_at, self.device or ""]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_EXPOSURE} (merchant_id, experiment_id, variant_id, customer_id, unit_id, exposed_at, "
                f"device) VALUES {', '.join(values)} ON CONFLICT (experiment_id, customer_id) DO NOTHING "
                "RETURNING experiment_id",
                params,
            )
            inserted = {row[0] for row in cursor.fetchall()}
        lost = [experiment_id for experiment_id in rows if experiment_id not in inserted]
        if not lost:
            return []
        winners = customer_exposures(merchant_id=merchant_id, customer_id=customer_id, experiment_ids=lost)
        found = []
        for experiment_id, variant_id in winners.items():
            experiment = rows[experiment_id][0]
            variant = experiment.variant_by_id(variant_id)
            if variant is not None:
                found.append((experiment, variant))
        return found

    def _contextual(
        self,
        experiment: LiveExperiment,
        live: LiveExperiments,
        attributes: UnitAttributes,
        customer_id: int | None,
        *,
        record: bool,
    ) -> Assignment:
        """A contextual bandit chooses per request (never sticky, no exposure): its decision log is its record."""
        excluded = eligibility(plan=experiment.plan, unit_id=self.unit_id, attributes=attributes, holdout=live.holdout)
        if excluded is not None:
            return _outside(experiment.key, experiment.surface, excluded)
        if not record:
            return _outside(experiment.key, experiment.surface, Reason.PREVIEW)
        from experiments.services.bandits import contextual_decision_make  # written beside this module

        customer = self.customer
        if customer is None or customer.pk != customer_id:
            customer = Customer.objects.for_merchant(self.merchant).get(pk=customer_id)
        row = Experiment.objects.for_merchant(self.merchant).get(pk=experiment.id)
        decision = contextual_decision_make(
            experiment=row, customer=customer, context=self._context(attributes), at=self.at
        )
        variant = experiment.variant_by_id(decision.variant_id)
        if variant is None:  # the variant list changed under the memo; the row is the truth
            chosen = decision.variant
            variant = LiveVariant(chosen.pk, chosen.index, chosen.key, dict(chosen.config or {}))
        return _variant_assignment(experiment, variant, Reason.DECIDED)

    def _context(self, attributes: UnitAttributes) -> dict:
        # The bandit's service adds the hour of day in the merchant's time zone.
        context: dict[str, object] = {
            "device": attributes.device or Device.OTHER,
            "returning": bool(attributes.returning),
        }
        if attributes.segment:
            context["segment"] = attributes.segment
        return context


def surface_assignment(
    *,
    merchant: Merchant,
    surface: str,
    customer_external_id: str | None,
    anonymous_id: str | None,
    device: str | None = None,
    at: datetime | None = None,
    record: bool = True,
) -> Assignment | None:
    """What a surface (recommendations, pricing) should do for this visitor: the assignment whose config
    applies, else the first one (to say why none does); None when no experiment is live on the surface or
    the visitor has no id. Free of queries for a merchant with nothing live on the surface (the memo)."""
    if not (customer_external_id or anonymous_id):
        return None
    live = live_experiments(merchant_id=merchant.pk)
    if not any(experiment.surface == surface for experiment in live.experiments):
        return None
    assignments = assignments_for_unit(
        merchant=merchant,
        customer_external_id=customer_external_id,
        anonymous_id=anonymous_id,
        attributes={"device": device if device in Device.values else None},
        surface=surface,
        at=at,
        record=record,
    )
    applying = next((assignment for assignment in assignments if assignment.variant_key is not None), None)
    return applying or (assignments[0] if assignments else None)


def exposures_merge(*, merchant_id: int, source_id: int, target_id: int) -> int:
    """Move a merged-away customer's exposures onto the customer they became.

    Where the target was already exposed to the same experiment, the target's exposure is kept and the
    source's deleted (one customer, one variant). Returns how many exposures moved.
    """
    target_has_one = Exposure.objects.filter(
        merchant_id=merchant_id, customer_id=target_id, experiment_id=OuterRef("experiment_id")
    )
    source = Exposure.objects.for_merchant(merchant_id).filter(customer_id=source_id)
    source.filter(Exists(target_has_one)).delete()
    return source.update(customer_id=target_id)
