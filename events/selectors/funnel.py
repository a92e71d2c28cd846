"""Reads behind the funnel screen: step conversion, abandonment, offer economics, recovered revenue and the
abandonment predictor's quality, each for one merchant and a period of days in the shop's time zone.

How a session counts at a step. The steps are session → product view ("Product Viewed") → cart ("Product
Added") → checkout ("Checkout Started") → order (an Order of the session that was not cancelled; a later
refund does not undo the visit's conversion). A session has reached a step when it logged that step's event
*or any later step*: an order without a logged "Checkout Started" still counts as having reached checkout
(and cart and view). Tracking loses events (ad blockers, a page that does not send them, a cart added from a
listing page), and an order proves the earlier steps happened, so the funnel never widens from one step to
the next and each drop-off is a count of sessions that really stopped there.

Only counts and sums leave this module, never a customer: the sessions and decisions of erased customers still
count (their events are kept, anonymized), as they did happen.

Cost: one query groups the period's sessions by the breakdown and by the deepest step reached (a CASE over
EXISTS subqueries on the session's events and orders, evaluated deepest first so an ordering session needs one
probe), so the page costs the same few queries at 100 sessions or 100,000.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    DecimalField,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate

from experiments.stats.frequentist import welch_t_test
from experiments.stats.summaries import SampleSums
from loyalty.models import (
    DecisionReason,
    IncentiveKind,
    OfferDecision,
    Segment,
)
from loyalty.selectors.recovery import RecoverySummary, recovery_summary
from loyalty.selectors.screens import merchant_tz
from revopt.tenancy.models import Merchant

from ..models import AbandonmentModel, Device, Event, ModelRunStatus, Order, OrderStatus, Session
from .abandonment import abandonment_model_serving, abandonment_models_recent

STEPS = ("session", "view", "cart", "checkout", "order")
STEP_LABELS = {
    "session": "Sessions",
    "view": "Viewed a product",
    "cart": "Added to cart",
    "checkout": "Started checkout",
    "order": "Ordered",
}
STEP_EVENTS = {"view": "Product Viewed", "cart": "Product Added", "checkout": "Checkout Started"}
BREAKDOWNS = ("day", "device", "source", "segment")
UNSCORED = "unscored"
DIRECT = "direct"
# Fewer randomized decisions than this in either arm (offers, "none") and no incremental margin is estimated.
MIN_RANDOMIZED_PER_ARM = 30
PERIOD_CHOICES = (7, 30, 90)

_CART, _CHECKOUT, _ORDER = STEPS.index("cart"), STEPS.index("checkout"), STEPS.index("order")


# --- the period ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelPeriod:
    """Days `start` to `end` (both included) in the shop's time zone, and the instants that bound them."""

    start: date
    end: date
    tz: tzinfo
    # True when the shop had no session in the last days asked for and the window was moved back to end on the
    # day of its latest session, so a paused shop or a simulated one still shows its funnel (the page says so).
    anchored_to_latest_data: bool = False

    @property
    def length(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=self.tz)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=self.tz)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=offset) for offset in range((self.end - self.start).days + 1)]


def funnel_period(*, merchant: Merchant, start: date, end: date) -> FunnelPeriod:
    if end < start:
        raise ValueError("the period ends before it starts")
    return FunnelPeriod(start=start, end=end, tz=merchant_tz(merchant))


def funnel_period_last_days(*, merchant: Merchant, days: int, today: date | None = None) -> FunnelPeriod:
    """The last `days` days up to and including today in the shop's time zone; when they hold no session, the
    `days` days up to the latest session instead."""
    tz = merchant_tz(merchant)
    last_day = today or datetime.now(tz).date()
    start = last_day - timedelta(days=days - 1)
    latest = Session.objects.for_merchant(merchant).aggregate(latest=Max("started_at"))["latest"]
    if latest is not None and latest.astimezone(tz).date() < start:
        last_day = latest.astimezone(tz).date()
        return FunnelPeriod(
            start=last_day - timedelta(days=days - 1), end=last_day, tz=tz, anchored_to_latest_data=True
        )
    return FunnelPeriod(start=start, end=last_day, tz=tz)


