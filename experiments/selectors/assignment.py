"""Reads of the assignment path: the merchant's live experiments (remembered by this process for a few
seconds) and a unit's stored exposures.

The recommendations request path asks for an assignment on every call, so a merchant without a running
experiment must cost nothing beyond a dictionary look-up, and a unit already exposed one query.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection

from events.models import AnonymousIdentity, Customer, Order, OrderStatus
from experiments.assignment import ExperimentPlan, Holdout, Targeting
from experiments.models import Experiment, ExperimentKind, ExperimentSettings, ExperimentStatus, Exposure, Variant

DEFAULT_LIVE_SECONDS = 5.0
LIVE_MEMO_LIMIT = 10_000
LIVE_STATUSES = (ExperimentStatus.RUNNING, ExperimentStatus.ROLLED_OUT)


@dataclass(frozen=True)
class LiveVariant:
    id: int
    index: int
    key: str
    config: dict


@dataclass(frozen=True)
class LiveExperiment:
    """A running or rolled-out experiment as the assignment path reads it (a snapshot, not the row)."""

    id: int
    key: str
    surface: str
    kind: str
    status: str
    plan: ExperimentPlan
    variants: tuple[LiveVariant, ...]  # by index
    rolled_out_index: int | None  # position in `variants` of the rolled-out winner

    @property
    def is_running(self) -> bool:
        return self.status == ExperimentStatus.RUNNING

    @property
    def is_contextual(self) -> bool:
        return self.kind == ExperimentKind.CONTEXTUAL_BANDIT

    def variant_by_id(self, variant_id: int) -> LiveVariant | None:
        return next((variant for variant in self.variants if variant.id == variant_id), None)


@dataclass(frozen=True)
class LiveExperiments:
    experiments: tuple[LiveExperiment, ...]  # by key
    holdout: Holdout | None

    def by_key(self) -> dict[str, LiveExperiment]:
        return {experiment.key: experiment for experiment in self.experiments}


def _live_seconds() -> float:
    return float(getattr(settings, "REVOPT", {}).get("EXPERIMENT_LIVE_SECONDS", DEFAULT_LIVE_SECONDS))


def live_experiments_load(*, merchant_id: int) -> LiveExperiments:
    """The merchant's running and rolled-out experiments with their variants, and the global holdout
    (three queries)."""
    experiments = list(
        Experiment.objects.for_merchant(merchant_id)
        .filter(status__in=LIVE_STATUSES)
        .select_related("layer")
        .order_by("key")
    )
    variants: dict[int, list[Variant]] = {}
    if experiments:
        for variant in (
            Variant.objects.for_merchant(merchant_id)
            .filter(experiment_id__in=[experiment.pk for experiment in experiments])
            .order_by("experiment_id", "index")
        ):
            variants.setdefault(variant.experiment_id, []).append(variant)
    holdout_row = (
        ExperimentSettings.objects.for_merchant(merchant_id).values_list("holdout_share", "holdout_seed").first()
    )
    holdout = Holdout(share=holdout_row[0], seed=holdout_row[1]) if holdout_row and holdout_row[0] > 0 else None
    live = []
    for experiment in experiments:
        rows = variants.get(experiment.pk, [])
        layer = experiment.layer
        live.append(
            LiveExperiment(
                id=experiment.pk,
                key=experiment.key,
                surface=experiment.surface,
                kind=experiment.kind,
                status=experiment.status,
                plan=ExperimentPlan(
                    seed=experiment.hash_seed,
                    weights=tuple(variant.weight for variant in rows),
                    coverage=experiment.coverage,
                    targeting=Targeting.from_dict(experiment.targeting),
                    layer=(layer.key, experiment.layer_start, experiment.layer_end) if layer is not None else None,
                ),
                variants=tuple(LiveVariant(v.pk, v.index, v.key, dict(v.config or {})) for v in rows),
                rolled_out_index=next(
                    (position for position, v in enumerate(rows) if v.pk == experiment.rolled_out_variant_id), None
                ),
            )
        )
    return LiveExperiments(experiments=tuple(live), holdout=holdout)


# merchant id → (monotonic expiry, live experiments). The lifecycle services drop a merchant's entry in
# their own process at once (and again on commit); other processes see a start, a stop, a roll-out or a
# weight change within EXPERIMENT_LIVE_SECONDS.
_live_memo: dict[int, tuple[float, LiveExperiments]] = {}


def live_experiments(*, merchant_id: int) -> LiveExperiments:
    """`live_experiments_load` behind this process's short-lived memo."""
    now = time.monotonic()
    memo = _live_memo.get(merchant_id)
    if memo is not None and memo[0] > now:
        return memo[1]
    live = live_experiments_load(merchant_id=merchant_id)
    seconds = _live_seconds()
    if seconds > 0:
        if len(_live_memo) >= LIVE_MEMO_LIMIT:
            _live_memo.clear()
        _live_memo[merchant_id] = (now + seconds, live)
    return live


