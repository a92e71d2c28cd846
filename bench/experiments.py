"""Analysis benchmark: `experiment_analyze` on 1M (and 10M) exposures, beside a plain scan of the same table.

    make bench-experiments          # = bin/with-services .venv/bin/python bench/experiments.py
    bin/with-services .venv/bin/python bench/experiments.py --sizes 1000000,10000000 --repeats 3
    bin/with-services .venv/bin/python bench/experiments.py --sizes 200000 --explain   # the plan

Needs PostgreSQL (DATABASE_URL). Everything happens in a throwaway database created next to the one
DATABASE_URL names and dropped at the end.

Per size, from empty tables, with set-based SQL (INSERT … SELECT generate_series, no Python loops):
an experiment of two variants started 22 days ago, one customer per exposure spread over its first
14 days; ~3% of the control's units and ~3.3% of the treatment's order within a week (a fifth of them
twice, 5% refunded), each order with two lines; 4% of the shoppers ordered in the 14-day pre-period
(CUPED); every unit viewed a product, 10% added one to a cart, 0.5% unsubscribed. Then VACUUM ANALYZE.

Timed, after one untimed warm-up of each, `--repeats` times interleaved, medians reported:
  analysis  experiments.services.analysis.experiment_analyze(save=False): every metric of
            experiments.metrics (primary revenue per user, the others as secondaries and guardrails), the
            sample-ratio check and the statistics, i.e. what the daily task and the results page pay;
  scan      SELECT COUNT(*), SUM(customer_id), SUM(variant_id) FROM experiments_exposure: the floor of any
            query reading each exposure once.
The ratio analysis / scan is what the exposures' joins to orders and events, the per-unit aggregation,
the winsorization percentiles and the per-variant sums cost on top of reading the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import bench_database_create, bench_environment_set  # noqa: E402

DEFAULT_SIZES = (1_000_000,)
TABLES = (
    "experiments_analysissnapshot",
    "experiments_exposure",
    "events_orderline",
    "events_order",
    "events_event",
    "events_customer",
)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"sizes {text!r}: comma-separated unit counts, e.g. 1000000,10000000"
        ) from None
    if not sizes or min(sizes) < 1000:
        raise argparse.ArgumentTypeError("sizes: at least 1,000 exposures each")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DEFAULT_SIZES),
        help="exposures per case, e.g. 1000000,10000000 (10M takes ~15 min to generate on 2 cores)",
    )
    parser.add_argument("--large", action="store_true", help="shorthand: --sizes 1000000,10000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=float, default=0.42, help="PostgreSQL setseed() for the generated data")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the metrics statement")
    args = parser.parse_args()
    if args.large:
        args.sizes = [1_000_000, 10_000_000]

    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")):
        print("bench/experiments.py needs PostgreSQL: run it as `make bench-experiments` (bin/with-services).")
        return 2
    warnings.filterwarnings("ignore", message="No directory at")
    bench_url, bench_database_drop = bench_database_create(base_url)
    bench_environment_set(database_url=bench_url, name="experiments")
    try:
        return _run(args)
    finally:
        from django.db import connections

        connections.close_all()
        bench_database_drop()


def _run(args) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from experiments.metrics import DEFAULT_GUARDRAILS, METRICS
    from experiments.services.lifecycle import VariantSpec, experiment_create, experiment_start
    from revopt.tenancy.services import merchant_create

    print(
        f"bench/experiments: PostgreSQL {connection.cursor().connection.server_version}, {os.cpu_count()} CPUs, "
        f"sizes {', '.join(f'{size:,}' for size in args.sizes)}, {args.repeats} repeats"
    )
    call_command("migrate", verbosity=0)
    merchant = merchant_create(name="Bench Shop", slug="bench-shop")
    guardrail_keys = {guardrail["metric"] for guardrail in DEFAULT_GUARDRAILS}
    secondary = [key for key in METRICS if key != "revenue_per_user" and key not in guardrail_keys]

    rows = []
    status = 0
    for number, size in enumerate(args.sizes, start=1):
        now = datetime.now(UTC).replace(microsecond=0)
        start = now - timedelta(days=22)
        experiment = experiment_create(
            merchant=merchant,
            key=f"bench-{number}",
            name=f"Bench {size:,}",
            variants=[VariantSpec("control", "Control", 0.5), VariantSpec("treatment", "Treatment", 0.5)],
            primary_metric="revenue_per_user",
            secondary_metrics=secondary,
            planned_sample_size=size // 2,
        )
        experiment_start(experiment=experiment, actor=None, now=start)
        started = time.perf_counter()
        counts = shop_generate(experiment=experiment, size=size, start=start, seed=args.seed)
        generated = time.perf_counter() - started
        print(
            f"\n{size:,} exposures: {counts['orders']:,} orders, {counts['lines']:,} lines, "
            f"{counts['events']:,} events, {counts['customers']:,} customers; generated and analysed "
            f"(VACUUM ANALYZE) in {generated:.0f} s"
        )
        if args.explain:
            explain(experiment=experiment, as_of=now)
        analysis_times, scan_times, analysis = measure(experiment=experiment, as_of=now, repeats=args.repeats)
        if analysis.units_total != size:
            print(f"  FAIL: the analysis counted {analysis.units_total:,} units, not {size:,}")
            status = 1
        primary = analysis.metric("revenue_per_user", "treatment")
        print(
            f"  verdict {analysis.verdict}: revenue per user {primary.relative_lift:+.1%} "
            f"({primary.relative_low:+.1%} to {primary.relative_high:+.1%}), CUPED variance reduction "
            f"{primary.cuped_variance_reduction:.1%}, SRM p = {analysis.srm_p_value:.3f}"
        )
        rows.append((size, analysis_times, scan_times))
        truncate()

    print(f"\n{'exposures':>12}{'analysis s':>14}{'scan s':>10}{'ratio':>9}   runs (analysis | scan)")
    for size, analysis_times, scan_times in rows:
        analysis_median = statistics.median(analysis_times)
        scan_median = statistics.median(scan_times)
        runs = ", ".join(f"{t:.2f}" for t in analysis_times) + " | " + ", ".join(f"{t:.3f}" for t in scan_times)
        print(f"{size:>12,}{analysis_median:>14.2f}{scan_median:>10.3f}{analysis_median / scan_median:>8.1f}x   {runs}")
    return status


def shop_generate(*, experiment, size: int, start: datetime, seed: float) -> dict[str, int]:
    """The experiment's shoppers, exposures, orders, lines and events, each table in one INSERT … SELECT."""
    from django.db import connection
    from tqdm import tqdm

    control, treatment = experiment.variants.order_by("index")
    params = {
        "merchant": experiment.merchant_id,
        "experiment": experiment.pk,
        "control": control.pk,
        "treatment": treatment.pk,
        "size": size,
        "start": start,
        "seed": seed,
        "prefix": f"{experiment.key}-",
    }
    # Box–Muller: a log-normal order value around $55 with a long right tail (winsorization bites).
    order_value = "round(exp(3.8 + 0.7 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::numeric, 2)"
    steps = [
        ("seed", "SELECT setseed(%(seed)s)"),
        (
            "customers",
            """INSERT INTO events_customer (merchant_id, external_id, email, marketing_consent, location_consent,
                   personalization_opt_out, created_at)
               SELECT %(merchant)s, %(prefix)s || g, '', false, false, false, %(start)s - interval '60 days'
               FROM generate_series(1, %(size)s) g""",
        ),
        (
            "exposures",
            """INSERT INTO experiments_exposure (merchant_id, experiment_id, variant_id, customer_id, unit_id,
                   exposed_at, device)
               SELECT c.merchant_id, %(experiment)s,
                      CASE WHEN random() < 0.5 THEN %(control)s ELSE %(treatment)s END,
                      c.id, c.external_id, %(start)s + random() * interval '14 days', 'mobile'
               FROM events_customer c
               WHERE c.merchant_id = %(merchant)s AND c.external_id LIKE %(prefix)s || '%%'""",
        ),
        (
            "orders",
            f"""INSERT INTO events_order (merchant_id, external_id, customer_id, message_id, placed_at, currency,
                   subtotal, discount, shipping, tax, total, coupon, status)
               SELECT merchant_id, reference, customer_id, reference, placed_at, 'USD', total, 0, 0, 0, total, '',
                      CASE WHEN random() < 0.05 THEN 'refunded' ELSE 'completed' END
               FROM (
                   SELECT x.merchant_id, x.customer_id, 'o-' || x.id || '-' || k AS reference,
                          x.exposed_at + random() * interval '7 days' AS placed_at, {order_value} AS total
                   FROM experiments_exposure x
                   CROSS JOIN LATERAL generate_series(1, CASE WHEN random() < 0.2 THEN 2 ELSE 1 END) k
                   WHERE x.experiment_id = %(experiment)s
                     AND random() < CASE WHEN x.variant_id = %(treatment)s THEN 0.033 ELSE 0.030 END
                   UNION ALL
                   SELECT x.merchant_id, x.customer_id, 'p-' || x.id,
                          %(start)s - random() * interval '14 days', {order_value}
                   FROM experiments_exposure x
                   WHERE x.experiment_id = %(experiment)s AND random() < 0.04
               ) generated""",
        ),
        (
            "lines",
            """INSERT INTO events_orderline (merchant_id, order_id, sku, quantity, unit_price, unit_cost)
               SELECT o.merchant_id, o.id, 'SKU-' || (o.id %% 500), 1 + (random() * 2)::int,
                      round(o.total / 2, 2), round(o.total / 5, 2)
               FROM events_order o CROSS JOIN generate_series(1, 2) line
               WHERE o.merchant_id = %(merchant)s""",
        ),
        (
            "events",
            """INSERT INTO events_event (merchant_id, message_id, name, customer_id, anonymous_id, timestamp,
                   received_at, device, properties, context)
               SELECT merchant_id, 'e-' || id || '-' || kind, name, customer_id, '', at, at, 'mobile', '{}', '{}'
               FROM (
                   SELECT x.merchant_id, x.id, x.customer_id, 'v' AS kind, 'Product Viewed' AS name,
                          x.exposed_at + random() * interval '2 days' AS at
                   FROM experiments_exposure x WHERE x.experiment_id = %(experiment)s
                   UNION ALL
                   SELECT x.merchant_id, x.id, x.customer_id, 'a', 'Product Added',
                          x.exposed_at + random() * interval '3 days'
                   FROM experiments_exposure x WHERE x.experiment_id = %(experiment)s AND random() < 0.10
                   UNION ALL
                   SELECT x.merchant_id, x.id, x.customer_id, 'u', 'Unsubscribed',
                          x.exposed_at + random() * interval '5 days'
                   FROM experiments_exposure x WHERE x.experiment_id = %(experiment)s AND random() < 0.005
               ) generated""",
        ),
    ]
    counts = {}
    with tqdm(total=len(steps) + 1, desc=f"{size:,} exposures", leave=False, disable=not sys.stderr.isatty()) as bar:
        for name, sql in steps:
            bar.set_postfix_str(name)
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                counts[name] = cursor.rowcount
            bar.update()
        bar.set_postfix_str("vacuum analyze")
        with connection.cursor() as cursor:
            for table in TABLES:
                cursor.execute(f"VACUUM ANALYZE {table}")
        bar.update()
    return counts


