"""Experiment metrics from the database: per-unit values aggregated into per-variant sufficient statistics.

A unit is an `Exposure` (one customer), observed from its `exposed_at` until the analysis' `as_of` (or the
experiment's `stopped_at` when that is earlier). Its values (`experiments.metrics.UnitValue`) come from
orders, order lines and events in that window; the pre-period value CUPED uses comes from the same
customer's behaviour in [started_at − pre_period_days, started_at).

Everything is one SQL statement: per-unit values in a CTE, winsorization caps computed from them
(percentile_cont on PostgreSQL, the same interpolation by ROW_NUMBER on SQLite), then sums, sums of squares
and cross products per variant, for all the requested metrics at once. No rows come back to Python but one
per variant. The ORM cannot express aggregates over per-unit aggregates with a cap computed in between,
hence the raw SQL; every table in it is filtered by the merchant. bench/experiments.py times it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from events.models import Event, Order, OrderLine, OrderStatus
from experiments.metrics import MetricDefinition, MetricKind, UnitValue, metric_definition
from experiments.models import AllocationChange, Experiment, Exposure, Variant
from experiments.stats.summaries import RatioSums, SampleSums

PRODUCT_ADDED = "Product Added"
UNSUBSCRIBED = "Unsubscribed"
# PostgreSQL's work_mem for the metric statement's transaction (hashes and sorts of the active units).
ANALYSIS_WORK_MEM = "64MB"

_EXPOSURE = Exposure._meta.db_table
_VARIANT = Variant._meta.db_table
_ORDER = Order._meta.db_table
_LINE = OrderLine._meta.db_table
_EVENT = Event._meta.db_table
_VARIANT_INDEX = connection.ops.quote_name(Variant._meta.get_field("index").column)

# What each unit value needs from its activity rows (orders, their lines, events).
_ORDER_VALUES = frozenset(
    {
        UnitValue.ORDERED,
        UnitValue.BUYER,
        UnitValue.REVENUE,
        UnitValue.MARGIN,
        UnitValue.ORDERS,
        UnitValue.ITEMS,
        UnitValue.ABANDONED,
        UnitValue.REPEATED,
        UnitValue.REFUNDED_ORDERS,
        UnitValue.ALL_ORDERS,
    }
)
_CARTED_VALUES = frozenset({UnitValue.CARTED, UnitValue.ABANDONED})

# Each unit value over the unit's activity totals in one window ({p}: "post_" or "pre_").
_VALUE_SQL = {
    UnitValue.ORDERED: "CASE WHEN {p}orders > 0 THEN 1 ELSE 0 END",
    UnitValue.BUYER: "CASE WHEN {p}orders > 0 THEN 1 ELSE 0 END",
    UnitValue.REVENUE: "{p}revenue",
    UnitValue.MARGIN: "{p}net_sales - {p}cost",
    UnitValue.ORDERS: "{p}orders",
    UnitValue.ITEMS: "{p}items",
    UnitValue.CARTED: "{p}carted",
    UnitValue.ABANDONED: "CASE WHEN {p}carted > 0 AND {p}orders = 0 THEN 1 ELSE 0 END",
    UnitValue.REPEATED: "CASE WHEN {p}orders >= 2 THEN 1 ELSE 0 END",
    UnitValue.REFUNDED_ORDERS: "{p}refunded",
    UnitValue.ALL_ORDERS: "{p}orders + {p}refunded",
    UnitValue.UNSUBSCRIBED: "{p}unsubscribed",
}
# Flags are "happened at least once" (MAX); the rest add up (SUM).
_FLAG_COLUMNS = frozenset({"carted", "unsubscribed"})

MetricSums = SampleSums | RatioSums


@dataclass(frozen=True)
class MetricWindow:
    """The time window of an analysis: units exposed before `end`, observed until `end`."""

    start: datetime | None  # the experiment's start (a lower bound for every unit's window)
    end: datetime  # as_of, or the experiment's stop when earlier
    pre_start: datetime | None  # CUPED's pre-period [pre_start, start)


def metric_window(*, experiment: Experiment, as_of: datetime) -> MetricWindow:
    end = min(as_of, experiment.stopped_at) if experiment.stopped_at else as_of
    start = experiment.started_at
    pre_start = start - timedelta(days=experiment.pre_period_days) if start else None
    return MetricWindow(start=start, end=end, pre_start=pre_start)


def metric_sums_by_variant(
    *,
    experiment: Experiment,
    metric: str,
    as_of: datetime,
    winsorize: bool = True,
    with_pre_period: bool | None = None,
) -> dict[str, MetricSums]:
    """One metric's sufficient statistics per variant key (every variant, zeros when it has no units).

    PROPORTION and MEAN metrics give `SampleSums` (x: the unit's pre-period value when CUPED is on, i.e.
    `with_pre_period`, by default the experiment's `cuped`); RATIO metrics give `RatioSums`.
    """
    return metrics_sums_by_variant(
        experiment=experiment,
        metrics=[metric],
        as_of=as_of,
        winsorize=winsorize,
        with_pre_period=with_pre_period,
    )[metric]


def metrics_sums_by_variant(
    *,
    experiment: Experiment,
    metrics: Sequence[str],
    as_of: datetime,
    winsorize: bool = True,
    with_pre_period: bool | None = None,
) -> dict[str, dict[str, MetricSums]]:
    """Several metrics at once, {metric: {variant key: sums}}, in one SQL statement."""
    definitions = [metric_definition(key) for key in dict.fromkeys(metrics)]
    window = metric_window(experiment=experiment, as_of=as_of)
    if with_pre_period is None:
        with_pre_period = experiment.cuped
    with_pre_period = with_pre_period and window.start is not None
    percentile = experiment.winsorize_percentile if winsorize and experiment.winsorize_percentile < 1.0 else None
    query = _SumsQuery(
        experiment=experiment,
        definitions=definitions,
        window=window,
        with_pre_period=with_pre_period,
        percentile=percentile,
    )
    with _analytical_transaction() as cursor:
        cursor.execute(query.sql(), query.params)
        rows = cursor.fetchall()
    return query.parse(rows)


@contextmanager
def _analytical_transaction() -> Iterator[CursorWrapper]:
    """A cursor for one large read-only aggregate, with PostgreSQL settings for it alone (in a savepoint
    rolled back afterwards, so a caller's own transaction keeps its settings):

    - no JIT: compiling these wide statements took longer than running them (1M exposures: 2.6 s + 2.1 s);
    - work_mem to hash and sort the active units in memory;
    - no nested loops: the planner cannot see how many customers the activity (a UNION) holds, guesses
      200, and would look each one's exposure up by index (10M exposures: 15 s of random reads) where
      hashing them and scanning the exposures once takes seconds.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    with transaction.atomic(), connection.cursor() as cursor:
        settings = transaction.savepoint()
        try:
            cursor.execute(
                "SELECT set_config('jit', 'off', true), set_config('work_mem', %s, true), "
                "set_config('enable_nestloop', 'off', true)",
                [ANALYSIS_WORK_MEM],
            )
            yield cursor
        finally:
            transaction.savepoint_rollback(settings)


def exposure_counts_by_period(
    *, experiment: Experiment, as_of: datetime
) -> list[tuple[int, dict[str, int], dict[str, float]]]:
    """Per allocation period (from one AllocationChange to the next): the units that arrived in it, in
    total and per variant key, and the weights in force then — the sample-ratio check's expectation.

    Units that arrived before the first change count in the first period. Without any change on record
    the variants' current weights are the one period. Three queries: the variants, the changes, and one
    pass over the exposures that finds each unit's period by a binary search written as nested CASEs
    (log₂ of the number of changes comparisons a unit, no sort, however often a bandit reallocated).
    """
    window = metric_window(experiment=experiment, as_of=as_of)
    variant_rows = list(
        Variant.objects.for_merchant(experiment.merchant_id)
        .filter(experiment=experiment)
        .order_by("index")
        .values_list("pk", "key", "weight")
    )
    variants = {pk: key for pk, key, _ in variant_rows}
    changes = list(
        AllocationChange.objects.for_merchant(experiment.merchant_id)
        .filter(experiment=experiment, effective_at__lt=window.end)
        .order_by("effective_at", "pk")
        .values_list("effective_at", "weights")
    )
    if not changes:
        changes = [(None, {key: weight for _, key, weight in variant_rows})]
    adapt = connection.ops.adapt_datetimefield_value
    boundaries = [adapt(effective_at) for effective_at, _ in changes[1:]]
    params: list[object] = []
    period = _period_case(boundaries, low=0, high=len(boundaries), params=params)
    params += [experiment.merchant_id, experiment.pk, adapt(window.end)]
    sql = f"""
        SELECT period, variant_id, COUNT(*) FROM (
            SELECT {period} AS period, x.variant_id
            FROM {_EXPOSURE} x
            WHERE x.merchant_id = %s AND x.experiment_id = %s AND x.exposed_at < %s
        ) periods
        GROUP BY period, variant_id
    """
    counts: list[dict[str, int]] = [dict.fromkeys(variants.values(), 0) for _ in changes]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for index, variant_id, units in cursor.fetchall():
            counts[int(index)][variants[variant_id]] += int(units)
    return [
        (sum(by_variant.values()), by_variant, {key: float(weights.get(key, 0.0)) for key in variants.values()})
        for by_variant, (_, weights) in zip(counts, changes, strict=True)
    ]


def _period_case(boundaries: Sequence[object], *, low: int, high: int, params: list[object]) -> str:
    """SQL for the number of `boundaries[low:high]` at or before x.exposed_at, plus `low` (the boundaries
    are the sorted starts of the second and later periods, so the result is the unit's period index)."""
    if low == high:
        return str(low)
    middle = (low + high) // 2
    params.append(boundaries[middle])
    before = len(params)
    later = _period_case(boundaries, low=middle + 1, high=high, params=params)
    later_params = params[before:]
    del params[before:]
    earlier = _period_case(boundaries, low=low, high=middle, params=params)
    params += later_params
    return f"CASE WHEN x.exposed_at < %s THEN {earlier} ELSE {later} END"


# --- the statement ----------------------------------------------------------------------------


class _SumsQuery:
    """Builds the one statement behind `metrics_sums_by_variant` and reads its rows back.

    Every unit value is 0 for a unit with no order and no event in its windows, so only the active units
    are aggregated and materialized: one pass joins the experiment's exposures to the windows' orders and
    events ("activity", for a few percent of the units), one more counts the units per variant. The zeros
    of the others add nothing to the sums, and a percentile of the positive values never sees them.
    """

    def __init__(
        self,
        *,
        experiment: Experiment,
        definitions: list[MetricDefinition],
        window: MetricWindow,
        with_pre_period: bool,
        percentile: float | None,
    ) -> None:
        self.definitions = definitions
        self.window = window
        adapt = connection.ops.adapt_datetimefield_value
        self.params: dict[str, object] = {
            "merchant": experiment.merchant_id,
            "experiment": experiment.pk,
            "end": adapt(window.end),
            "completed": OrderStatus.COMPLETED.value,
            "refunded": OrderStatus.REFUNDED.value,
            "product_added": PRODUCT_ADDED,
            "unsubscribed": UNSUBSCRIBED,
            "percentile": percentile if percentile is not None else 1.0,
        }
        if window.start is not None:
            self.params["start"] = adapt(window.start)
            self.params["pre_start"] = adapt(window.pre_start)

        post_values: set[UnitValue] = set()
        pre_values: set[UnitValue] = set()
        self.capped: set[str] = set()  # unit columns ("revenue", "pre_revenue") that get a cap
        for definition in definitions:
            post_values.add(definition.numerator)
            if definition.kind == MetricKind.RATIO:
                post_values.add(definition.denominator)
                continue
            capped = definition.winsorized and percentile is not None
            if capped:
                self.capped.add(definition.numerator.value)
            if with_pre_period:
                pre_values.add(definition.numerator)
                if capped:
                    self.capped.add(f"pre_{definition.numerator.value}")
        self.post_values = sorted(post_values)
        self.pre_values = sorted(pre_values)
        self.with_pre_period = with_pre_period

        values = post_values | pre_values
        self.orders = bool(values & _ORDER_VALUES)
        self.order_columns = ["orders", "refunded", "revenue"] if self.orders else []
        if UnitValue.ITEMS in values:
            self.order_columns.append("items")
        if UnitValue.MARGIN in values:
            self.order_columns += ["net_sales", "cost"]
        self.line_columns = [column for column in ("items", "cost") if column in self.order_columns]
        self.event_columns = []
        if values & _CARTED_VALUES:
            self.event_columns.append("carted")
        if UnitValue.UNSUBSCRIBED in values:
            self.event_columns.append("unsubscribed")

    # Activity: one row per order or event of interest, of any customer, in the union of the windows.

    def _activity_sql(self) -> str:
        columns = self.order_columns + self.event_columns
        parts = []
        if self.order_columns:
            order_columns = {
                "orders": "CASE WHEN o.status = %(completed)s THEN 1 ELSE 0 END",
                "refunded": "CASE WHEN o.status = %(refunded)s THEN 1 ELSE 0 END",
                "revenue": "CASE WHEN o.status = %(completed)s THEN CAST(o.total AS DOUBLE PRECISION) ELSE 0 END",
                "items": "CASE WHEN o.status = %(completed)s THEN COALESCE(SUM(l.quantity), 0) ELSE 0 END",
                # Merchandise after discounts: tax and shipping are passed through, not margin.
                "net_sales": "CASE WHEN o.status = %(completed)s "
                "THEN CAST(o.subtotal - o.discount AS DOUBLE PRECISION) ELSE 0 END",
                # Cost of goods plus what incentives cost beyond the discount (free shipping's carrier, bonus
                # points): the order's own column, taken once per order as the grouping is by order.
                "cost": "CASE WHEN o.status = %(completed)s THEN "
                "COALESCE(SUM(l.quantity * CAST(COALESCE(l.unit_cost, 0) AS DOUBLE PRECISION)), 0) "
                "+ CAST(o.incentive_cost AS DOUBLE PRECISION) ELSE 0 END",
            }
            selected = ", ".join(f"{order_columns.get(column, '0')} AS {column}" for column in columns)
            lines = grouping = ""
            if self.line_columns:
                # Summed back to one row per order.
                lines = f"LEFT JOIN {_LINE} l ON l.order_id = o.id AND l.merchant_id = %(merchant)s"
                grouping = (
                    "GROUP BY o.id, o.customer_id, o.placed_at, o.status, o.total, o.subtotal, o.discount, "
                    "o.incentive_cost"
                )
            parts.append(
                f"""SELECT o.customer_id, o.placed_at AS at, {selected}
                FROM {_ORDER} o {lines}
                WHERE o.merchant_id = %(merchant)s AND o.status IN (%(completed)s, %(refunded)s)
                  AND {self._bounds("o.placed_at")}
                {grouping}"""
            )
        if self.event_columns:
            event_columns = {
                "carted": "CASE WHEN ev.name = %(product_added)s THEN 1 ELSE 0 END",
                "unsubscribed": "CASE WHEN ev.name = %(unsubscribed)s THEN 1 ELSE 0 END",
            }
            names = {"carted": "%(product_added)s", "unsubscribed": "%(unsubscribed)s"}
            selected = ", ".join(f"{event_columns.get(column, '0')} AS {column}" for column in columns)
            parts.append(
                f"""SELECT ev.customer_id, ev.timestamp AS at, {selected}
                FROM {_EVENT} ev
                WHERE ev.merchant_id = %(merchant)s
                  AND ev.name IN ({", ".join(names[column] for column in self.event_columns)})
                  AND {self._bounds("ev.timestamp")}"""
            )
        return " UNION ALL ".join(parts)

    def _bounds(self, column: str) -> str:
        """Constant bounds of the activity: they let the (merchant, time) indexes narrow the scans."""
        lower = "pre_start" if self.pre_values else "start"
        return (f"{column} >= %({lower})s AND " if self.window.start is not None else "") + f"{column} < %(end)s"

    def _unit_activity_sql(self) -> str:
        """Per active unit, each activity column totalled in the unit's own window and in the pre-period."""
        post = "a.at >= x.exposed_at" + (" AND a.at >= %(start)s" if self.window.start is not None else "")
        windows = [("post_", post)]
        if self.pre_values:
            windows.append(("pre_", "a.at >= %(pre_start)s AND a.at < %(start)s"))
        totals = [
            f"{'MAX' if column in _FLAG_COLUMNS else 'SUM'}(CASE WHEN {condition} THEN a.{column} ELSE 0 END) "
            f"AS {prefix}{column}"
            for prefix, condition in windows
            for column in self.order_columns + self.event_columns
        ]
        return f"""SELECT x.variant_id, {", ".join(totals)}
            FROM {_EXPOSURE} x JOIN activity a ON a.customer_id = x.customer_id
            WHERE x.merchant_id = %(merchant)s AND x.experiment_id = %(experiment)s AND x.exposed_at < %(end)s
              AND ({" OR ".join(f"({condition})" for _, condition in windows)})
              AND x.customer_id IN (SELECT customer_id FROM activity)
            GROUP BY x.id, x.variant_id"""
        # The IN is implied by the join; it is there for PostgreSQL's planner, which cannot see how many
        # customers the activity (a UNION) holds and would otherwise hash every exposure (10M: 19 s). With
        # it, the exposures are first filtered against the activity's customers, then only those hashed.

    def sql(self) -> str:
        unit_columns = [_VALUE_SQL[value].format(p="post_") + f" AS {value.value}" for value in self.post_values] + [
            _VALUE_SQL[value].format(p="pre_") + f" AS pre_{value.value}" for value in self.pre_values
        ]
        # Read several times when capping: computed once.
        materialized = " MATERIALIZED" if self.capped else ""
        ctes = [
            f"activity AS ({self._activity_sql()})",
            f"unit_activity AS ({self._unit_activity_sql()})",
            f"units AS{materialized} (SELECT variant_id, {', '.join(unit_columns)} FROM unit_activity)",
        ]
        caps_join = ""
        if self.capped:
            # The percentile of the positive values, interpolated linearly as numpy's quantile and
            # experiments.stats.frequentist.winsorized do. Units without revenue do not pull the cap down.
            # Materialized: inlined, PostgreSQL would repeat each percentile at every reference.
            if connection.vendor == "postgresql":
                # The same figure by PostgreSQL's ordered-set aggregate: one pass over the units, no window.
                caps = [
                    f"percentile_cont(%(percentile)s) WITHIN GROUP (ORDER BY {column}) FILTER (WHERE {column} > 0) "
                    f"AS cap_{column}"
                    for column in sorted(self.capped)
                ]
                ctes.append(f"caps AS MATERIALIZED (SELECT {', '.join(caps)} FROM units)")
            else:
                ctes.append(f"caps AS MATERIALIZED (SELECT {', '.join(self._window_percentiles())})")
            caps_join = "CROSS JOIN caps c"

        per_unit = []
        sums = []
        for index, definition in enumerate(self.definitions):
            if definition.kind == MetricKind.RATIO:
                per_unit += [
                    f"u.{definition.numerator.value} AS m{index}_num",
                    f"u.{definition.denominator.value} AS m{index}_den",
                ]
                sums += [
                    f"SUM(m{index}_num)",
                    f"SUM(m{index}_num * m{index}_num)",
                    f"SUM(m{index}_den)",
                    f"SUM(m{index}_den * m{index}_den)",
                    f"SUM(m{index}_num * m{index}_den)",
                ]
                continue
            per_unit.append(f"{self._capped(definition.numerator.value)} AS m{index}_y")
            sums += [f"SUM(m{index}_y)", f"SUM(m{index}_y * m{index}_y)"]
            if self.with_pre_period:
                per_unit.append(f"{self._capped('pre_' + definition.numerator.value)} AS m{index}_x")
                sums += [f"SUM(m{index}_x)", f"SUM(m{index}_x * m{index}_x)", f"SUM(m{index}_x * m{index}_y)"]

        # Each aggregate in its own CTE, so it is computed once, by hashing, whatever the join to the
        # variants turns into.
        ctes += [
            f"""counted AS MATERIALIZED (
                SELECT x.variant_id, COUNT(*) AS n FROM {_EXPOSURE} x
                WHERE x.merchant_id = %(merchant)s AND x.experiment_id = %(experiment)s AND x.exposed_at < %(end)s
                GROUP BY x.variant_id
            )""",
            f"""summed AS MATERIALIZED (
                SELECT p.variant_id, {", ".join(f"{total} AS s{index}" for index, total in enumerate(sums))}
                FROM (SELECT u.variant_id, {", ".join(per_unit)} FROM units u {caps_join}) p
                GROUP BY p.variant_id
            )""",
        ]
        return f"""
        WITH {", ".join(ctes)}
        SELECT v.key, COALESCE(counted.n, 0), {", ".join(f"summed.s{index}" for index in range(len(sums)))}
        FROM {_VARIANT} v
        LEFT JOIN counted ON counted.variant_id = v.id
        LEFT JOIN summed ON summed.variant_id = v.id
        WHERE v.merchant_id = %(merchant)s AND v.experiment_id = %(experiment)s
        ORDER BY v.{_VARIANT_INDEX}
        """

    def _window_percentiles(self) -> list[str]:
        """Each cap by window functions, which SQLite has (it lacks percentile_cont): at h = p·(m − 1) over
        the m positive values, the values at ranks ⌊h⌋ and ⌈h⌉ weighted by h − ⌊h⌋."""
        return [
            f"""(SELECT bounds.low + (bounds.high - bounds.low) * (bounds.h - bounds.low_position) FROM (
                SELECT MAX(CASE WHEN ranked.position <= ranked.h THEN ranked.value END) AS low,
                       MIN(CASE WHEN ranked.position >= ranked.h THEN ranked.value END) AS high,
                       MAX(CASE WHEN ranked.position <= ranked.h THEN ranked.position END) AS low_position,
                       MAX(ranked.h) AS h
                FROM (
                    SELECT {column} AS value, ROW_NUMBER() OVER (ORDER BY {column}) - 1 AS position,
                           %(percentile)s * (COUNT(*) OVER () - 1) AS h
                    FROM units WHERE {column} > 0
                ) ranked
            ) bounds) AS cap_{column}"""
            for column in sorted(self.capped)
        ]

    def _capped(self, column: str) -> str:
        if column not in self.capped:
            return f"u.{column}"
        cap = f"c.cap_{column}"
        return f"CASE WHEN {cap} IS NOT NULL AND u.{column} > {cap} THEN {cap} ELSE u.{column} END"

    def parse(self, rows: list[tuple]) -> dict[str, dict[str, MetricSums]]:
        results: dict[str, dict[str, MetricSums]] = {definition.key: {} for definition in self.definitions}
        for variant_key, n, *values in rows:
            numbers = iter(float(value or 0) for value in values)
            for definition in self.definitions:
                if definition.kind == MetricKind.RATIO:
                    results[definition.key][variant_key] = RatioSums(
                        n=int(n),
                        numerator_sum=next(numbers),
                        numerator_sum_squares=next(numbers),
                        denominator_sum=next(numbers),
                        denominator_sum_squares=next(numbers),
                        cross_sum=next(numbers),
                    )
                    continue
                y_sum, y_sum_squares = next(numbers), next(numbers)
                x_sum = x_sum_squares = xy_sum = 0.0
                if self.with_pre_period:
                    x_sum, x_sum_squares, xy_sum = next(numbers), next(numbers), next(numbers)
                results[definition.key][variant_key] = SampleSums(
                    n=int(n),
                    y_sum=y_sum,
                    y_sum_squares=y_sum_squares,
                    x_sum=x_sum,
                    x_sum_squares=x_sum_squares,
                    xy_sum=xy_sum,
                )
        return results
