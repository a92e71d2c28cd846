"""Reads behind the merchant's loyalty screen: KPIs, segments, clusters, cohort retention, the CLV
distribution and the churn-risk list.

Every query starts from `Model.objects.for_merchant(merchant)` and leaves erased customers out. The screen
costs a fixed number of queries however many customers a shop has: the cohort table is one grouped query over
orders, the P(alive) histogram one grouped query, the lists are capped. Segments and the CLV distribution are
`selectors.insights`' (the same figures as everywhere else), scores are those of the runs in service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import (
    Count,
    DateTimeField,
    F,
    FloatField,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import Cast, Floor, Least, TruncMonth
from django.utils import timezone

from events.models import Order, OrderStatus
from revopt.tenancy.models import Merchant

from ..models import (
    CustomerInsight,
    InsightKind,
    InsightRun,
    LoyaltyProgram,
    PointsEntry,
    RetentionCandidate,
    RetentionSettings,
    RunStatus,
)
from .insights import RUNNING_STALE_AFTER, ClvDistribution, SegmentRow, clv_distribution, segment_summary

COHORT_MONTHS = 12  # cohorts shown (the latest months) and months since the first order (0..11)
CLV_BINS = 20
P_ALIVE_BINS = 10
RISK_LIST_LIMIT = 50
# A run still RUNNING after this lost its worker (the refresh tasks' hard limits are far shorter).


def merchant_tz(merchant: Merchant) -> tzinfo:
    try:
        return ZoneInfo(merchant.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _insights(merchant: Merchant) -> QuerySet[CustomerInsight]:
    return CustomerInsight.objects.for_merchant(merchant).filter(customer__erased_at__isnull=True)


def _orders(merchant: Merchant) -> QuerySet[Order]:
    return (
        Order.objects.for_merchant(merchant)
        .exclude(status=OrderStatus.CANCELLED)
        .filter(customer__erased_at__isnull=True)
    )


# --- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    """The newest run of one kind, whatever its status, and the newest succeeded one (the scores in use)."""

    kind: str
    label: str
    latest: InsightRun | None
    in_service: InsightRun | None

    @property
    def status(self) -> str:
        if self.latest is None:
            return "never"
        if self.latest.status == RunStatus.RUNNING and self.stalled:
            return "stalled"
        return self.latest.status

    @property
    def stalled(self) -> bool:
        if self.latest is None or self.latest.status != RunStatus.RUNNING:
            return False
        return (timezone.now() - self.latest.started_at).total_seconds() > RUNNING_STALE_AFTER.total_seconds()

    @property
    def summary(self) -> dict:
        return self.in_service.summary if self.in_service is not None else {}


def run_states(*, merchant: Merchant) -> dict[str, RunState]:
    """Per insight kind, its newest run and its newest succeeded run: two queries, the pickled churn model
    never loaded."""
    newest = (
        InsightRun.objects.for_merchant(merchant)
        .values("kind")
        .annotate(latest=Max("started_at"), in_service=Max("started_at", filter=Q(status=RunStatus.SUCCEEDED)))
    )
    wanted = Q(pk__in=[])
    marks: dict[str, tuple[datetime | None, datetime | None]] = {}
    for row in newest:
        marks[row["kind"]] = (row["latest"], row["in_service"])
        for moment in (row["latest"], row["in_service"]):
            if moment is not None:
                wanted |= Q(kind=row["kind"], started_at=moment)
    runs: dict[tuple[str, datetime], InsightRun] = {}
    if marks:
        for run in InsightRun.objects.for_merchant(merchant).filter(wanted).defer("artifact").order_by("-pk"):
            # Two runs started in the same instant: the later row wins, as it does for the scores.
            runs.setdefault((run.kind, run.started_at), run)
    states = {}
    for kind, label in InsightKind.choices:
        latest_at, in_service_at = marks.get(kind, (None, None))
        states[kind] = RunState(
            kind=kind,
            label=label,
            latest=runs.get((kind, latest_at)) if latest_at else None,
            in_service=runs.get((kind, in_service_at)) if in_service_at else None,
        )
    return states


# --- KPIs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoyaltyKpis:
    customers_with_orders: int
    repeat_customers: int
    at_risk: int | None  # None: no churn scores yet
    risk_threshold: float | None
    program: LoyaltyProgram | None
    points_liability: int | None  # None without an active program
    members: int

    @property
    def repeat_rate(self) -> float | None:
        return self.repeat_customers / self.customers_with_orders if self.customers_with_orders else None


def churn_threshold_for(*, merchant: Merchant, churn_run: InsightRun | None) -> float | None:
    """The merchant's own threshold, else the one the churn model chose."""
    settings = RetentionSettings.objects.for_merchant(merchant).only("churn_threshold").first()
    if settings is not None and settings.churn_threshold is not None:
        return settings.churn_threshold
    if churn_run is not None and churn_run.summary.get("threshold") is not None:
        return float(churn_run.summary["threshold"])
    return None