# --- steps --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelGroup:
    """Sessions of one group (a day, a device ...) reaching each step, in STEPS order."""

    key: str
    label: str
    reached: tuple[int, ...]

    @property
    def sessions(self) -> int:
        return self.reached[0]

    @property
    def orders(self) -> int:
        return self.reached[-1]

    @property
    def step_conversion(self) -> tuple[float | None, ...]:
        """Share of the previous step's sessions reaching each step after the first."""
        return tuple(
            current / previous if previous else None
            for previous, current in zip(self.reached[:-1], self.reached[1:], strict=True)
        )

    @property
    def drop_offs(self) -> tuple[int, ...]:
        """Sessions lost between each step and the next."""
        return tuple(previous - current for previous, current in zip(self.reached[:-1], self.reached[1:], strict=True))

    @property
    def overall_conversion(self) -> float | None:
        return self.orders / self.sessions if self.sessions else None

    @property
    def carts(self) -> int:
        return self.reached[_CART]

    @property
    def abandoned_carts(self) -> int:
        return self.reached[_CART] - self.reached[_ORDER]

    @property
    def abandonment_rate(self) -> float | None:
        return self.abandoned_carts / self.carts if self.carts else None


@dataclass(frozen=True)
class FunnelSteps:
    start: date
    end: date
    by: str | None
    total: FunnelGroup
    groups: tuple[FunnelGroup, ...]


def _depth_expression(*, merchant: Merchant, since: datetime) -> Case:
    """The deepest step a session reached (index into STEPS), probing the deepest first.

    A session starts at its first event (events.ingest), so its events and orders come after `since`. On
    PostgreSQL the subqueries say so (with a day's margin for orders recorded by other means), so it hashes
    only the period's rows of the shop through the (merchant, timestamp) and (merchant, placed_at) indexes.
    SQLite, without planner statistics, would pick those same indexes for every probe and scan the whole
    period once per session (the demo shop's 30 days took minutes): there each probe is by session alone,
    through the session foreign key's index."""
    bounded = connection.vendor == "postgresql"
    after = since - timedelta(days=1)
    events = Event.objects.for_merchant(merchant).filter(timestamp__gte=after) if bounded else Event.objects.all()
    orders = Order.objects.for_merchant(merchant).filter(placed_at__gte=after) if bounded else Order.objects.all()

    def logged(step: str) -> Exists:
        return Exists(events.filter(session_id=OuterRef("pk"), name=STEP_EVENTS[step]))

    ordered = Exists(orders.filter(session_id=OuterRef("pk")).exclude(status=OrderStatus.CANCELLED))
    return Case(
        When(ordered, then=Value(_ORDER)),
        When(logged("checkout"), then=Value(_CHECKOUT)),
        When(logged("cart"), then=Value(_CART)),
        When(logged("view"), then=Value(STEPS.index("view"))),
        default=Value(0),
        output_field=IntegerField(),
    )