def live_experiments_forget(*, merchant_id: int | None = None) -> None:
    if merchant_id is None:
        _live_memo.clear()
    else:
        _live_memo.pop(merchant_id, None)


# --- the unit -------------------------------------------------------------------------------------

_CUSTOMER = Customer._meta.db_table
_ALIAS = AnonymousIdentity._meta.db_table
_EXPOSURE = Exposure._meta.db_table


@dataclass(frozen=True)
class UnitLookup:
    """Who the ids name today and what they were exposed to, read without writing anything.

    `customer_id` is set when the ids need no identity write (the customer exists and, with both ids,
    the anonymous id already points at them); otherwise the service resolves them the way ingest does.
    `exposures` are then those of `customer_id`; for an unsettled unit, those the unit would keep after
    the log-in merge (the identified customer's win over the anonymous one's).
    """

    customer_id: int | None
    exposures: dict[int, int]  # experiment id → variant id
    known_customer_id: int | None  # the customer a read-only caller (a preview) should look at


def _in(column: str, values: Sequence[int]) -> tuple[str, list[object]]:
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def unit_lookup(
    *, merchant_id: int, customer_external_id: str | None, anonymous_id: str | None, experiment_ids: Sequence[int]
) -> UnitLookup:
    """The customer behind the ids and their exposures to `experiment_ids`, in one query.

    Hand-written SQL like the recommendations request path: this runs on every request of a visitor
    while an experiment is live.
    """
    lookups: list[str] = []
    params: list[object] = []
    if customer_external_id:
        lookups.append(f"(SELECT id FROM {_CUSTOMER} WHERE merchant_id = %s AND external_id = %s)")
        params += [merchant_id, customer_external_id]
    alias_sql = f"(SELECT customer_id FROM {_ALIAS} WHERE merchant_id = %s AND anonymous_id = %s)"
    alias_params: list[object] = [merchant_id, anonymous_id] if anonymous_id else []
    if anonymous_id:
        lookups.append(alias_sql)
        params += alias_params
    if not lookups or not experiment_ids:
        return UnitLookup(None, {}, None)
    via_alias = f"CASE WHEN c.id = {alias_sql} THEN 1 ELSE 0 END" if anonymous_id else "0"
    experiments_condition, experiment_params = _in("x.experiment_id", experiment_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.id, c.external_id, c.merged_into_id, {via_alias}, x.experiment_id, x.variant_id "
            f"FROM {_CUSTOMER} c LEFT JOIN {_EXPOSURE} x ON x.customer_id = c.id AND x.merchant_id = %s "
            f"AND {experiments_condition} "
            f"WHERE c.merchant_id = %s AND c.id IN ({', '.join(lookups)})",
            [*alias_params, merchant_id, *experiment_params, merchant_id, *params],
        )
        rows = cursor.fetchall()
    identified: int | None = None
    behind_alias: int | None = None
    merged: set[int] = set()
    exposures: dict[int, dict[int, int]] = {}
    for customer_id, external_id, merged_into_id, is_alias, experiment_id, variant_id in rows:
        if customer_external_id and external_id == customer_external_id:
            identified = customer_id
        if is_alias:
            behind_alias = customer_id
        if merged_into_id is not None:
            merged.add(customer_id)
        if experiment_id is not None:
            exposures.setdefault(customer_id, {})[experiment_id] = variant_id
    if customer_external_id:
        settled = identified is not None and (not anonymous_id or behind_alias == identified)
        chosen = identified
    else:
        settled = behind_alias is not None
        chosen = behind_alias
    if chosen is not None and chosen in merged:
        settled = False
    would_keep = {**exposures.get(behind_alias, {}), **exposures.get(identified, {})}
    return UnitLookup(
        customer_id=chosen if settled else None,
        exposures=exposures.get(chosen, {}) if settled else would_keep,
        known_customer_id=identified if identified is not None else behind_alias,
    )


def customer_exposures(*, merchant_id: int, customer_id: int, experiment_ids: Sequence[int]) -> dict[int, int]:
    """experiment id → variant id of the customer's exposures to these experiments."""
    return dict(
        Exposure.objects.for_merchant(merchant_id)
        .filter(customer_id=customer_id, experiment_id__in=list(experiment_ids))
        .values_list("experiment_id", "variant_id")
    )


def customer_has_ordered(*, merchant_id: int, customer_id: int | None, before: datetime) -> bool:
    """Whether the customer placed an order before `before` (a "returning" visitor); a cancelled order does
    not count, a refunded one does (it was bought)."""
    if customer_id is None:
        return False
    return (
        Order.objects.for_merchant(merchant_id)
        .filter(customer_id=customer_id, placed_at__lt=before)
        .exclude(status=OrderStatus.CANCELLED)
        .exists()
    )
