"""Ingest benchmark: events/s through the API and the service layer, beside raw PostgreSQL COPY.

    make bench                      # = bin/with-services .venv/bin/python bench/ingest.py
    bin/with-services .venv/bin/python bench/ingest.py --batches 20 --repeats 3 --profile

Needs PostgreSQL (DATABASE_URL). Everything happens in a throwaway database created next to the one
DATABASE_URL names and dropped at the end, so it is safe to point at a development database.

Three ways of writing the same realistic Segment batches (a shop's mix of Product Viewed, Product
Added, Checkout Started and Order Completed from many anonymous and logged-in shoppers):

  copy     the raw floor: the batch's rows, already resolved to events_event columns (customers and
           sessions created beforehand, outside the timing), serialised to COPY text and written
           with one COPY per batch. No loader can write these rows faster; serialisation is timed.
  service  events.services.event_batch_ingest(merchant=..., events=batch): validation,
           deduplication, identity resolution, sessions, orders, everything.
  api      POST /api/v1/events through Django's test client with an API key: the service plus
           middleware, authentication, JSON parsing and the response (in-process, no network).

Every run writes fresh rows (its own message, shopper, session and order ids) of the same shape and
volume; each mode runs once per repeat, interleaved, after one uncounted warm-up batch. The target
is the service layer at >= 50% of COPY's events/s.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import os
import pstats
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SERVICE_SHARE = 0.5
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
]
DEVICES = ["mobile"] * 55 + ["desktop"] * 38 + ["tablet"] * 7
CAMPAIGNS = [
    None,
    None,
    None,
    {"source": "google", "medium": "cpc", "name": "brand"},
    {"source": "newsletter", "medium": "email", "name": "spring-sale"},
    {"source": "instagram", "medium": "social", "name": "reels"},
]


# --- synthetic shop traffic -------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogItem:
    external_id: str
    sku: str
    price: Decimal


@dataclass
class Shopper:
    anonymous_id: str
    user_id: str | None


@dataclass
class Traffic:
    """A run's batches, plus the shoppers and sessions behind them (the COPY baseline pre-resolves these)."""

    batches: list[list[dict]]
    shoppers: dict[str, Shopper] = field(default_factory=dict)  # by anonymous id
    sessions: dict[str, tuple[str, str, datetime]] = field(default_factory=dict)  # id -> (anon id, device, start)


def traffic_generate(
    *, namespace: str, catalog: list[CatalogItem], batches: int, batch_size: int, seed: int, now: datetime
) -> Traffic:
    """Sessions of browsing, carting and buying, cut into batches in arrival order.

    The same seed gives the same shape whatever the namespace, so every run writes the same volume.
    """
    rng = random.Random(seed)
    traffic = Traffic(batches=[])
    events: list[dict] = []
    total = batches * batch_size
    message_ids = itertools.count(1)
    order_ids = itertools.count(1)
    shoppers: list[Shopper] = []

    for session_number in itertools.count(1):
        if len(events) >= total:
            break
        if shoppers and rng.random() < 0.3:
            shopper = rng.choice(shoppers)
        else:
            shopper = Shopper(
                anonymous_id=f"{namespace}-anon-{len(shoppers)}",
                user_id=f"{namespace}-user-{len(shoppers)}" if rng.random() < 0.35 else None,
            )
            shoppers.append(shopper)
            traffic.shoppers[shopper.anonymous_id] = shopper
        session_id = f"{namespace}-session-{session_number}"
        device = rng.choice(DEVICES)
        started = now - timedelta(hours=48) + timedelta(seconds=rng.randrange(47 * 3600))
        traffic.sessions[session_id] = (shopper.anonymous_id, device, started)
        events.extend(
            _session_events(
                rng=rng,
                namespace=namespace,
                shopper=shopper,
                session_id=session_id,
                device=device,
                started=started,
                catalog=catalog,
                message_ids=message_ids,
                order_ids=order_ids,
            )
        )

    events = events[:total]
    traffic.batches = [events[start : start + batch_size] for start in range(0, total, batch_size)]
    return traffic