@contextmanager
def _without_jit() -> Iterator[None]:
    """PostgreSQL's JIT for the one aggregate (in a savepoint rolled back after, so a caller's transaction keeps
    its settings): the planner prices the EXISTS probes per session and compiles the statement, which took
    longer than running it (100k sessions: 4.4 s of JIT for 0.4 s of work, see bench/funnel.py)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        savepoint = transaction.savepoint()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('jit', 'off', true)")
            yield
        finally:
            transaction.savepoint_rollback(savepoint)


def _group_expression(by: str, tz: tzinfo):
    if by == "day":
        return TruncDate("started_at", tzinfo=tz)
    if by == "device":
        return F("device")
    if by == "source":
        return F("utm_source")
    if by == "segment":
        return Coalesce(F("customer__insight__segment"), Value(""))
    raise ValueError(f"unknown breakdown {by!r}; expected one of {', '.join(BREAKDOWNS)}")


def _group_key(by: str | None, raw: object) -> str:
    if by == "day":
        return raw.isoformat() if isinstance(raw, date) else str(raw)
    if by == "source":
        return str(raw) or DIRECT
    if by == "segment":
        return str(raw) or UNSCORED
    return str(raw)


def _group_label(by: str | None, key: str) -> str:
    if by == "day":
        return f"{date.fromisoformat(key):%b %-d}"
    if by == "device":
        return Device(key).label if key in Device.values else key.capitalize()
    if by == "segment":
        return Segment(key).label if key in Segment.values else "Not scored yet"
    if by == "source":
        return "Direct" if key == DIRECT else key
    return "All sessions"


def _reached(depth_counts: dict[int, int]) -> tuple[int, ...]:
    return tuple(sum(count for depth, count in depth_counts.items() if depth >= step) for step in range(len(STEPS)))


def _depth_counts(
    *, merchant: Merchant, period: FunnelPeriod, breakdowns: tuple[str, ...]
) -> list[tuple[tuple[str, ...], int, int]]:
    """(group keys, deepest step, sessions) of the period's sessions grouped by every breakdown at once: one
    statement, however many breakdowns a screen shows."""
    expressions = {f"group_{index}": _group_expression(by, period.tz) for index, by in enumerate(breakdowns)}
    queryset = (
        Session.objects.for_merchant(merchant)
        .filter(started_at__gte=period.since, started_at__lt=period.until)
        .annotate(**expressions, depth=_depth_expression(merchant=merchant, since=period.since))
        .values(*expressions, "depth")
        .annotate(sessions=Count("pk"))
        .order_by()
    )
    with _without_jit():
        rows = list(queryset)
    return [
        (
            tuple(_group_key(by, row[f"group_{index}"]) for index, by in enumerate(breakdowns)),
            row["depth"],
            row["sessions"],
        )
        for row in rows
    ]


def _steps_from_counts(
    counts: list[tuple[tuple[str, ...], int, int]], *, period: FunnelPeriod, by: str | None, position: int
) -> FunnelSteps:
    """The funnel by one breakdown (the group key at `position`) from `_depth_counts` rows."""
    by_group: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    overall: dict[int, int] = defaultdict(int)
    for keys, depth, sessions in counts:
        if by is not None:
            by_group[keys[position]][depth] += sessions
        overall[depth] += sessions
    if by is None:
        keys_in_order: list[str] = []
    elif by == "day":
        keys_in_order = [day.isoformat() for day in period.days]
    else:
        # Largest groups first, so the breakdown table reads top-down.
        keys_in_order = sorted(by_group, key=lambda key: (-sum(by_group[key].values()), key))
    groups = tuple(
        FunnelGroup(key=key, label=_group_label(by, key), reached=_reached(by_group.get(key, {})))
        for key in keys_in_order
    )
    total = FunnelGroup(key="all", label="All sessions", reached=_reached(overall))
    return FunnelSteps(start=period.start, end=period.end, by=by, total=total, groups=groups)


def funnel_steps(*, merchant: Merchant, start: date, end: date, by: str | None = None) -> FunnelSteps:
    """Sessions started from `start` to `end` (shop's days, both included) reaching each step, per group of
    `by` (None, "day", "device", "source" or "segment"). Days without sessions are listed with zeros; segment
    is the customer's RFM segment ("unscored" without one), source the UTM source ("direct" without one)."""
    if by is not None and by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}; expected one of {', '.join(BREAKDOWNS)}")
    period = funnel_period(merchant=merchant, start=start, end=end)
    breakdowns = (by,) if by is not None else ()
    counts = _depth_counts(merchant=merchant, period=period, breakdowns=breakdowns)
    return _steps_from_counts(counts, period=period, by=by, position=0)


# --- abandonment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbandonmentDay:
    day: date
    carts: int
    abandoned: int

    @property
    def rate(self) -> float | None:
        return self.abandoned / self.carts if self.carts else None


def abandonment_by_day(*, merchant: Merchant, start: date, end: date) -> list[AbandonmentDay]:
    """Carts (sessions that reached the cart), abandoned carts (no order in the session) and the rate per day."""
    steps = funnel_steps(merchant=merchant, start=start, end=end, by="day")
    return abandonment_from_steps(steps)