def measure(*, experiment, as_of: datetime, repeats: int):
    from django.db import connection

    from experiments.services.analysis import experiment_analyze

    def analysis_run():
        started = time.perf_counter()
        analysis = experiment_analyze(experiment=experiment, as_of=as_of, save=False)
        return time.perf_counter() - started, analysis

    def scan_run() -> float:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*), SUM(customer_id), SUM(variant_id) FROM experiments_exposure")
            cursor.fetchall()
        return time.perf_counter() - started

    statements: list[tuple[float, str]] = []

    def timed_statement(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((time.perf_counter() - started, " ".join(str(sql).split())))

    # Warm-up (the same pages in the buffer cache for both), timing each statement of the analysis.
    with connection.execute_wrapper(timed_statement):
        warm_up, analysis = analysis_run()
    scan_run()
    in_sql = sum(duration for duration, _ in statements)
    print(f"  warm-up analysis {warm_up:.2f} s: {len(statements)} statements, {in_sql:.2f} s in the database")
    for duration, sql in sorted(statements, reverse=True)[:3]:
        print(f"    {duration:7.3f} s  {sql[:110]}")
    analysis_times, scan_times = [], []
    for repeat in range(1, repeats + 1):
        seconds, analysis = analysis_run()
        analysis_times.append(seconds)
        scan_times.append(scan_run())
        print(f"  repeat {repeat}/{repeats}  analysis {seconds:6.2f} s   scan {scan_times[-1]:6.3f} s", flush=True)
    return analysis_times, scan_times, analysis


def explain(*, experiment, as_of: datetime) -> None:

    from experiments.metrics import METRICS
    from experiments.selectors import metrics as metric_selectors

    window = metric_selectors.metric_window(experiment=experiment, as_of=as_of)
    query = metric_selectors._SumsQuery(
        experiment=experiment,
        definitions=[METRICS[key] for key in METRICS],
        window=window,
        with_pre_period=True,
        percentile=experiment.winsorize_percentile,
    )
    with metric_selectors._analytical_transaction() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query.sql(), query.params)
        print("\n".join(row[0] for row in cursor.fetchall()))


def truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")


if __name__ == "__main__":
    sys.exit(main())