def _session_events(
    *,
    rng: random.Random,
    namespace: str,
    shopper: Shopper,
    session_id: str,
    device: str,
    started: datetime,
    catalog: list[CatalogItem],
    message_ids: Iterator[int],
    order_ids: Iterator[int],
) -> list[dict]:
    """One visit: views, sometimes adds to cart, sometimes checks out, sometimes buys."""
    context: dict = {"device": {"type": device}, "locale": "en-US", "userAgent": rng.choice(USER_AGENTS)}
    campaign = rng.choice(CAMPAIGNS)
    if campaign:
        context["campaign"] = campaign
    events: list[dict] = []
    clock = started

    def emit(name: str, properties: dict) -> None:
        nonlocal clock
        clock += timedelta(seconds=rng.randrange(5, 90))
        event = {
            "type": "track",
            "event": name,
            "messageId": f"{namespace}-msg-{next(message_ids)}",
            "anonymousId": shopper.anonymous_id,
            "timestamp": clock.isoformat(),
            "sessionId": session_id,
            "properties": properties,
            "context": context,
        }
        if shopper.user_id:
            event["userId"] = shopper.user_id
        events.append(event)

    def product_properties(item: CatalogItem, quantity: int = 1) -> dict:
        # Shops send Segment's product_id mostly; some send only the SKU.
        reference = {"product_id": item.external_id} if rng.random() < 0.8 else {"sku": item.sku}
        return {**reference, "price": float(item.price), "quantity": quantity, "currency": "USD"}

    viewed = [rng.choice(catalog) for _ in range(1 + min(int(rng.expovariate(1 / 5)), 30))]
    for item in viewed:
        emit("Product Viewed", product_properties(item))
    cart: list[tuple[CatalogItem, int]] = []
    if rng.random() < 0.35:
        for item in rng.sample(viewed, k=min(len(viewed), rng.choice([1, 1, 1, 2, 3]))):
            quantity = rng.choice([1, 1, 1, 2])
            cart.append((item, quantity))
            emit("Product Added", product_properties(item, quantity))
    if not cart or rng.random() >= 0.5:
        return events
    subtotal = sum((item.price * quantity for item, quantity in cart), Decimal("0"))
    emit("Checkout Started", {"value": float(subtotal), "currency": "USD"})
    if rng.random() >= 0.6:
        return events
    shipping = Decimal("0") if subtotal >= 50 else Decimal("4.95")
    tax = (subtotal * Decimal("0.08")).quantize(Decimal("0.01"))
    emit(
        "Order Completed",
        {
            "order_id": f"{namespace}-order-{next(order_ids)}",
            "subtotal": float(subtotal),
            "total": float(subtotal + shipping + tax),
            "shipping": float(shipping),
            "tax": float(tax),
            "discount": 0,
            "coupon": "",
            "currency": "USD",
            "products": [
                {"product_id": item.external_id, "price": float(item.price), "quantity": quantity}
                for item, quantity in cart
            ],
        },
    )
    return events


# --- the throwaway database -------------------------------------------------------------------