def abandonment_from_steps(steps: FunnelSteps) -> list[AbandonmentDay]:
    """The same, from a by-day funnel already read (the screen reads it once)."""
    if steps.by != "day":
        raise ValueError("abandonment by day needs the funnel by day")
    return [
        AbandonmentDay(day=date.fromisoformat(group.key), carts=group.carts, abandoned=group.abandoned_carts)
        for group in steps.groups
    ]


# --- offers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionCount:
    kind: str
    reason: str
    count: int

    @property
    def kind_label(self) -> str:
        return IncentiveKind(self.kind).label if self.kind in IncentiveKind.values else self.kind

    @property
    def reason_label(self) -> str:
        return DecisionReason(self.reason).label if self.reason in DecisionReason.values else self.reason


@dataclass(frozen=True)
class IncrementalMargin:
    """Realized margin per randomized decision (order margin if the cart converted, minus the offer's cost if
    redeemed), offers against "none", with its 95% interval."""

    per_decision: float
    low: float
    high: float
    offers_n: int
    none_n: int
    offers_mean: float
    none_mean: float


@dataclass(frozen=True)
class OfferEconomics:
    decisions: int
    by_kind_reason: tuple[DecisionCount, ...]
    offers_issued: int
    offers_redeemed: int
    cost_given: Decimal
    randomized_offers: int
    randomized_none: int
    incremental: IncrementalMargin | None
    # Per offer kind: randomized decisions of that kind (n) and its estimate against "none", or None.
    incremental_by_kind: tuple[tuple[str, int, IncrementalMargin | None], ...]

    @property
    def redemption_rate(self) -> float | None:
        return self.offers_redeemed / self.offers_issued if self.offers_issued else None

    @property
    def incremental_total(self) -> tuple[float, float, float] | None:
        """The estimate scaled to every offer issued in the period: (estimate, low, high)."""
        if self.incremental is None:
            return None
        n = self.offers_issued
        return (self.incremental.per_decision * n, self.incremental.low * n, self.incremental.high * n)

    @property
    def enough_randomized(self) -> bool:
        return self.incremental is not None


def _margin_estimate(offers: SampleSums, none: SampleSums) -> IncrementalMargin | None:
    if offers.n < MIN_RANDOMIZED_PER_ARM or none.n < MIN_RANDOMIZED_PER_ARM:
        return None
    estimate = welch_t_test(none, offers)
    low, high = estimate.absolute_interval.low, estimate.absolute_interval.high
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return IncrementalMargin(
        per_decision=estimate.absolute,
        low=low,
        high=high,
        offers_n=offers.n,
        none_n=none.n,
        offers_mean=estimate.treatment,
        none_mean=estimate.control,
    )


def _sums(rows: list[tuple[int, float, float]]) -> SampleSums:
    return SampleSums(
        n=sum(n for n, _, _ in rows), y_sum=sum(s for _, s, _ in rows), y_sum_squares=sum(q for _, _, q in rows)
    )