def points_liability(*, merchant: Merchant, program: LoyaltyProgram) -> tuple[int, int]:
    """(points customers could still spend, members with a positive balance). A balance is the sum of the
    account's ledger; a negative one (a refund clawed back spent points) owes the shop nothing, so it
    counts as zero rather than cancelling another customer's points."""
    balances = (
        PointsEntry.objects.for_merchant(merchant)
        .filter(account__program=program, account__customer__erased_at__isnull=True)
        .values("account")
        .annotate(balance=Sum("points"))
    )
    totals = balances.aggregate(
        liability=Sum("balance", filter=Q(balance__gt=0)), members=Count("account", filter=Q(balance__gt=0))
    )
    return int(totals["liability"] or 0), int(totals["members"] or 0)


def loyalty_kpis(*, merchant: Merchant, runs: dict[str, RunState]) -> LoyaltyKpis:
    per_customer = _orders(merchant).values("customer").annotate(orders=Count("pk"))
    buyers = per_customer.aggregate(customers=Count("customer"), repeat=Count("customer", filter=Q(orders__gte=2)))
    churn_run = runs[InsightKind.CHURN].in_service
    threshold = churn_threshold_for(merchant=merchant, churn_run=churn_run)
    at_risk = None
    if churn_run is not None and threshold is not None:
        # The scores of the churn run in service only: a customer it no longer scored is not "at risk".
        at_risk = _insights(merchant).filter(churn_run=churn_run, churn_probability__gte=threshold).count()
    program = LoyaltyProgram.objects.for_merchant(merchant).filter(is_active=True).first()
    liability, members = points_liability(merchant=merchant, program=program) if program else (None, 0)
    return LoyaltyKpis(
        customers_with_orders=buyers["customers"] or 0,
        repeat_customers=buyers["repeat"] or 0,
        at_risk=at_risk,
        risk_threshold=threshold,
        program=program,
        points_liability=liability,
        members=members,
    )


# --- clusters --------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterProfile:
    cluster: int
    label: str
    customers: int
    means: dict[str, float]
    mean_list: list[float | None]  # the means in the order of Clusters.features


@dataclass(frozen=True)
class Clusters:
    chosen: int | None
    silhouette: list[tuple[int, float]]  # (k, score), k ascending
    profiles: list[ClusterProfile]
    features: list[str]  # the profile columns, in the run's order


def clusters_from(summary: dict) -> Clusters:
    """The segments run's clustering as the screen shows it; tolerant of a summary missing parts."""
    silhouette = []
    for k, score in (summary.get("silhouette") or {}).items():
        try:
            silhouette.append((int(k), float(score)))
        except (TypeError, ValueError):
            continue
    raw = [profile for profile in summary.get("profiles") or [] if isinstance(profile, dict)]
    means_of = [
        {str(name): float(value) for name, value in (profile.get("means") or {}).items() if value is not None}
        for profile in raw
    ]
    features = list(dict.fromkeys(name for means in means_of for name in means))
    profiles = [
        ClusterProfile(
            cluster=int(profile.get("cluster", index)),
            label=str(profile.get("label") or f"Cluster {profile.get('cluster', index)}"),
            customers=int(profile.get("customers") or 0),
            means=means,
            mean_list=[means.get(name) for name in features],
        )
        for index, (profile, means) in enumerate(zip(raw, means_of, strict=True))
    ]
    chosen = summary.get("clusters")
    return Clusters(
        chosen=int(chosen) if isinstance(chosen, int | float) else None,
        silhouette=sorted(silhouette),
        profiles=profiles,
        features=features,
    )


# --- cohort retention -------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortRow:
    month: date  # the first day of the cohort's month
    customers: int
    # Share of the cohort ordering again in month +k: None for months that have not come yet. Month 0 counts a
    # second order in the month of the first one.
    shares: list[float | None]


