"""Pricing benchmark: proposals for 10k products in one run, beside a plain read of their order history.

    make bench-pricing        # = bin/with-services .venv/bin/python bench/pricing.py
    bin/with-services .venv/bin/python bench/pricing.py --products 10000 --days 90 --repeats 3

Needs PostgreSQL (DATABASE_URL). Everything happens in a throwaway database created next to the one
DATABASE_URL names and dropped at the end.

The shop (numpy, seeded, so every run has the same data; written with COPY through `revopt.db.insert_rows`):
`--products` products in 50 categories, log-normal list prices, costs at 40-70% of them; each product's price
moves weekly by up to ±10% and its daily units are Poisson around a log-log demand curve (elasticity per
category plus noise, a weekday pattern), over `--days` days up to yesterday: one order per product and day
with a sale (a few hundred thousand order lines at the defaults), a "Product Viewed" event at the day's price
on every day with a sale and on 30% of the others, 400 sessions a day. A shop-wide guardrail (at most 10% per
step, margin at least 10%) is set.

Timed (medians of `--repeats` interleaved runs after an untimed warm-up of the history read):
  fit        pricing.services.model.demand_model_fit: the demand panel from the database, the pooled fit, the
             estimates stored (`--fit-repeats`, 1 by default: it is the slow one);
  proposals  pricing.services.proposals.price_proposals_generate for every product: estimates, guardrail limits
             and contexts, the optimizer per product, the proposals stored in bulk (each run supersedes the last);
  history    one plain ORM query reading those products' order lines over the fit's history window (product,
             time, quantity, price, cost), materialised: the floor of anything that looks at their sales.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import bench_database_create, bench_environment_set  # noqa: E402

CATEGORIES = 50
SESSIONS_PER_DAY = 400
CUSTOMERS = 5_000
DAY_OF_WEEK = (0.95, 0.93, 0.95, 1.0, 1.08, 1.1, 0.99)  # Monday first
PRICE_STEPS = np.array([0.90, 0.95, 1.0, 1.0, 1.0, 1.05, 1.10])
VIEW_WITHOUT_SALE = 0.3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--statements", action="store_true", help="print the slowest statements of each run")
    args = parser.parse_args()
    if args.products < CATEGORIES or args.days < 14 or args.repeats < 1 or args.fit_repeats < 1:
        parser.error(f"at least {CATEGORIES} products, 14 days and one repeat")

    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")):
        print("bench/pricing.py needs PostgreSQL: run it as `make bench-pricing` (bin/with-services).")
        return 2
    warnings.filterwarnings("ignore", message="No directory at")
    bench_url, bench_database_drop = bench_database_create(base_url)
    bench_environment_set(database_url=bench_url, name="pricing")
    try:
        return _run(args)
    finally:
        from django.db import connections

        connections.close_all()
        bench_database_drop()


def _run(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from pricing.guardrails import GuardrailLimits
    from pricing.models import GuardrailScope
    from pricing.services.guardrails import guardrail_save
    from pricing.services.model import demand_model_fit
    from pricing.services.proposals import price_proposals_generate
    from revopt.tenancy.services import merchant_create

    print(
        f"bench/pricing: PostgreSQL {connection.cursor().connection.server_version}, {os.cpu_count()} CPUs, "
        f"{args.products:,} products × {args.days} days, seed {args.seed}, {args.repeats} repeats"
    )
    call_command("migrate", verbosity=0)
    merchant = merchant_create(name="Bench Pricing Shop", slug="bench-pricing")
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    counts = shop_generate(merchant=merchant, products=args.products, days=args.days, seed=args.seed, now=now)
    print(
        f"generated {counts['products']:,} products, {counts['lines']:,} order lines ({counts['units']:,} units), "
        f"{counts['views']:,} views, {counts['sessions']:,} sessions in {time.perf_counter() - started:.0f} s"
    )
    guardrail_save(
        merchant=merchant,
        actor=None,
        scope=GuardrailScope.MERCHANT,
        limits=GuardrailLimits(max_change_per_step=Decimal("0.10"), min_margin=Decimal("0.10")),
    )
    product_ids = list(merchant_product_ids(merchant))

    fit_times = []
    for repeat in range(1, args.fit_repeats + 1):
        started = time.perf_counter()
        run = demand_model_fit(merchant=merchant, now=now)
        fit_times.append(time.perf_counter() - started)
        print(
            f"  fit {repeat}/{args.fit_repeats}: {fit_times[-1]:6.2f} s ({run.status}, "
            f"{run.products_fitted:,} products, {run.product_days:,} product-days)",
            flush=True,
        )
    history_start = now - timedelta(days=run_history_days(merchant))

    def history_read() -> tuple[float, int]:
        from events.models import OrderLine

        started = time.perf_counter()
        rows = list(
            OrderLine.objects.for_merchant(merchant)
            .filter(product_id__in=product_ids, order__placed_at__gte=history_start, order__placed_at__lt=now)
            .values_list("product_id", "order__placed_at", "quantity", "unit_price", "unit_cost")
        )
        return time.perf_counter() - started, len(rows)

    history_read()  # warm-up: the same pages in the buffer cache for both
    proposal_times, history_times = [], []
    for repeat in range(1, args.repeats + 1):
        statements: list[tuple[float, str]] = []

        def timed_statement(execute, sql, params, many, context, statements=statements):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                statements.append((time.perf_counter() - started, " ".join(str(sql).split())))

        started = time.perf_counter()
        with connection.execute_wrapper(timed_statement):
            batch = price_proposals_generate(merchant=merchant, now=now, seed=args.seed + repeat)
        proposal_times.append(time.perf_counter() - started)
        in_sql = sum(duration for duration, _ in statements)
        seconds, lines = history_read()
        history_times.append(seconds)
        skipped = ", ".join(f"{reason} {count:,}" for reason, count in sorted(batch.skipped.items()) if count)
        skipped = f"; skipped {skipped}" if skipped else ""
        print(
            f"  repeat {repeat}/{args.repeats}  proposals {proposal_times[-1]:6.2f} s ({batch.created:,} created, "
            f"{batch.superseded:,} superseded, {len(statements)} statements taking {in_sql:.2f} s{skipped})"
            f"   history {seconds:6.3f} s ({lines:,} order lines)",
            flush=True,
        )
        if args.statements:
            for duration, sql in sorted(statements, reverse=True)[:3]:
                print(f"    {duration:7.3f} s  {sql[:110]}")

    proposals, history, fit = (statistics.median(t) for t in (proposal_times, history_times, fit_times))
    print(
        f"\n{'products':>10}{'fit s':>10}{'proposals s':>14}{'history s':>12}{'ratio':>9}   runs (proposals | history)"
    )
    runs = ", ".join(f"{t:.2f}" for t in proposal_times) + " | " + ", ".join(f"{t:.3f}" for t in history_times)
    print(f"{args.products:>10,}{fit:>10.2f}{proposals:>14.2f}{history:>12.3f}{proposals / history:>8.1f}x   {runs}")
    return 0


def merchant_product_ids(merchant) -> list[int]:
    from catalog.models import Product

    return list(Product.objects.for_merchant(merchant).order_by("pk").values_list("pk", flat=True))


def run_history_days(merchant) -> int:
    from pricing.selectors.guardrails import pricing_settings_for

    return pricing_settings_for(merchant=merchant).history_days


def shop_generate(*, merchant, products: int, days: int, seed: int, now: datetime) -> dict[str, int]:
    """The catalog, shoppers, sessions, orders, lines and views; deterministic from `seed`."""
    from django.db import connection, transaction

    from catalog.models import Category, Product
    from events.models import Customer, Event, Order, OrderLine, Session
    from revopt.db import insert_rows

    rng = np.random.default_rng(seed)
    category = np.arange(products) % CATEGORIES
    list_price = np.maximum(np.round(np.exp(rng.normal(np.log(35.0), 0.6, size=products)), 0) - 0.01, 1.99)
    cost = np.round(list_price * rng.uniform(0.40, 0.70, size=products), 2)
    elasticity = np.clip(
        rng.uniform(-2.3, -1.1, size=CATEGORIES)[category] + rng.normal(0, 0.4, size=products), -3, -0.5
    )
    base_units = np.exp(rng.normal(np.log(0.25), 0.8, size=products))
    weeks = days // 7 + 1
    step = PRICE_STEPS[rng.integers(len(PRICE_STEPS), size=(products, weeks))]
    first_day = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0)
    day_starts = [first_day + timedelta(days=d) for d in range(days)]
    weekday = np.array([DAY_OF_WEEK[start.weekday()] for start in day_starts])
    multiplier = step[:, np.arange(days) // 7]  # products × days
    price = np.round(list_price[:, None] * multiplier, 2)
    units = rng.poisson(base_units[:, None] * weekday[None, :] * multiplier ** elasticity[:, None])
    viewed = (units > 0) | (rng.random(units.shape) < VIEW_WITHOUT_SALE)
    hour = rng.uniform(0, 23.9, size=units.shape)

    with transaction.atomic():
        Category.objects.bulk_create(
            [
                Category(merchant=merchant, name=f"Category {c:02d}", path=f"Bench > Category {c:02d}")
                for c in range(CATEGORIES)
            ]
        )
        category_ids = list(Category.objects.for_merchant(merchant).order_by("path").values_list("pk", flat=True))
        Product.objects.bulk_create(
            [
                Product(
                    merchant=merchant,
                    sku=f"B-{j:05d}",
                    title=f"Bench product {j}",
                    category_id=category_ids[int(category[j])],
                    price=Decimal(f"{price[j, -1]:.2f}"),
                    cost=Decimal(f"{cost[j]:.2f}"),
                    inventory=int(rng.integers(50, 2000)),
                )
                for j in range(products)
            ],
            batch_size=2000,
        )
        product_ids = list(Product.objects.for_merchant(merchant).order_by("sku").values_list("pk", flat=True))
        Customer.objects.bulk_create(
            [Customer(merchant=merchant, external_id=f"c-{i}", created_at=first_day) for i in range(CUSTOMERS)],
            batch_size=5000,
        )
        customer_ids = np.array(Customer.objects.for_merchant(merchant).order_by("pk").values_list("pk", flat=True))
        session_rows = [
            (
                merchant.pk,
                f"s-{d}-{k}",
                int(customer_ids[(d * SESSIONS_PER_DAY + k) % CUSTOMERS]),
                start + timedelta(minutes=3 * k),
                "mobile",
                "",
                "",
                "",
            )
            for d, start in enumerate(day_starts)
            for k in range(SESSIONS_PER_DAY)
        ]
        insert_rows(
            model=Session,
            columns=[
                "merchant_id",
                "external_id",
                "customer_id",
                "started_at",
                "device",
                "utm_source",
                "utm_medium",
                "utm_campaign",
            ],
            rows=session_rows,
        )

        sold_j, sold_d = np.nonzero(units)
        buyers = customer_ids[rng.integers(CUSTOMERS, size=len(sold_j))]
        order_rows, line_rows = [], []
        for n, (j, d) in enumerate(zip(sold_j.tolist(), sold_d.tolist(), strict=True), start=1):
            placed_at = day_starts[d] + timedelta(hours=float(hour[j, d]))
            quantity = int(units[j, d])
            total = Decimal(f"{price[j, d] * quantity:.2f}")
            order_rows.append(
                (
                    n,
                    merchant.pk,
                    f"o-{n}",
                    int(buyers[n - 1]),
                    f"o-{n}",
                    placed_at,
                    "USD",
                    total,
                    Decimal("0"),
                    Decimal("0"),
                    Decimal("0"),
                    total,
                    "",
                    "completed",
                )
            )
            line_rows.append(
                (
                    merchant.pk,
                    n,
                    product_ids[j],
                    f"B-{j:05d}",
                    quantity,
                    Decimal(f"{price[j, d]:.2f}"),
                    Decimal(f"{cost[j]:.2f}"),
                )
            )
        insert_rows(
            model=Order,
            columns=[
                "id",
                "merchant_id",
                "external_id",
                "customer_id",
                "message_id",
                "placed_at",
                "currency",
                "subtotal",
                "discount",
                "shipping",
                "tax",
                "total",
                "coupon",
                "status",
            ],
            rows=order_rows,
        )
        insert_rows(
            model=OrderLine,
            columns=["merchant_id", "order_id", "product_id", "sku", "quantity", "unit_price", "unit_cost"],
            rows=line_rows,
        )
        view_j, view_d = np.nonzero(viewed)
        viewers = customer_ids[rng.integers(CUSTOMERS, size=len(view_j))]
        view_rows = []
        for n, (j, d) in enumerate(zip(view_j.tolist(), view_d.tolist(), strict=True)):
            at = day_starts[d] + timedelta(hours=max(float(hour[j, d]) - 0.05, 0.0))
            view_rows.append(
                (
                    merchant.pk,
                    f"v-{j}-{d}",
                    "Product Viewed",
                    int(viewers[n]),
                    "",
                    at,
                    at,
                    "mobile",
                    {"sku": f"B-{j:05d}", "price": float(price[j, d])},
                    {},
                    product_ids[j],
                    Decimal(f"{price[j, d]:.2f}"),
                )
            )
        insert_rows(
            model=Event,
            columns=[
                "merchant_id",
                "message_id",
                "name",
                "customer_id",
                "anonymous_id",
                "timestamp",
                "received_at",
                "device",
                "properties",
                "context",
                "product_id",
                "price",
            ],
            rows=view_rows,
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('events_order', 'id'), (SELECT MAX(id) FROM events_order))"
            )
    with connection.cursor() as cursor:
        for table in ("catalog_product", "events_session", "events_order", "events_orderline", "events_event"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return {
        "products": products,
        "lines": len(line_rows),
        "units": int(units.sum()),
        "views": len(view_rows),
        "sessions": len(session_rows),
    }


if __name__ == "__main__":
    sys.exit(main())
