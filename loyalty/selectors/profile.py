"""Reads behind the support profile: finding a customer, and everything a support agent reads about them on one
page (who they are, what they are worth, what they did, what revopt shows them, their points).

Every read is scoped to the merchant. `customer_profile` costs a bounded number of queries however long the
customer's history is: the timeline is capped (newest first, "show more" raises the cap), and each section is one
query (orders and their lines two).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.utils import timezone

from events.models import AnonymousIdentity, Customer, Event, Order, OrderStatus, Session
from experiments.models import Exposure
from loyalty.models import CustomerInsight, PointsEntry, Redemption, RetentionSettings, Segment
from recommendations.models import Placement
from recommendations.selectors import RecommendationRequestError, RecommendationResult, recommendations_for
from revopt.tenancy.models import Merchant

from .points import LoyaltyStatus, loyalty_status

SEARCH_RESULTS_MAX = 50
SEARCH_QUERY_MAX_LENGTH = 254
# The timeline shows this many events at first; each "show more" adds as many, up to the ceiling.
TIMELINE_EVENTS = 200
TIMELINE_EVENTS_MAX = 2_000
TIMELINE_ORDERS = 50
TIMELINE_SESSIONS = 50
LEDGER_ENTRIES = 20
RECOMMENDATIONS_SHOWN = 6
DEFAULT_CHURN_THRESHOLD = 0.5


class SearchRefused(ValueError):
    """A query that cannot find anyone (empty, too long); the message says what to type instead."""


# --- search ------------------------------------------------------------------------------------


def customer_search(*, merchant: Merchant, query: str) -> list[Customer]:
    """Customers of `merchant` whose e-mail starts with `query` (case-insensitive), whose shop id or anonymous id
    is `query`, or whose revopt id is `query` (digits, optionally after "#"). Merged-away customers are left
    out (their history lives in the customer they were merged into); erased customers are found by id only."""
    query = query.strip()
    if not query:
        raise SearchRefused("Type an e-mail, the shop's customer id or revopt's customer id.")
    if len(query) > SEARCH_QUERY_MAX_LENGTH:
        raise SearchRefused(
            f"That is too long to be an e-mail or an id (at most {SEARCH_QUERY_MAX_LENGTH} characters)."
        )
    matches = Q(email__istartswith=query) | Q(external_id=query)
    matches |= Q(pk__in=AnonymousIdentity.objects.for_merchant(merchant).filter(anonymous_id=query).values("customer"))
    revopt_id = query.removeprefix("#")
    if revopt_id.isdigit() and len(revopt_id) < 19:
        matches |= Q(pk=int(revopt_id))
    return list(
        Customer.objects.for_merchant(merchant)
        .filter(matches, merged_into__isnull=True)
        .order_by("email", "pk")[:SEARCH_RESULTS_MAX]
    )


def customer_for_support(*, merchant: Merchant, customer_id: int) -> Customer:
    """The merchant's customer; raises Customer.DoesNotExist for another shop's (or no) customer."""
    return Customer.objects.for_merchant(merchant).get(pk=customer_id)


# --- the profile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """The customer's latest computed scores; None where a run has not scored them yet."""

    as_of: datetime | None
    segment: str | None  # the segment's name ("Champions")
    segment_key: str | None
    r_score: int | None
    f_score: int | None
    m_score: int | None
    cluster: int | None
    cluster_label: str | None
    churn_probability: float | None
    churn_level: str | None  # "high" | "medium" | "low"
    churn_threshold: float
    clv_12m: float | None
    p_alive: float | None
    expected_purchases_90d: float | None

    @property
    def computed(self) -> bool:
        return self.as_of is not None