def _months_between(start: date, end: date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def _as_month(value: datetime | date, tz: tzinfo) -> date:
    if isinstance(value, datetime):
        value = value.astimezone(tz) if timezone.is_aware(value) else value
        return date(value.year, value.month, 1)
    return date(value.year, value.month, 1)


def cohort_retention(
    *, merchant: Merchant, now: datetime | None = None, months: int = COHORT_MONTHS
) -> list[CohortRow]:
    """The last `months` cohorts (month of a customer's first order, the merchant's time zone), each with the
    share of its customers ordering in each month since: one grouped query over orders, not cancelled,
    erased customers left out."""
    now = now or timezone.now()
    tz = merchant_tz(merchant)
    this_month = _as_month(now, tz)
    first_month = _add_months(this_month, -(months - 1))
    window_start = datetime(first_month.year, first_month.month, 1, tzinfo=tz)
    # The customer's first order over their whole history (an earlier one puts them in an older cohort). The
    # subquery is bound to the outer row's customer, who is the merchant's; it deliberately has no merchant
    # filter of its own: with one, SQLite walks the (merchant, placed_at) index for every order (minutes at
    # 100k orders instead of 2 s).
    first_order = (
        Order.objects.filter(customer_id=OuterRef("customer_id"))
        .exclude(status=OrderStatus.CANCELLED)
        .values("customer_id")
        .annotate(first=Min("placed_at"))
        .values("first")
    )
    grouped = (
        _orders(merchant)
        .filter(placed_at__gte=window_start)
        .annotate(first_at=Subquery(first_order, output_field=DateTimeField()))
        .annotate(cohort=TruncMonth("first_at", tzinfo=tz), month=TruncMonth("placed_at", tzinfo=tz))
        .values("cohort", "month")
        .annotate(
            customers=Count("customer", distinct=True),
            again=Count("customer", distinct=True, filter=Q(placed_at__gt=F("first_at"))),
        )
    )
    sizes: dict[date, int] = {}
    again: dict[tuple[date, int], int] = {}
    for row in grouped:
        cohort, month = _as_month(row["cohort"], tz), _as_month(row["month"], tz)
        if cohort < first_month or cohort > this_month:
            continue
        offset = _months_between(cohort, month)
        if offset == 0:
            sizes[cohort] = row["customers"]
        if 0 <= offset < months:
            again[(cohort, offset)] = row["again"] if offset == 0 else row["customers"]
    rows = []
    for index in range(months):
        cohort = _add_months(first_month, index)
        size = sizes.get(cohort, 0)
        if not size:
            continue
        observable = _months_between(cohort, this_month) + 1
        shares: list[float | None] = [
            again.get((cohort, offset), 0) / size if offset < observable else None for offset in range(months)
        ]
        rows.append(CohortRow(month=cohort, customers=size, shares=shares))
    return rows


# --- distributions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    bins: list[tuple[float, float, int]]  # (low, high, customers)
    open_ended: bool  # the last bin also holds every value above its upper edge
    median: float | None
    customers: int


def _quantile(values: QuerySet, count: int, share: float) -> float | None:
    """The value at `share` of an ordered values_list queryset of `count` rows: one query (OFFSET)."""
    if not count:
        return None
    index = min(count - 1, max(0, int(share * (count - 1) + 0.5)))
    return float(values[index])


def _histogram(
    queryset: QuerySet[CustomerInsight], column: str, *, low: float, high: float, bins: int
) -> list[tuple[float, float, int]]:
    width = (high - low) / bins
    grouped = (
        queryset.annotate(
            bucket=Least(
                Cast(Floor((Cast(column, FloatField()) - low) / width), IntegerField()),
                bins - 1,
            )
        )
        .values("bucket")
        .annotate(customers=Count("pk"))
    )
    counts = [0] * bins
    for row in grouped:
        counts[min(bins - 1, max(0, int(row["bucket"])))] += row["customers"]
    return [(low + width * index, low + width * (index + 1), counts[index]) for index in range(bins)]


def p_alive_histogram(*, merchant: Merchant, run: InsightRun | None, bins: int = P_ALIVE_BINS) -> Histogram:
    """P(alive) of the lifetime-value run in service, in `bins` equal bins over 0..1."""
    if run is None:
        return Histogram(bins=[], open_ended=False, median=None, customers=0)
    scored = _insights(merchant).filter(lifetime_value_run=run, p_alive__isnull=False)
    customers = scored.count()
    if not customers:
        return Histogram(bins=[], open_ended=False, median=None, customers=0)
    return Histogram(
        bins=_histogram(scored, "p_alive", low=0.0, high=1.0, bins=bins),
        open_ended=False,
        median=_quantile(scored.order_by("p_alive").values_list("p_alive", flat=True), customers, 0.5),
        customers=customers,
    )


# --- churn ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChurnMetrics:
    auc: float | None
    precision: float | None
    recall: float | None
    threshold: float | None
    calibration: list[tuple[float, float, int]]  # (mean predicted, observed share, customers)
    base_rate: float | None  # share that churned in the test period
    brier: float | None
    test_customers: int | None
    budget: float | None  # the weekly retention budget of that scoring
    budget_spent: float | None
    offers: int | None


def _number(value: object) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _whole(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def churn_model_from(summary: dict) -> ChurnMetrics:
    calibration = []
    for point in summary.get("calibration") or []:
        try:
            predicted, observed, n = point[0], point[1], point[2]
            calibration.append((min(1.0, max(0.0, float(predicted))), min(1.0, max(0.0, float(observed))), int(n)))
        except (TypeError, ValueError, IndexError):
            continue
    return ChurnMetrics(
        auc=_number(summary.get("auc")),
        precision=_number(summary.get("precision")),
        recall=_number(summary.get("recall")),
        threshold=_number(summary.get("threshold")),
        calibration=calibration,
        base_rate=_number(summary.get("base_rate")),
        brier=_number(summary.get("brier")),
        test_customers=_whole(summary.get("test_customers")),
        budget=_number(summary.get("budget")),
        budget_spent=_number(summary.get("budget_spent")),
        offers=_whole(summary.get("offers")),
    )


def risk_list(
    *, merchant: Merchant, churn_run: InsightRun | None, limit: int = RISK_LIST_LIMIT
) -> list[RetentionCandidate]:
    """The retention candidates of the churn run in service, most expected value first."""
    if churn_run is None:
        return []
    return list(
        RetentionCandidate.objects.for_merchant(merchant)
        .filter(run=churn_run, customer__erased_at__isnull=True)
        .select_related("customer")
        .order_by("-expected_value", "pk")[:limit]
    )


def risk_list_size(*, merchant: Merchant, churn_run: InsightRun | None) -> int:
    if churn_run is None:
        return 0
    return (
        RetentionCandidate.objects.for_merchant(merchant)
        .filter(run=churn_run, customer__erased_at__isnull=True)
        .count()
    )


# --- the screen -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoyaltyOverview:
    kpis: LoyaltyKpis
    runs: dict[str, RunState]
    segments: list[SegmentRow]  # in the Segment order, empty ones left out
    clusters: Clusters
    cohorts: list[CohortRow]
    clv: ClvDistribution | None
    p_alive: Histogram
    churn: ChurnMetrics
    candidates: list[RetentionCandidate]
    candidates_total: int
    months: list[int] = field(default_factory=lambda: list(range(COHORT_MONTHS)))

    @property
    def run_list(self) -> list[RunState]:
        return list(self.runs.values())


def loyalty_overview(*, merchant: Merchant, now: datetime | None = None) -> LoyaltyOverview:
    runs = run_states(merchant=merchant)
    churn_run = runs[InsightKind.CHURN].in_service
    return LoyaltyOverview(
        kpis=loyalty_kpis(merchant=merchant, runs=runs),
        runs=runs,
        # Segments nobody is in are left out: eleven rows of zeros say less than the ones that are filled.
        segments=[row for row in segment_summary(merchant=merchant) if row.customers],
        clusters=clusters_from(runs[InsightKind.SEGMENTS].summary),
        cohorts=cohort_retention(merchant=merchant, now=now),
        clv=clv_distribution(merchant=merchant, bins=CLV_BINS),
        p_alive=p_alive_histogram(merchant=merchant, run=runs[InsightKind.LIFETIME_VALUE].in_service),
        churn=churn_model_from(runs[InsightKind.CHURN].summary),
        candidates=risk_list(merchant=merchant, churn_run=churn_run),
        candidates_total=risk_list_size(merchant=merchant, churn_run=churn_run),
    )
