"""Cart-abandonment benchmark: the cost of scoring a live cart, and of training on ~50k carts.

    make bench-abandonment            # = bin/with-services .venv/bin/python bench/abandonment.py (PostgreSQL)
    .venv/bin/python bench/abandonment.py --carts 20000 --calls 2000     # a throwaway SQLite file instead

With DATABASE_URL naming PostgreSQL, everything happens in a throwaway database created next to it and dropped
at the end; without, in a temporary SQLite file (the numbers then are SQLite's).

Generated (bulk inserts, untimed): `--carts` carts over the last 80 days plus as many browsing sessions, a
shopper per two sessions; each cart session logs a home page, 1-4 product views, 1-2 adds, shipping / returns
pages and a dwell rising with a latent hesitation, then "Cart Viewed"; about 45% order (fewer when hesitant).
Then ANALYZE.

Timed:
  training  events.services.abandonment.abandonment_model_train: the snapshots from the event log, the fit with
            out-of-fold calibration and permutation importances, the stored run.
  scoring   `--calls` live carts of existing sessions (p50 / p95 per call), interleaved, after a warm-up:
              lookups   cart_snapshot_live alone: the session, its events, the customer's history (the floor);
              cached    cart_snapshot_live + abandonment_score (the memoised model in service): what a decide
                        request pays for the prediction;
              unpickled cart_snapshot_live + reading and unpickling the model per request + predict: the naive
                        alternative to the in-process cache.
The ratios cached / lookups and unpickled / cached are printed.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import bench_database_create, bench_environment_set  # noqa: E402

DAYS = 80


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--carts", type=int, default=50_000)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.carts < 1_000 or args.calls < 10:
        parser.error("at least 1,000 carts and 10 calls")
    warnings.filterwarnings("ignore", message="No directory at")
    base_url = os.environ.get("DATABASE_URL", "")
    drop = None
    if base_url.startswith(("postgres://", "postgresql://")):
        bench_url, drop = bench_database_create(base_url)
        settings_module = "revopt.settings.bench"
    else:
        folder = tempfile.mkdtemp(prefix="revopt-bench-abandonment-")
        bench_url = f"sqlite:///{folder}/bench.sqlite3"
        settings_module = "revopt.settings.dev"

        def drop() -> None:
            shutil.rmtree(folder, ignore_errors=True)

    bench_environment_set(
        database_url=bench_url, name="abandonment", settings_module=settings_module, redis_fallback=""
    )
    try:
        return _run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if drop is not None:
            drop()


def _run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from events.services.abandonment import abandonment_model_train
    from revopt.tenancy.services import merchant_create

    call_command("migrate", verbosity=0)
    print(f"bench/abandonment: {connection.vendor}, {os.cpu_count()} CPUs, {args.carts:,} carts, {args.calls:,} calls")
    merchant = merchant_create(name="Bench Abandonment", slug="bench-abandonment")
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    session_ids = shop_generate(merchant=merchant, carts=args.carts, now=now, seed=args.seed)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics, as a live database has them
    print(f"generated in {time.perf_counter() - started:.0f} s")

    started = time.perf_counter()
    run = abandonment_model_train(merchant=merchant, now=now)
    seconds = time.perf_counter() - started
    metrics = run.metrics
    print(
        f"\ntraining   {seconds:.1f} s on {run.train_carts:,} + {run.test_carts:,} carts: test AUC "
        f"{metrics['auc']:.3f} (cart value + device {metrics['auc_baseline']:.3f}), Brier {metrics['brier']:.3f}, "
        f"calibration {metrics['calibration_method']}, artifact {len(run.artifact) / 1024:.0f} KiB"
    )
    scoring_measure(merchant=merchant, session_ids=session_ids, calls=args.calls, now=now, seed=args.seed)
    return 0


def scoring_measure(*, merchant, session_ids: list[str], calls: int, now: datetime, seed: int) -> None:
    from events.abandonment import SIGNAL_NAMES
    from events.models import AbandonmentModel, ModelRunStatus
    from events.selectors.abandonment import abandonment_score, cart_snapshot_live

    rng = np.random.default_rng(seed + 1)
    picks = rng.choice(len(session_ids), size=calls + 20)
    requests = [
        {
            "merchant": merchant,
            "customer": None,
            "session_external_id": session_ids[int(index)],
            "lines": [("SKU-1", 1, Decimal("35.00")), ("SKU-2", int(rng.integers(1, 3)), Decimal("12.50"))],
            "device": "mobile",
            "source": "google",
            "signals": {name: float(rng.integers(0, 4)) for name in SIGNAL_NAMES[:4]},
            "at": now,
        }
        for index in picks
    ]

    def lookups(request: dict) -> None:
        cart_snapshot_live(**request)

    def cached(request: dict) -> None:
        abandonment_score(merchant=merchant, snapshot=cart_snapshot_live(**request))

    def unpickled(request: dict) -> None:
        snapshot = cart_snapshot_live(**request)
        artifact = (
            AbandonmentModel.objects.for_merchant(merchant)
            .filter(status=ModelRunStatus.SUCCEEDED)
            .order_by("-finished_at")
            .values_list("artifact", flat=True)
            .first()
        )
        pickle.loads(bytes(artifact)).predict_snapshots([snapshot])

    cases = {"lookups": lookups, "cached": cached, "unpickled": unpickled}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for request in requests[:20]:  # warm-up
        for case in cases.values():
            case(request)
    for request in requests[20:]:
        for name, case in cases.items():
            tick = time.perf_counter()
            case(request)
            times[name].append(time.perf_counter() - tick)
    print(f"\nscoring per call over {calls:,} live carts (ms)")
    print(f"  {'case':<12}{'p50':>8}{'p95':>8}")
    p50 = {}
    for name, values in times.items():
        p50[name] = statistics.median(values) * 1000
        print(f"  {name:<12}{p50[name]:>8.2f}{np.percentile(values, 95) * 1000:>8.2f}")
    print(
        f"  cached / lookups {p50['cached'] / p50['lookups']:.2f}×; prediction alone "
        f"{p50['cached'] - p50['lookups']:.2f} ms; unpickled / cached {p50['unpickled'] / p50['cached']:.1f}×"
    )


def shop_generate(*, merchant, carts: int, now: datetime, seed: int) -> list[str]:
    """Customers, sessions, events and orders with bulk inserts; the cart sessions' external ids."""
    from events.models import Customer, Event, Order, Session

    rng = np.random.default_rng(seed)
    sessions_total = carts * 2
    customers = Customer.objects.bulk_create(
        [
            Customer(merchant=merchant, external_id=f"bench-{n}" if n % 2 else None, created_at=now)
            for n in range(sessions_total // 2)
        ],
        batch_size=5_000,
    )
    starts = sorted(now - timedelta(seconds=float(s)) for s in rng.uniform(3_600, DAYS * 86_400, sessions_total))
    devices = rng.choice(["mobile", "desktop", "tablet"], size=sessions_total, p=[0.6, 0.35, 0.05])
    sources = rng.choice(["", "google", "facebook", "newsletter"], size=sessions_total)
    sessions = Session.objects.bulk_create(
        [
            Session(
                merchant=merchant,
                external_id=f"bench-session-{n}",
                customer=customers[int(rng.integers(0, len(customers)))],
                started_at=starts[n],
                device=str(devices[n]),
                utm_source=str(sources[n]),
            )
            for n in range(sessions_total)
        ],
        batch_size=5_000,
    )
    is_cart = rng.random(sessions_total) < 0.5
    events: list[Event] = []
    orders: list[Order] = []
    cart_ids: list[str] = []
    counter = 0

    def emit(session: Session, name: str, at: datetime, **fields: object) -> None:
        nonlocal counter
        counter += 1
        events.append(
            Event(
                merchant=merchant,
                message_id=f"bench-{counter}",
                name=name,
                customer_id=session.customer_id,
                session=session,
                timestamp=at,
                received_at=at,
                device=session.device,
                **fields,
            )
        )

    for n, session in enumerate(sessions):
        clock = session.started_at
        emit(session, "Page Viewed", clock, properties={"path": "/"})
        for _ in range(int(rng.integers(1, 5))):
            clock += timedelta(seconds=float(rng.exponential(40)) + 1)
            emit(session, "Product Viewed", clock)
        if not is_cart[n]:
            continue
        cart_ids.append(session.external_id)
        hesitation = float(rng.normal())
        value = 0.0
        for _ in range(int(rng.integers(1, 3))):
            price = float(np.round(rng.lognormal(3.4, 0.5), 2))
            value += price
            clock += timedelta(seconds=float(rng.exponential(20)) + 1)
            emit(session, "Product Added", clock, price=Decimal(str(price)), quantity=1, properties={"sku": "SKU"})
        for path in ["/pages/shipping"] * int(rng.poisson(0.4 * np.exp(0.8 * hesitation))) + ["/pages/returns"] * int(
            rng.poisson(0.2 * np.exp(0.8 * hesitation))
        ):
            clock += timedelta(seconds=float(rng.exponential(25)) + 1)
            emit(session, "Page Viewed", clock, properties={"path": path})
        clock += timedelta(seconds=float(rng.exponential(20 * np.exp(0.8 * hesitation))) + 1)
        emit(session, "Cart Viewed", clock)
        buy = rng.random() < 1 / (1 + np.exp(-(-0.2 - hesitation + 0.004 * (value - 60))))
        if buy:
            clock += timedelta(seconds=60)
            emit(session, "Checkout Started", clock)
            orders.append(
                Order(
                    merchant=merchant,
                    external_id=f"bench-order-{n}",
                    message_id=f"bench-order-{n}",
                    customer_id=session.customer_id,
                    session=session,
                    placed_at=clock + timedelta(seconds=120),
                    subtotal=Decimal(str(round(value, 2))),
                    total=Decimal(str(round(value, 2))),
                )
            )
    Event.objects.bulk_create(events, batch_size=5_000)
    Order.objects.bulk_create(orders, batch_size=5_000)
    print(f"  {len(sessions):,} sessions, {len(cart_ids):,} carts, {len(events):,} events, {len(orders):,} orders")
    return cart_ids


if __name__ == "__main__":
    sys.exit(main())