@dataclass(frozen=True)
class Kpis:
    orders: int  # completed orders (cancelled and refunded ones are not purchases)
    revenue: Decimal  # total of the completed orders
    refunded: int
    cancelled: int
    first_order_at: datetime | None
    last_order_at: datetime | None

    @property
    def average_order_value(self) -> Decimal | None:
        return (self.revenue / self.orders).quantize(Decimal("0.01")) if self.orders else None


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the timeline: an order, a session start, or a run of the same event in one session."""

    kind: str  # "order" | "session" | "event"
    at: datetime
    title: str
    detail: str = ""
    count: int = 1
    started_at: datetime | None = None  # a collapsed run's oldest event
    order: Order | None = None


@dataclass(frozen=True)
class Timeline:
    entries: tuple[TimelineEntry, ...]
    events_shown: int
    more_events: bool
    more_orders: bool
    more_sessions: bool
    next_limit: int | None  # the `events` limit "show more" asks for (None: nothing more to show)


@dataclass(frozen=True)
class Assignment:
    experiment: str
    experiment_key: str
    status: str
    variant: str
    variant_key: str
    since: datetime


@dataclass(frozen=True)
class RecommendationsPreview:
    result: RecommendationResult | None
    note: str = ""  # why nothing is shown


@dataclass(frozen=True)
class CustomerProfile:
    customer: Customer
    anonymous_ids: tuple[str, ...]
    merged_from: int
    kpis: Kpis
    scores: Scores
    loyalty: LoyaltyStatus | None
    ledger: tuple[PointsEntry, ...]
    redemptions: tuple[Redemption, ...]
    timeline: Timeline
    assignments: tuple[Assignment, ...]
    recommendations: RecommendationsPreview
    now: datetime = field(default_factory=timezone.now)

    @property
    def is_erased(self) -> bool:
        return self.customer.erased_at is not None


def customer_profile(
    *, merchant: Merchant, customer: Customer, now: datetime | None = None, event_limit: int = TIMELINE_EVENTS
) -> CustomerProfile:
    """Everything the support profile shows about `customer` (a customer of `merchant`)."""
    if customer.merchant_id != merchant.pk:
        raise Customer.DoesNotExist("not a customer of this merchant")
    now = now or timezone.now()
    event_limit = max(1, min(event_limit, TIMELINE_EVENTS_MAX))
    anonymous_ids = tuple(
        AnonymousIdentity.objects.for_merchant(merchant)
        .filter(customer=customer)
        .order_by("-created_at", "-pk")
        .values_list("anonymous_id", flat=True)
    )
    merged_from = Customer.objects.for_merchant(merchant).filter(merged_into=customer).count()
    return CustomerProfile(
        customer=customer,
        anonymous_ids=anonymous_ids,
        merged_from=merged_from,
        kpis=_kpis(merchant=merchant, customer=customer),
        scores=_scores(merchant=merchant, customer=customer),
        loyalty=loyalty_status(merchant=merchant, customer=customer),
        ledger=tuple(
            PointsEntry.objects.for_merchant(merchant)
            .filter(account__customer=customer)
            .select_related("reward", "order", "actor")
            .order_by("-created_at", "-pk")[:LEDGER_ENTRIES]
        ),
        redemptions=tuple(
            Redemption.objects.for_merchant(merchant)
            .filter(account__customer=customer)
            .select_related("reward", "entry")
            .order_by("-created_at", "-pk")
        ),
        timeline=_timeline(merchant=merchant, customer=customer, event_limit=event_limit),
        assignments=_assignments(merchant=merchant, customer=customer),
        recommendations=_recommendations(
            merchant=merchant, customer=customer, anonymous_id=anonymous_ids[0] if anonymous_ids else None, now=now
        ),
        now=now,
    )


def _kpis(*, merchant: Merchant, customer: Customer) -> Kpis:
    completed = Q(status=OrderStatus.COMPLETED)
    figures = (
        Order.objects.for_merchant(merchant)
        .filter(customer=customer)
        .aggregate(
            orders=Count("pk", filter=completed),
            revenue=Sum("total", filter=completed),
            refunded=Count("pk", filter=Q(status=OrderStatus.REFUNDED)),
            cancelled=Count("pk", filter=Q(status=OrderStatus.CANCELLED)),
            first=Min("placed_at", filter=completed),
            last=Max("placed_at", filter=completed),
        )
    )
    return Kpis(
        orders=figures["orders"],
        revenue=figures["revenue"] or Decimal("0.00"),
        refunded=figures["refunded"],
        cancelled=figures["cancelled"],
        first_order_at=figures["first"],
        last_order_at=figures["last"],
    )


def churn_level(probability: float | None, threshold: float) -> str | None:
    """ "high" at or above the retention threshold, "medium" from half of it, else "low"."""
    if probability is None:
        return None
    if probability >= threshold:
        return "high"
    if probability >= threshold / 2:
        return "medium"
    return "low"


def _scores(*, merchant: Merchant, customer: Customer) -> Scores:
    insight = (
        CustomerInsight.objects.for_merchant(merchant)
        .filter(customer=customer)
        .select_related("segments_run", "churn_run")
        .first()
    )
    configured = RetentionSettings.objects.for_merchant(merchant).values_list("churn_threshold", flat=True).first()
    threshold = configured
    if threshold is None and insight is not None and insight.churn_run is not None:
        threshold = (insight.churn_run.summary or {}).get("threshold")
    threshold = float(threshold) if isinstance(threshold, int | float) else DEFAULT_CHURN_THRESHOLD
    if insight is None:
        return Scores(
            as_of=None, segment=None, segment_key=None, r_score=None, f_score=None, m_score=None, cluster=None,
            cluster_label=None, churn_probability=None, churn_level=None, churn_threshold=threshold, clv_12m=None,
            p_alive=None, expected_purchases_90d=None,
        )  # fmt: skip
    return Scores(
        as_of=insight.as_of,
        segment=str(Segment(insight.segment).label) if insight.segment in Segment.values else None,
        segment_key=insight.segment or None,
        r_score=insight.r_score,
        f_score=insight.f_score,
        m_score=insight.m_score,
        cluster=insight.cluster,
        cluster_label=_cluster_label(insight),
        churn_probability=insight.churn_probability,
        churn_level=churn_level(insight.churn_probability, threshold),
        churn_threshold=threshold,
        clv_12m=insight.clv_12m,
        p_alive=insight.p_alive,
        expected_purchases_90d=insight.expected_purchases_90d,
    )


def _cluster_label(insight: CustomerInsight) -> str | None:
    if insight.cluster is None:
        return None
    run = insight.segments_run
    profiles = (run.summary or {}).get("profiles", []) if run is not None else []
    for profile in profiles if isinstance(profiles, list) else []:
        if isinstance(profile, dict) and profile.get("cluster") == insight.cluster and profile.get("label"):
            return str(profile["label"])
    return f"Cluster {insight.cluster}"


def _timeline(*, merchant: Merchant, customer: Customer, event_limit: int) -> Timeline:
    orders = list(
        Order.objects.for_merchant(merchant)
        .filter(customer=customer)
        .prefetch_related("lines__product")
        .order_by("-placed_at", "-pk")[: TIMELINE_ORDERS + 1]
    )
    sessions = list(
        Session.objects.for_merchant(merchant)
        .filter(customer=customer)
        .order_by("-started_at", "-pk")[: TIMELINE_SESSIONS + 1]
    )
    events = list(
        _events(merchant=merchant, customer=customer)
        .select_related("product")
        .order_by("-timestamp", "-pk")[: event_limit + 1]
    )
    more_events = len(events) > event_limit
    events = events[:event_limit]
    entries = [_order_entry(order) for order in orders[:TIMELINE_ORDERS]]
    entries += [_session_entry(session) for session in sessions[:TIMELINE_SESSIONS]]
    entries += collapse_runs(events)
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return Timeline(
        entries=tuple(entries),
        events_shown=len(events),
        more_events=more_events,
        more_orders=len(orders) > TIMELINE_ORDERS,
        more_sessions=len(sessions) > TIMELINE_SESSIONS,
        next_limit=min(event_limit + TIMELINE_EVENTS, TIMELINE_EVENTS_MAX)
        if more_events and event_limit < TIMELINE_EVENTS_MAX
        else None,
    )


def _events(*, merchant: Merchant, customer: Customer) -> QuerySet[Event]:
    # Orders have their own lines in the timeline; their events would say it twice.
    return (
        Event.objects.for_merchant(merchant)
        .filter(customer=customer)
        .exclude(name__in=["Order Completed", "Order Refunded", "Order Cancelled"])
    )


def _order_entry(order: Order) -> TimelineEntry:
    status = {OrderStatus.REFUNDED: "refunded", OrderStatus.CANCELLED: "cancelled"}.get(order.status, "")
    return TimelineEntry(
        kind="order",
        at=order.placed_at,
        title=f"Order {order.external_id}",
        detail=status,
        order=order,
    )


def _session_entry(session: Session) -> TimelineEntry:
    source = " / ".join(part for part in (session.utm_source, session.utm_medium, session.utm_campaign) if part)
    return TimelineEntry(
        kind="session",
        at=session.started_at,
        title=f"Visit on {session.get_device_display().lower()}",
        detail=f"from {source}" if source else "",
    )


def _event_subject(event: Event) -> str:
    if event.product is not None:
        return event.product.title
    properties = event.properties if isinstance(event.properties, dict) else {}
    query = properties.get("query")
    if isinstance(query, str) and query:
        return f"“{query[:80]}”"
    return ""


def collapse_runs(events: list[Event]) -> list[TimelineEntry]:
    """Events newest first as timeline entries, a run of the same event in the same session made one entry
    ("Product Viewed ×12: Tent, Stove, Lamp and 9 more")."""
    entries: list[TimelineEntry] = []
    run: list[Event] = []

    def flush() -> None:
        if not run:
            return
        subjects = list(dict.fromkeys(subject for subject in map(_event_subject, run) if subject))
        detail = ", ".join(subjects[:3])
        if len(subjects) > 3:
            detail += f" and {len(subjects) - 3} more"
        entries.append(
            TimelineEntry(
                kind="event", at=run[0].timestamp, title=run[0].name, detail=detail, count=len(run),
                started_at=run[-1].timestamp,
            )
        )  # fmt: skip
        run.clear()

    for event in events:
        if run and (event.name != run[0].name or event.session_id != run[0].session_id):
            flush()
        run.append(event)
    flush()
    return entries


def _assignments(*, merchant: Merchant, customer: Customer) -> tuple[Assignment, ...]:
    exposures = (
        Exposure.objects.for_merchant(merchant)
        .filter(customer=customer)
        .select_related("experiment", "variant")
        .order_by("-exposed_at", "-pk")
    )
    return tuple(
        Assignment(
            experiment=exposure.experiment.name,
            experiment_key=exposure.experiment.key,
            status=exposure.experiment.get_status_display(),
            variant=exposure.variant.name,
            variant_key=exposure.variant.key,
            since=exposure.exposed_at,
        )
        for exposure in exposures
    )


def _recommendations(
    *, merchant: Merchant, customer: Customer, anonymous_id: str | None, now: datetime
) -> RecommendationsPreview:
    """The home placement's list for this customer now, as a preview: nothing recorded, no exposure logged."""
    if customer.erased_at is not None:
        return RecommendationsPreview(result=None, note="Erased: revopt no longer personalizes for this customer.")
    if customer.merged_into_id is not None:
        return RecommendationsPreview(result=None, note="Merged into another customer: see their profile.")
    if customer.external_id is None and anonymous_id is None:
        return RecommendationsPreview(result=None, note="No storefront id to recommend for.")
    try:
        result = recommendations_for(
            merchant=merchant,
            placement=Placement.HOME,
            customer_external_id=customer.external_id,
            anonymous_id=anonymous_id if customer.external_id is None else None,
            k=RECOMMENDATIONS_SHOWN,
            at=now,
            record=False,
        )
    except RecommendationRequestError as error:
        return RecommendationsPreview(result=None, note=error.reason)
    if not result.items:
        return RecommendationsPreview(result=result, note="Nothing to recommend right now.")
    return RecommendationsPreview(result=result)
