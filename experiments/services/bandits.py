"""Bandits in the shop: scheduled Thompson-sampling reallocation of a bandit's traffic, and the
contextual bandit's per-request decisions, reward attribution and model updates.

Both are logged so that they can be replayed: a reallocation stores the posterior it read and the seed it
drew with (`AllocationChange.detail`), a decision its context, seed, propensity and the model state it
used. The maths lives in `experiments.bandits` (no Django); this module reads, writes and locks.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import (
    Case,
    DateTimeField,
    Exists,
    Expression,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from events.models import Customer, Order, OrderLine, OrderStatus
from experiments.bandits.contextual import ContextualPolicy, LoggedDecision, replay
from experiments.bandits.thompson import allocation, arm_from_dict, arms_from_sums
from experiments.metrics import MetricKind, metric_definition
from experiments.models import (
    AllocationChange,
    AllocationSource,
    ContextualDecision,
    ContextualModelState,
    Experiment,
    ExperimentKind,
    ExperimentStatus,
)
from experiments.selectors.metrics import metric_sums_by_variant
from experiments.services.lifecycle import (
    ExperimentTransitionError,
    ExperimentValidationError,
    experiment_weights_update,
)

logger = logging.getLogger(__name__)

REALLOCATION_DRAWS = 10_000
CONTEXTUAL_DRAWS = 1_000
# Rewards a bandit can maximise: a per-unit proportion or mean where more is better.
REWARD_METRICS = ("conversion", "revenue_per_user", "margin_per_user")
# Prior guess of the reward's variance before any is seen: a conversion's is at most 1/4; a revenue's
# scale is unknown and re-estimated at the first update.
_PRIOR_NOISE_VARIANCE = {MetricKind.PROPORTION: 0.25, MetricKind.MEAN: 1.0}
_CONTEXT_VALUE_MAX_LENGTH = 100
_CONTEXT_MAX_KEYS = 20
_POLICY_MEMO_LIMIT = 256


def reward_kind(metric: str) -> str:
    """The kind of a metric a bandit may use as its reward (proportion or mean); refuses the others."""
    if metric not in REWARD_METRICS:
        raise ExperimentValidationError(
            "reward_metric", f"A bandit's reward is one of {', '.join(REWARD_METRICS)}, not {metric!r}."
        )
    return str(metric_definition(metric).kind)


def reallocation_seed(*, experiment_id: int, now: datetime) -> int:
    """The seed of a scheduled reallocation: a function of the experiment and the time, so a retried
    task draws the same numbers (and finds the change it already made)."""
    digest = hashlib.sha256(f"{experiment_id}:{now.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: fits a signed bigint and numpy's seeding


# --- Thompson sampling reallocation ------------------------------------------------------------------


def bandit_reallocate(
    *, experiment: Experiment, now: datetime | None = None, seed: int | None = None
) -> AllocationChange:
    """New weights for a running bandit: each arm's posterior probability of being best (Thompson
    sampling), every arm kept at or above the experiment's floor.

    Units already exposed keep their arm (sticky exposures); only new units follow the new weights.
    Idempotent per `now`: a second call at the same time returns the change the first one made.
    """
    now = now or timezone.now()
    if experiment.kind != ExperimentKind.BANDIT:
        raise ExperimentValidationError("kind", "Only a bandit experiment reallocates its traffic.")
    kind = reward_kind(experiment.reward_metric)
    if seed is not None and seed < 0:
        raise ExperimentValidationError("seed", "A seed is a non-negative integer.")
    with transaction.atomic():
        locked = Experiment.objects.for_merchant(experiment.merchant_id).select_for_update().get(pk=experiment.pk)
        if locked.status != ExperimentStatus.RUNNING:
            raise ExperimentTransitionError(f"Only a running bandit reallocates; this one is {locked.status}.")
        done = (
            AllocationChange.objects.for_merchant(locked.merchant_id)
            .filter(experiment=locked, source=AllocationSource.BANDIT, effective_at=now)
            .order_by("pk")
            .first()
        )
        if done is not None:
            return done
        seed = reallocation_seed(experiment_id=locked.pk, now=now) if seed is None else seed
        sums = metric_sums_by_variant(
            experiment=locked, metric=locked.reward_metric, as_of=now, winsorize=True, with_pre_period=False
        )
        arms = arms_from_sums(sums, reward=kind)
        floor = min(locked.arm_floor, 1.0 / len(arms))
        weights = allocation(arms, floor=floor, draws=REALLOCATION_DRAWS, seed=seed)
        change = experiment_weights_update(
            experiment=locked,
            weights=weights,
            source=AllocationSource.BANDIT,
            detail={
                "metric": locked.reward_metric,
                "arms": {key: arm.as_dict() for key, arm in arms.items()},
                "units": {key: s.n for key, s in sums.items()},
                "seed": seed,
                "draws": REALLOCATION_DRAWS,
                "floor": floor,
            },
            now=now,
        )
    logger.info("bandit %s reallocated: %s", experiment.key, weights)
    return change


def bandit_allocation_replay(*, change: AllocationChange) -> dict[str, float]:
    """The weights a bandit reallocation computes again from its stored posterior and seed."""
    if change.source != AllocationSource.BANDIT:
        raise ExperimentValidationError("change", "Only a bandit's reallocation can be replayed.")
    detail = change.detail
    arms = {key: arm_from_dict(params) for key, params in detail["arms"].items()}
    return allocation(arms, floor=float(detail["floor"]), draws=int(detail["draws"]), seed=int(detail["seed"]))


# --- contextual bandit -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PolicyEntry:
    policy: ContextualPolicy
    variant_ids: dict[str, int]
    merchant_timezone: str


class _PolicyMemo:
    """Model states never change once written, so a process keeps the parsed policies of the latest few
    (with the variant ids and the merchant's time zone a decision needs): a decision then costs one
    query and one insert."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: OrderedDict[int, _PolicyEntry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, state_id: int) -> _PolicyEntry | None:
        with self._lock:
            entry = self._entries.get(state_id)
            if entry is not None:
                self._entries.move_to_end(state_id)
            return entry

    def put(self, state_id: int, entry: _PolicyEntry) -> None:
        with self._lock:
            self._entries[state_id] = entry
            while len(self._entries) > self._limit:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_policy_memo = _PolicyMemo(_POLICY_MEMO_LIMIT)


def contextual_policies_forget() -> None:
    """Tests: rolled-back transactions can hand a new state the id of a forgotten one (SQLite)."""
    _policy_memo.clear()


def _contextual_experiment_checked(experiment: Experiment) -> str:
    if experiment.kind != ExperimentKind.CONTEXTUAL_BANDIT:
        raise ExperimentValidationError("kind", "Only a contextual bandit decides per request.")
    return reward_kind(experiment.reward_metric)


def _variant_ids(experiment: Experiment) -> dict[str, int]:
    return dict(experiment.variants.order_by("index").values_list("key", "pk"))


def contextual_prior_state_create(*, experiment: Experiment, at: datetime) -> ContextualModelState:
    """The state a contextual bandit starts from: every arm equal, nothing learnt."""
    kind = _contextual_experiment_checked(experiment)
    arms = list(_variant_ids(experiment))
    policy = ContextualPolicy.prior(
        arms=arms,
        floor=min(experiment.arm_floor, 1.0 / len(arms)),
        noise_variance=_PRIOR_NOISE_VARIANCE[MetricKind(kind)],
        draws=CONTEXTUAL_DRAWS,
    )
    return ContextualModelState.objects.create(
        merchant_id=experiment.merchant_id, experiment=experiment, created_at=at, state=policy.to_json()
    )


def _latest_state_id(experiment: Experiment) -> int | None:
    return (
        ContextualModelState.objects.for_merchant(experiment.merchant_id)
        .filter(experiment=experiment)
        .order_by("-created_at", "-pk")
        .values_list("pk", flat=True)
        .first()
    )


def _policy_for(experiment: Experiment, state_id: int) -> _PolicyEntry:
    entry = _policy_memo.get(state_id)
    if entry is None:
        state = (
            ContextualModelState.objects.for_merchant(experiment.merchant_id)
            .select_related("merchant")
            .get(pk=state_id)
        )
        entry = _PolicyEntry(
            policy=ContextualPolicy.from_json(state.state),
            variant_ids=_variant_ids(experiment),
            merchant_timezone=state.merchant.timezone,
        )
        _policy_memo.put(state_id, entry)
    return entry


def decision_context(*, context: Mapping[str, object], at: datetime, merchant_timezone: str) -> dict:
    """What the policy sees, as it is logged: scalar attributes only (strings capped), and the hour of
    day in the merchant's time zone unless the caller gave one."""
    cleaned: dict[str, object] = {}
    for key, value in sorted(context.items())[:_CONTEXT_MAX_KEYS]:
        if isinstance(value, bool | int | float) or value is None:
            cleaned[str(key)] = value
        elif isinstance(value, str):
            cleaned[str(key)] = value[:_CONTEXT_VALUE_MAX_LENGTH]
    hour = cleaned.get("hour")
    if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        try:
            zone = ZoneInfo(merchant_timezone)
        except (KeyError, ValueError):
            zone = ZoneInfo("UTC")
        cleaned["hour"] = at.astimezone(zone).hour
    return cleaned


def contextual_decision_make(
    *, experiment: Experiment, customer: Customer | None, context: Mapping[str, object], at: datetime
) -> ContextualDecision:
    """Choose an arm for one request with the latest model state (the prior before the first update),
    drawing with a fresh seed, and log the decision with its propensity. One query and one insert once
    the state is in this process's memo."""
    _contextual_experiment_checked(experiment)
    if experiment.status != ExperimentStatus.RUNNING:
        raise ExperimentTransitionError(f"Only a running contextual bandit decides; this one is {experiment.status}.")
    if customer is not None and customer.merchant_id != experiment.merchant_id:
        raise ExperimentValidationError("customer", "Not a customer of this experiment's merchant.")
    state_id = _latest_state_id(experiment)
    if state_id is None:
        # Two first requests at once may both write a prior: harmless, the two are identical.
        state_id = contextual_prior_state_create(experiment=experiment, at=at).pk
    entry = _policy_for(experiment, state_id)
    seen = decision_context(context=context, at=at, merchant_timezone=entry.merchant_timezone)
    seed = secrets.randbits(63)
    arm, propensity = entry.policy.choose_seeded(seen, seed)
    return ContextualDecision.objects.create(
        merchant_id=experiment.merchant_id,
        experiment=experiment,
        variant_id=entry.variant_ids[arm],
        customer=customer,
        decided_at=at,
        context=seen,
        propensity=propensity,
        seed=seed,
        model_state_id=state_id,
    )


def contextual_decisions_replay(*, state: ContextualModelState) -> list[tuple[int, str, str]]:
    """(decision id, logged arm, replayed arm) for every decision made with `state`."""
    decisions = list(
        ContextualDecision.objects.for_merchant(state.merchant_id)
        .filter(model_state=state)
        .order_by("pk")
        .values_list("pk", "variant__key", "context", "seed")
    )
    replayed = replay(state.state, [LoggedDecision(context=context, seed=seed) for _, _, context, seed in decisions])
    return [(pk, logged, again) for (pk, logged, _, _), again in zip(decisions, replayed, strict=True)]


def _attributed(queryset: QuerySet, *, prefix: str, window: timedelta) -> QuerySet:
    """Completed orders (reached through `prefix`: "" on Order, "order__" on OrderLine) that reward the
    decision of the outer query: placed by its customer after it, before the window ends and before the
    customer's next decision in this experiment — so an order rewards the last decision before it, not
    every decision of the day."""
    window_end = ExpressionWrapper(OuterRef("decided_at") + Value(window), output_field=DateTimeField())
    next_decision = (
        ContextualDecision.objects.filter(
            experiment_id=OuterRef(OuterRef("experiment_id")),
            customer_id=OuterRef(OuterRef("customer_id")),
            decided_at__gt=OuterRef(OuterRef("decided_at")),
        )
        .order_by("decided_at")
        .values("decided_at")[:1]
    )
    return queryset.filter(
        **{
            f"{prefix}merchant_id": OuterRef("merchant_id"),
            f"{prefix}customer_id": OuterRef("customer_id"),
            f"{prefix}status": OrderStatus.COMPLETED,
            f"{prefix}placed_at__gt": OuterRef("decided_at"),
            f"{prefix}placed_at__lt": window_end,
        }
    ).filter(**{f"{prefix}placed_at__lt": Coalesce(Subquery(next_decision), window_end)})


def _reward_expression(metric: str, window: timedelta) -> Expression:
    """The reward of the outer query's decision, computed by the database (0 without orders)."""
    if metric == "conversion":
        orders = _attributed(Order.objects.all(), prefix="", window=window)
        return Case(When(Exists(orders), then=Value(1.0)), default=Value(0.0), output_field=FloatField())
    revenue = Subquery(
        _attributed(Order.objects.order_by(), prefix="", window=window)
        .values("customer_id")
        .annotate(total=Sum(Cast("total", output_field=FloatField())))
        .values("total")[:1],
        output_field=FloatField(),
    )
    if metric == "revenue_per_user":
        return Coalesce(revenue, Value(0.0), output_field=FloatField())
    cost = Subquery(
        _attributed(OrderLine.objects.order_by(), prefix="order__", window=window)
        .values("order__customer_id")
        .annotate(cost=Sum(F("quantity") * Cast(Coalesce("unit_cost", Value(0)), output_field=FloatField())))
        .values("cost")[:1],
        output_field=FloatField(),
    )
    return Coalesce(revenue, Value(0.0), output_field=FloatField()) - Coalesce(
        cost, Value(0.0), output_field=FloatField()
    )


def contextual_rewards_attribute(*, experiment: Experiment, now: datetime, window_hours: int = 24) -> int:
    """Reward every decision whose window has closed (decided at least `window_hours` before `now`) and
    that has no reward yet, in one UPDATE; returns how many. Decisions of unknown visitors earn 0."""
    if window_hours < 1:
        raise ExperimentValidationError("window_hours", "The reward window is at least an hour.")
    metric = experiment.reward_metric
    reward_kind(metric)
    return (
        ContextualDecision.objects.for_merchant(experiment.merchant_id)
        .filter(experiment=experiment, reward__isnull=True, decided_at__lte=now - timedelta(hours=window_hours))
        .update(reward=_reward_expression(metric, timedelta(hours=window_hours)), rewarded_at=now)
    )


def contextual_model_update(*, experiment: Experiment, now: datetime) -> ContextualModelState:
    """A new model state from the latest one plus the decisions rewarded since it; the latest state
    itself when nothing new was rewarded (so a retried task adds nothing twice)."""
    _contextual_experiment_checked(experiment)
    with transaction.atomic():
        Experiment.objects.for_merchant(experiment.merchant_id).select_for_update().get(pk=experiment.pk)
        latest = (
            ContextualModelState.objects.for_merchant(experiment.merchant_id)
            .filter(experiment=experiment)
            .order_by("-created_at", "-pk")
            .first()
        )
        if latest is None:
            latest = contextual_prior_state_create(experiment=experiment, at=experiment.started_at or now)
        rewarded = list(
            ContextualDecision.objects.for_merchant(experiment.merchant_id)
            .filter(
                experiment=experiment, reward__isnull=False, rewarded_at__gt=latest.created_at, rewarded_at__lte=now
            )
            .order_by("pk")
            .values_list("context", "seed", "variant__key", "propensity", "reward")
        )
        if not rewarded:
            return latest
        policy = ContextualPolicy.from_json(latest.state).update(
            LoggedDecision(context=context, seed=seed, arm=arm, propensity=propensity, reward=reward)
            for context, seed, arm, propensity, reward in rewarded
        )
        state = ContextualModelState.objects.create(
            merchant_id=experiment.merchant_id,
            experiment=experiment,
            created_at=now,
            state=policy.to_json(),
            decisions_used=latest.decisions_used + len(rewarded),
        )
    logger.info("contextual bandit %s learnt from %d decisions", experiment.key, len(rewarded))
    return state


def contextual_bandit_learn(*, experiment: Experiment, now: datetime, window_hours: int = 24) -> ContextualModelState:
    """The scheduled step: reward the decisions whose window closed, then update the model."""
    contextual_rewards_attribute(experiment=experiment, now=now, window_hours=window_hours)
    return contextual_model_update(experiment=experiment, now=now)