def offer_economics(*, merchant: Merchant, start: date, end: date) -> OfferEconomics:
    """Decisions of the period by kind and reason, offers issued and redeemed, the cost actually given (the
    redeemed offers' cost) and the incremental margin per decision measured on the randomized decisions."""
    period = funnel_period(merchant=merchant, start=start, end=end)
    decisions = OfferDecision.objects.for_merchant(merchant).filter(
        decided_at__gte=period.since, decided_at__lt=period.until
    )
    counts = list(decisions.values("kind", "reason").annotate(count=Count("pk")).order_by("-count", "kind", "reason"))
    money = DecimalField(max_digits=14, decimal_places=2)
    totals = decisions.aggregate(
        issued=Count("pk", filter=~Q(kind=IncentiveKind.NONE) & ~Q(code="")),
        redeemed=Count("pk", filter=Q(redeemed_at__isnull=False)),
        cost_given=Coalesce(Sum("cost", filter=Q(redeemed_at__isnull=False)), Value(Decimal("0")), output_field=money),
    )
    # The realized margin of one decision: the cart's margin if it converted, less what the offer cost if used.
    realized = Case(
        When(converted_order__isnull=False, then=F("cart_margin")), default=Value(Decimal("0")), output_field=money
    ) - Case(When(redeemed_at__isnull=False, then=F("cost")), default=Value(Decimal("0")), output_field=money)
    randomized = (
        decisions.filter(randomized=True)
        .annotate(realized=realized)
        .values("kind")
        .annotate(n=Count("pk"), total=Sum("realized"), squares=Sum(F("realized") * F("realized")))
        .order_by("kind")
    )
    arms = {row["kind"]: (row["n"], float(row["total"] or 0), float(row["squares"] or 0)) for row in randomized}
    none = _sums([arms[IncentiveKind.NONE]] if IncentiveKind.NONE in arms else [])
    offer_rows = [value for kind, value in arms.items() if kind != IncentiveKind.NONE]
    offers = _sums(offer_rows)
    by_kind = tuple(
        (kind, arms[kind][0], _margin_estimate(_sums([arms[kind]]), none))
        for kind in IncentiveKind.values
        if kind != IncentiveKind.NONE and kind in arms
    )
    return OfferEconomics(
        decisions=sum(row["count"] for row in counts),
        by_kind_reason=tuple(
            DecisionCount(kind=row["kind"], reason=row["reason"], count=row["count"]) for row in counts
        ),
        offers_issued=totals["issued"],
        offers_redeemed=totals["redeemed"],
        cost_given=totals["cost_given"],
        randomized_offers=offers.n,
        randomized_none=none.n,
        incremental=_margin_estimate(offers, none),
        incremental_by_kind=by_kind,
    )


# --- the predictor ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictorQuality:
    """The abandonment model in service (None before the first success) and the latest run, whatever it was."""

    serving: AbandonmentModel | None
    latest: AbandonmentModel | None

    @property
    def metrics(self) -> dict:
        return self.serving.metrics if self.serving is not None else {}

    @property
    def auc(self) -> float | None:
        return self.metrics.get("auc")

    @property
    def auc_baseline(self) -> float | None:
        return self.metrics.get("auc_baseline")

    @property
    def brier(self) -> float | None:
        return self.metrics.get("brier")

    @property
    def reliability(self) -> list[tuple[float, float, int]]:
        return [
            (float(point["predicted"]), float(point["observed"]), int(point["count"]))
            for point in self.metrics.get("reliability", [])
            if {"predicted", "observed", "count"} <= set(point)
        ]

    @property
    def latest_failed(self) -> bool:
        return self.latest is not None and self.latest.status == ModelRunStatus.FAILED


def predictor_quality(*, merchant: Merchant) -> PredictorQuality:
    latest = abandonment_models_recent(merchant=merchant, limit=1)
    return PredictorQuality(serving=abandonment_model_serving(merchant=merchant), latest=latest[0] if latest else None)


# --- the screen ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelScreen:
    period: FunnelPeriod
    by: str
    daily: FunnelSteps
    breakdown: FunnelSteps
    abandonment: list[AbandonmentDay]
    offers: OfferEconomics
    recovery: RecoverySummary
    predictor: PredictorQuality


def funnel_screen(*, merchant: Merchant, period: FunnelPeriod, by: str) -> FunnelScreen:
    """Everything the /funnel/ page shows, in a fixed number of queries. One statement groups the sessions by
    day and by the breakdown; the by-day funnel doubles as the overall one and as the abandonment by day.
    Recovered revenue is loyalty's `recovery_summary`, the model in service events' `abandonment_model_serving`."""
    if by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}; expected one of {', '.join(BREAKDOWNS)}")
    breakdowns = ("day",) if by == "day" else ("day", by)
    counts = _depth_counts(merchant=merchant, period=period, breakdowns=breakdowns)
    daily = _steps_from_counts(counts, period=period, by="day", position=0)
    breakdown = daily if by == "day" else _steps_from_counts(counts, period=period, by=by, position=1)
    return FunnelScreen(
        period=period,
        by=by,
        daily=daily,
        breakdown=breakdown,
        abandonment=abandonment_from_steps(daily),
        offers=offer_economics(merchant=merchant, start=period.start, end=period.end),
        recovery=recovery_summary(merchant=merchant, start=period.start, end=period.end),
        predictor=predictor_quality(merchant=merchant),
    )