def bench_database_create(base_url: str) -> tuple[str, Callable[[], None]]:
    """Create an empty database beside the one `base_url` names; return its URL and a dropper."""
    import psycopg2

    parts = urlsplit(base_url)
    name = f"revopt_bench_{os.getpid()}"
    admin = psycopg2.connect(base_url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()

    def drop() -> None:
        admin = psycopg2.connect(base_url)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return urlunsplit(parts._replace(path=f"/{name}")), drop


def bench_environment_set(
    *,
    database_url: str,
    name: str,
    settings_module: str = "revopt.settings.bench",
    redis_fallback: str = "redis://127.0.0.1:1/0",
) -> None:
    """The production-like settings a benchmark runs under, on the throwaway database. Production settings need
    a REDIS_URL: without one from bin/with-services, `redis_fallback` (by default a port nothing listens on,
    for benches that never touch the cache)."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": settings_module,
            "DATABASE_URL": database_url,
            "SECRET_KEY": os.environ.get("SECRET_KEY") or f"bench-{name}-not-secret",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "REDIS_URL": os.environ.get("REDIS_URL") or redis_fallback,
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
            "DEBUG": "false",
        }
    )


# --- the three writers ------------------------------------------------------------------------


class CopyWriter:
    """Pre-resolves a run's rows to events_event columns, then times serialise + COPY per batch."""

    def __init__(self, *, merchant, catalog_ids: dict[str, int], sku_ids: dict[str, int]) -> None:
        from events.models import Event

        self.merchant = merchant
        self.catalog_ids = catalog_ids
        self.sku_ids = sku_ids
        self.fields = [f for f in Event._meta.concrete_fields if not f.primary_key]
        self.table = Event._meta.db_table
        self.columns = [f.column for f in self.fields]

    def prepare(self, traffic: Traffic) -> list[list[tuple]]:
        """Create the run's customers and sessions (untimed) and resolve every event to a row."""
        from events.models import Customer, Session

        now = datetime.now(UTC)
        customers = {
            anonymous_id: Customer(merchant=self.merchant, external_id=shopper.user_id, created_at=now)
            for anonymous_id, shopper in traffic.shoppers.items()
        }
        Customer.objects.bulk_create(customers.values(), batch_size=2000)
        sessions = {
            session_id: Session(
                merchant=self.merchant,
                external_id=session_id,
                customer=customers[anonymous_id],
                started_at=started,
                device=device,
            )
            for session_id, (anonymous_id, device, started) in traffic.sessions.items()
        }
        Session.objects.bulk_create(sessions.values(), batch_size=2000)

        received_at = now.isoformat()
        rows = []
        for batch in traffic.batches:
            batch_rows = []
            for event in batch:
                properties = event["properties"]
                product_id = None
                if "product_id" in properties:
                    product_id = self.catalog_ids[properties["product_id"]]
                elif "sku" in properties:
                    product_id = self.sku_ids[properties["sku"]]
                values = {
                    "merchant_id": self.merchant.pk,
                    "message_id": event["messageId"],
                    "name": event["event"],
                    "customer_id": customers[event["anonymousId"]].pk,
                    "anonymous_id": event["anonymousId"],
                    "session_id": sessions[event["sessionId"]].pk,
                    "product_id": product_id,
                    "timestamp": event["timestamp"],
                    "received_at": received_at,
                    "price": properties.get("price") if product_id else None,
                    "quantity": properties.get("quantity") if product_id else None,
                    "device": event["context"]["device"]["type"],
                    "properties": properties,
                    "context": event["context"],
                }
                # Columns added to Event later get their default, so the baseline keeps working.
                batch_rows.append(
                    tuple(values[f.attname] if f.attname in values else f.get_default() for f in self.fields)
                )
            rows.append(batch_rows)
        return rows

    def write(self, rows: list[tuple]) -> int:
        from django.db import transaction

        from revopt.db import copy_rows

        # The same serialiser and COPY call the service uses, so the ratio measures only the
        # service's own work (validation, lookups, identities, sessions, orders).
        with transaction.atomic():
            copy_rows(table=self.table, columns=self.columns, rows=rows)
        return len(rows)


def _outcome(result) -> tuple[int, int, int, list]:
    """(accepted, duplicate, rejected, results) from a BatchResult or the API's JSON answer."""
    if isinstance(result, dict):
        return result["accepted"], result["duplicate"], result["rejected"], result.get("results", [])
    get = lambda name, default=0: getattr(result, name, default)  # noqa: E731
    return get("accepted"), get("duplicate"), get("rejected"), list(get("results", []) or [])


def _check_outcome(mode: str, result, expected: int) -> None:
    accepted, duplicate, rejected, results = _outcome(result)
    if accepted != expected:
        status_of = lambda r: r.get("status") if isinstance(r, dict) else getattr(r, "status", None)  # noqa: E731
        errors = [r for r in results if status_of(r) != "accepted"]
        raise SystemExit(
            f"{mode}: accepted {accepted} of {expected} (duplicate {duplicate}, rejected {rejected}); "
            f"first problems: {errors[:3]}"
        )


class ServiceWriter:
    def __init__(self, *, merchant) -> None:
        from events.services import event_batch_ingest

        self.merchant = merchant
        self.ingest = event_batch_ingest

    def prepare(self, traffic: Traffic) -> list[list[dict]]:
        return traffic.batches

    def write(self, batch: list[dict]) -> int:
        result = self.ingest(merchant=self.merchant, events=batch)
        _check_outcome("service", result, len(batch))
        return len(batch)


class ApiWriter:
    def __init__(self, *, raw_key: str) -> None:
        from django.test import Client

        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    def prepare(self, traffic: Traffic) -> list[tuple[bytes, int]]:
        # What a client puts on the wire is the client's cost, not the server's.
        return [(json.dumps({"batch": batch}).encode(), len(batch)) for batch in traffic.batches]

    def write(self, body_and_size: tuple[bytes, int]) -> int:
        body, size = body_and_size
        response = self.client.post("/api/v1/events", data=body, content_type="application/json")
        if response.status_code != 200:
            raise SystemExit(f"api: HTTP {response.status_code}: {response.content[:500]!r}")
        _check_outcome("api", response.json(), size)
        return size


# --- the run ----------------------------------------------------------------------------------


def catalog_create(*, merchant, products: int, seed: int) -> list[CatalogItem]:
    from catalog.models import Category, Product

    rng = random.Random(seed)
    departments = ["Outdoor", "Kitchen", "Apparel", "Electronics", "Garden"]
    categories = []
    for department in departments:
        parent = Category.objects.create(merchant=merchant, name=department, path=department)
        categories.append(parent)
        for leaf in ("Basics", "Premium", "Accessories"):
            categories.append(
                Category.objects.create(merchant=merchant, name=leaf, path=f"{department} > {leaf}", parent=parent)
            )
    rows = []
    for index in range(products):
        price = Decimal(str(round(rng.lognormvariate(3.3, 0.7), 2))).max(Decimal("1.00"))
        rows.append(
            Product(
                merchant=merchant,
                sku=f"SKU-{index:05d}",
                external_id=f"prod-{index:05d}",
                title=f"Bench product {index}",
                brand=rng.choice(["Acme", "Northwind", "Globex", "Initech"]),
                category=rng.choice(categories),
                price=price,
                cost=(price * Decimal("0.55")).quantize(Decimal("0.01")),
                inventory=rng.randrange(0, 200),
                attributes={"color": rng.choice(["red", "blue", "black", "green"])},
            )
        )
    Product.objects.bulk_create(rows)
    return [CatalogItem(external_id=p.external_id, sku=p.sku, price=p.price) for p in rows]


def run_mode(name: str, writer, traffic: Traffic, *, progress: bool) -> float:
    """Write the warm-up batch (uncounted), then time the rest; return events/s."""
    from tqdm import tqdm

    prepared = writer.prepare(traffic)
    writer.write(prepared[0])
    timed = prepared[1:]
    events = 0
    started = time.perf_counter()
    for batch in tqdm(timed, desc=f"{name:>8}", unit="batch", leave=False, disable=not progress):
        events += writer.write(batch)
    elapsed = time.perf_counter() - started
    return events / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per run (plus one warm-up)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--modes", default="copy,service,api")
    parser.add_argument("--profile", action="store_true", help="cProfile one extra service batch and print it")
    args = parser.parse_args()
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]

    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")):
        print("bench/ingest.py needs PostgreSQL: run it as `make bench` (bin/with-services) or set DATABASE_URL.")
        return 2

    os.environ["DJANGO_SETTINGS_MODULE"] = "revopt.settings.base"
    # The static-files middleware warns when collectstatic has not run; the bench serves no static files.
    warnings.filterwarnings("ignore", message="No directory at")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    bench_url, bench_database_drop = bench_database_create(base_url)
    os.environ["DATABASE_URL"] = bench_url
    try:
        return _run(args, modes)
    finally:
        from django.db import connections

        connections.close_all()
        bench_database_drop()


