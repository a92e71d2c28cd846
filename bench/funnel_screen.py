"""Funnel analytics benchmark: `funnel_steps` per breakdown and the whole /funnel/ screen on 100k sessions.

    bin/with-services .venv/bin/python bench/funnel_screen.py
    bin/with-services .venv/bin/python bench/funnel_screen.py --sessions 100000,300000 --repeats 3 --explain

Needs PostgreSQL (DATABASE_URL). Everything happens in a throwaway database created next to the one
DATABASE_URL names and dropped at the end.

Per size, from empty tables, with set-based SQL (INSERT … SELECT generate_series): `--sessions` sessions over
the last 90 days, two per customer, on three devices and four sources; every session logs three "Page Viewed";
80% view three products, 40% of those add to the cart, 60% of carts start checkout and 70% of checkouts order
(so ≈6.7 events per session); a third of the customers have an RFM segment. Then VACUUM ANALYZE.

Timed, after one untimed warm-up, `--repeats` times, medians reported: `funnel_steps` over the 90 days with no
breakdown and by day, device, source and segment, and `funnel_screen` (what the page reads: two funnels,
offers, recovery and the model). The totals are checked against a direct count of the generated draws.
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

DEFAULT_SIZES = (100_000,)
DAYS = 90


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes {text!r}: comma-separated session counts, e.g. 100000") from None
    if not sizes or min(sizes) < 1000:
        raise argparse.ArgumentTypeError("sizes: at least 1,000 sessions each")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=_sizes, default=list(DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=float, default=0.42, help="PostgreSQL setseed() for the generated data")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the by-device statement")
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")):
        print("bench/funnel_screen.py needs PostgreSQL: run it under bin/with-services.")
        return 2
    warnings.filterwarnings("ignore", message="No directory at")
    bench_url, bench_database_drop = bench_database_create(base_url)
    bench_environment_set(database_url=bench_url, name="funnel")
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
    from django.db import connection, transaction

    from events.selectors.funnel import funnel_steps
    from revopt.tenancy.services import merchant_create

    print(
        f"bench/funnel: PostgreSQL {connection.cursor().connection.server_version}, {os.cpu_count()} CPUs, "
        f"sessions {', '.join(f'{size:,}' for size in args.sessions)}, {args.repeats} repeats"
    )
    call_command("migrate", verbosity=0)
    status = 0
    for number, size in enumerate(args.sessions, start=1):
        merchant = merchant_create(name=f"Bench Shop {number}", slug=f"bench-shop-{number}")
        now = datetime.now(UTC).replace(microsecond=0)
        started = time.perf_counter()
        expected = shop_generate(merchant=merchant, size=size, now=now, seed=args.seed)
        print(
            f"\n{size:,} sessions: {expected['events']:,} events, {expected['orders']:,} orders; generated and "
            f"analysed in {time.perf_counter() - started:.0f} s"
        )
        end = now.date()
        start = end - timedelta(days=DAYS - 1)
        total = funnel_steps(merchant=merchant, start=start, end=end).total
        wanted = tuple(expected[step] for step in ("sessions", "view", "cart", "checkout", "order"))
        print(f"  reached {total.reached} (expected {wanted})")
        if total.reached != wanted:
            print("  FAIL: the funnel does not match the generated draws")
            status = 1
        if args.explain:
            query = _by_device_sql(merchant=merchant, start=start, end=end)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")  # as funnel_steps reads it
                cursor.execute("EXPLAIN ANALYZE " + query[0], query[1])
                print("\n".join(row[0] for row in cursor.fetchall()))
        measure(merchant=merchant, start=start, end=end, repeats=args.repeats)
    return status


def measure(*, merchant, start, end, repeats: int) -> None:
    from events.selectors.funnel import funnel_period, funnel_screen, funnel_steps

    period = funnel_period(merchant=merchant, start=start, end=end)
    cases = {
        f"funnel_steps(by={by})": (lambda by=by: funnel_steps(merchant=merchant, start=start, end=end, by=by))
        for by in (None, "day", "device", "source", "segment")
    }
    cases["funnel_screen(by=device)"] = lambda: funnel_screen(merchant=merchant, period=period, by="device")
    # The baseline: one plain count over the period's events, the least any funnel read has to touch.
    from events.models import Event

    events = Event.objects.for_merchant(merchant).filter(timestamp__gte=period.since, timestamp__lt=period.until)
    baseline = {"baseline: COUNT(*) of the events": events.count}
    print(f"  {'read':<34}{'median s':>10}{'× baseline':>12}   runs")
    floor = None
    for name, read in (baseline | cases).items():
        read()  # warm-up
        times = []
        for _ in range(repeats):
            tick = time.perf_counter()
            read()
            times.append(time.perf_counter() - tick)
        median = statistics.median(times)
        floor = floor or median
        runs = ", ".join(f"{t:.3f}" for t in times)
        print(f"  {name:<34}{median:>10.3f}{median / floor:>11.1f}×   {runs}")


def _by_device_sql(*, merchant, start, end) -> tuple[str, tuple]:
    from django.db.models import Count

    from events.models import Session
    from events.selectors.funnel import _depth_expression, _group_expression, funnel_period

    period = funnel_period(merchant=merchant, start=start, end=end)
    queryset = (
        Session.objects.for_merchant(merchant)
        .filter(started_at__gte=period.since, started_at__lt=period.until)
        .annotate(
            group=_group_expression("device", period.tz),
            depth=_depth_expression(merchant=merchant, since=period.since),
        )
        .values("group", "depth")
        .annotate(sessions=Count("pk"))
        .order_by()
    )
    return queryset.query.sql_with_params()


def shop_generate(*, merchant, size: int, now: datetime, seed: float) -> dict[str, int]:
    """Customers, sessions, events, orders and segments, each table in one INSERT … SELECT; returns the counts
    the funnel must find (from the draws, independently of the funnel's own query)."""
    from django.db import connection

    params = {"merchant": merchant.pk, "size": size, "customers": size // 2, "now": now, "seed": seed}
    statements = [
        "SELECT setseed(%(seed)s)",
        """INSERT INTO events_customer (merchant_id, external_id, email, marketing_consent, location_consent,
               personalization_opt_out, created_at)
           SELECT %(merchant)s, 'bench-' || g, '', false, false, false, %(now)s - interval '200 days'
           FROM generate_series(1, %(customers)s) g""",
        """INSERT INTO events_session (merchant_id, external_id, customer_id, started_at, device, utm_source,
               utm_medium, utm_campaign)
           SELECT %(merchant)s, 'bench-s-' || g, c.first + (g %% %(customers)s),
                  %(now)s - random() * interval '89 days',
                  (ARRAY['desktop', 'mobile', 'tablet'])[1 + floor(random() * 3)::int],
                  (ARRAY['', 'google', 'newsletter', 'instagram'])[1 + floor(random() * 4)::int], '', ''
           FROM generate_series(1, %(size)s) g,
                (SELECT min(id) AS first FROM events_customer WHERE merchant_id = %(merchant)s) c""",
        """CREATE TEMP TABLE bench_draws AS
           SELECT id AS session_id, customer_id, started_at, random() < 0.8 AS viewed, random() < 0.4 AS added,
                  random() < 0.6 AS checked_out, random() < 0.7 AS ordered
           FROM events_session WHERE merchant_id = %(merchant)s""",
        """UPDATE bench_draws SET added = added AND viewed""",
        """UPDATE bench_draws SET checked_out = checked_out AND added""",
        """UPDATE bench_draws SET ordered = ordered AND checked_out""",
        """INSERT INTO events_event (merchant_id, message_id, name, customer_id, anonymous_id, session_id,
               timestamp, received_at, device, properties, context)
           SELECT %(merchant)s, 'bench-e-' || d.session_id || '-' || s.name || '-' || k, s.name, d.customer_id, '',
                  d.session_id, d.started_at + k * interval '1 minute', d.started_at, 'other', '{}', '{}'
           FROM bench_draws d
           CROSS JOIN generate_series(1, 3) k
           JOIN (VALUES ('Page Viewed', 0), ('Product Viewed', 1), ('Product Added', 2), ('Checkout Started', 3))
                AS s(name, step) ON true
           WHERE s.step = 0 OR (s.step = 1 AND d.viewed) OR (s.step = 2 AND d.added AND k = 1)
                 OR (s.step = 3 AND d.checked_out AND k = 1)""",
        """INSERT INTO events_order (merchant_id, external_id, customer_id, session_id, message_id, placed_at,
               currency, subtotal, discount, shipping, tax, total, coupon, status)
           SELECT %(merchant)s, 'bench-o-' || d.session_id, d.customer_id, d.session_id, 'bench-o-' || d.session_id,
                  d.started_at + interval '20 minutes', 'USD', 80, 0, 0, 0, 80, '', 'completed'
           FROM bench_draws d WHERE d.ordered""",
        """INSERT INTO loyalty_customerinsight (merchant_id, customer_id, as_of, orders, revenue, segment)
           SELECT %(merchant)s, id, %(now)s, 0, 0,
                  (ARRAY['champions', 'loyal', 'new', 'at_risk', 'lost'])[1 + floor(random() * 5)::int]
           FROM events_customer WHERE merchant_id = %(merchant)s AND id %% 3 = 0""",
    ]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, params)
        cursor.execute(
            """SELECT count(*), count(*) FILTER (WHERE viewed), count(*) FILTER (WHERE added),
                      count(*) FILTER (WHERE checked_out), count(*) FILTER (WHERE ordered) FROM bench_draws"""
        )
        sessions, viewed, added, checked_out, ordered = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM events_event WHERE merchant_id = %s", [merchant.pk])
        events = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_draws")
    with connection.cursor() as cursor:
        for table in ("events_customer", "events_session", "events_event", "events_order", "loyalty_customerinsight"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return {
        "sessions": sessions,
        "view": viewed,
        "cart": added,
        "checkout": checked_out,
        "order": ordered,
        "events": events,
        "orders": ordered,
    }


if __name__ == "__main__":
    raise SystemExit(main())