def _run(args, modes: list[str]) -> int:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from revopt.tenancy.services import api_key_create, merchant_create

    server_version = connection.cursor().connection.server_version
    print(f"bench/ingest: PostgreSQL {server_version}, database {connection.settings_dict['NAME']}")
    call_command("migrate", verbosity=0)
    merchant = merchant_create(name="Bench Shop", slug="bench-shop")
    raw_key = api_key_create(merchant=merchant, name="bench").raw_key
    catalog = catalog_create(merchant=merchant, products=args.products, seed=args.seed)
    # Only the catalog: statistics taken on the still-empty event tables would make PostgreSQL's cached
    # foreign-key check plans scan those tables sequentially as they fill (autovacuum fixes it later).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_product, catalog_category")

    writers: dict[str, object] = {}
    if "copy" in modes:
        writers["copy"] = CopyWriter(
            merchant=merchant,
            catalog_ids={p.external_id: p.pk for p in _products(merchant)},
            sku_ids={p.sku: p.pk for p in _products(merchant)},
        )
    if "service" in modes:
        writers["service"] = ServiceWriter(merchant=merchant)
    if "api" in modes:
        writers["api"] = ApiWriter(raw_key=raw_key)

    now = datetime.now(UTC)
    per_run = args.batches * args.batch_size
    print(
        f"{len(catalog)} products; each run: 1 warm-up + {args.batches} batches x {args.batch_size} events "
        f"= {per_run} timed events; {args.repeats} repeats of {', '.join(writers)}"
    )
    rates: dict[str, list[float]] = {mode: [] for mode in writers}
    progress = sys.stderr.isatty()
    for repeat in range(1, args.repeats + 1):
        for mode, writer in writers.items():
            traffic = traffic_generate(
                namespace=f"{mode}{repeat}",
                catalog=catalog,
                batches=args.batches + 1,
                batch_size=args.batch_size,
                seed=args.seed,
                now=now,
            )
            rate = run_mode(mode, writer, traffic, progress=progress)
            rates[mode].append(rate)
            print(f"  repeat {repeat}/{args.repeats}  {mode:<8} {rate:>10,.0f} events/s", flush=True)

    medians = {mode: statistics.median(values) for mode, values in rates.items()}
    print()
    print(f"{'mode':<10}{'median events/s':>18}{'runs':>40}{'share of COPY':>16}")
    for mode, median in medians.items():
        runs = ", ".join(f"{value:,.0f}" for value in rates[mode])
        share = f"{median / medians['copy']:.1%}" if "copy" in medians else "-"
        print(f"{mode:<10}{median:>18,.0f}{runs:>40}{share:>16}")
    status = 0
    if "copy" in medians and "service" in medians:
        share = medians["service"] / medians["copy"]
        verdict = "PASS" if share >= TARGET_SERVICE_SHARE else "FAIL"
        print(f"\ntarget: service layer >= {TARGET_SERVICE_SHARE:.0%} of COPY: {share:.1%} -> {verdict}")
        if "api" in medians:
            api_share = medians["api"] / medians["copy"]
            print(f"api / COPY: {api_share:.1%}   api / service: {medians['api'] / medians['service']:.1%}")

    if args.profile and "service" in writers:
        traffic = traffic_generate(
            namespace="profile", catalog=catalog, batches=2, batch_size=args.batch_size, seed=args.seed, now=now
        )
        writers["service"].write(traffic.batches[0])
        statements: list[tuple[float, str]] = []

        def timed_statement(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                statements.append((time.perf_counter() - started, " ".join(str(sql).split())))

        with connection.execute_wrapper(timed_statement):
            started = time.perf_counter()
            writers["service"].write(traffic.batches[1])
            wall = time.perf_counter() - started
        print(f"\n--- SQL of one service batch ({args.batch_size} events, {wall * 1000:.0f} ms wall, unprofiled) ---")
        in_execute = sum(duration for duration, _ in statements)
        print(f"{len(statements)} statements, {in_execute * 1000:.0f} ms in execute (COPY and commit not included)")
        for duration, sql in statements:
            print(f"  {duration * 1000:7.1f} ms  {sql[:150]}")

        traffic = traffic_generate(
            namespace="profile2", catalog=catalog, batches=1, batch_size=args.batch_size, seed=args.seed + 1, now=now
        )
        profiler = cProfile.Profile()
        profiler.enable()
        writers["service"].write(traffic.batches[0])
        profiler.disable()
        for order in ("cumulative", "tottime"):
            print(f"\n--- cProfile of one service batch ({args.batch_size} events), by {order} ---")
            pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats(order).print_stats(30)
    return status


def _products(merchant):
    from catalog.models import Product

    return Product.objects.for_merchant(merchant).only("pk", "sku", "external_id")


if __name__ == "__main__":
    sys.exit(main())
