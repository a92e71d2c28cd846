"""Serving benchmark: GET /api/v1/recommendations under concurrent load on gunicorn, beside a bare endpoint.

    make bench-recommend            # = bin/with-services .venv/bin/python bench/recommend.py
    bin/with-services .venv/bin/python bench/recommend.py --servers sync:2,sync:3,gthread:2x4 --repeats 3
    bin/with-services .venv/bin/python bench/recommend.py --profile --servers ""   # where the time goes

Needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL), and `wrk` (installed through bin/system-packages).
Everything happens in a throwaway database created next to the one DATABASE_URL names and dropped at
the end; cache keys carry a per-run prefix.

1. Seed: a merchant, a simulated shop (revopt.simulator: catalog import, sessions through the events
   API) and a published model: `recommendations.services.training.recommender_train` on that data.
2. Serve: gunicorn with production settings (revopt.settings.bench: DEBUG off, PostgreSQL, the Redis
   cache, the whole middleware stack) plus two bench-only URLs (bench/urls.py): `/bench/bare`, a view
   returning a tiny JsonResponse, the floor any Django endpoint on this server pays; and `/bench/auth`,
   a DRF view behind the storefront's API-key authentication returning the same: what any storefront
   endpoint pays before its own work. Default: 2 sync workers, which did as well as 3 sync or 2x4
   gthread on 2 cores (the work is CPU-bound, more workers only add switching and tail latency).
3. Load: `wrk` with a Lua script rotating through prepared requests: placements home / pdp / cart /
   post_purchase / email, known customers, known and never-seen anonymous visitors with their live
   sessions, product pages, carts and category filters. Each endpoint runs `--repeats` times,
   interleaved, after a warm-up; the table shows medians.
4. `--profile`: the request path in-process on the same data: wall, CPU and SQL time per request, the
   slowest statements with PostgreSQL's plan of the worst, a pyinstrument tree (wall) and a cProfile
   by CPU time.

Targets (issue 3): recommendations p99 <= 25 ms at >= 500 req/s on 2 cores, and >= 50% of the bare
endpoint's throughput. wrk keeps `--connections` requests in flight (a closed loop): with 2 the server
is lightly loaded and the percentiles are the request's own latency; with 8 it is saturated, req/s is
its capacity and the percentiles include queueing.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import bench_database_create  # noqa: E402

TARGET_P99_MS = 25.0
TARGET_RATE = 500.0
TARGET_SHARE_OF_BARE = 0.5
BARE_PATH = "/bench/bare"
AUTH_PATH = "/bench/auth"
RECOMMENDATIONS_PATH = "/api/v1/recommendations"
# Share of requests per placement: the home page and product pages carry most traffic.
PLACEMENT_MIX = (("home", 0.45), ("pdp", 0.30), ("cart", 0.12), ("post_purchase", 0.05), ("email", 0.08))

LUA_SCRIPT = """
local paths = dofile("{paths_file}")
local headers = {{ ["Authorization"] = "Bearer {raw_key}", ["Accept"] = "application/json" }}
local threads_started = 0
local counter = 0

function setup(thread)
  thread:set("thread_number", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  -- Threads start at different places in the rotation, so they do not ask the same thing in step.
  counter = (thread_number or 0) * 7919
end

function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1], headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


# --- the shop ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    raw_key: str
    paths: list[str]
    summary: str


def shop_seed(*, sessions: int, products: int, days: int, seed: int, request_count: int, progress: bool) -> Shop:
    """A simulated shop with a trained, published model, and a rotation of realistic requests for it."""
    from django.core.management import call_command

    from events.services import data_quality_report_create
    from revopt.simulator.services import simulation_run
    from revopt.simulator.world import WorldConfig
    from revopt.tenancy.services import api_key_create, merchant_create

    call_command("migrate", verbosity=0)
    merchant = merchant_create(name="Bench Shop", slug="bench-shop")
    started = time.perf_counter()
    config = WorldConfig(seed=seed, n_sessions=sessions, days=days, n_products=products, n_categories=12)
    simulation_run(merchant=merchant, config=config, progress=progress)
    simulated = time.perf_counter() - started
    data_quality_report_create(merchant=merchant)

    started = time.perf_counter()
    version = model_publish(merchant=merchant)
    trained = time.perf_counter() - started
    raw_key = api_key_create(merchant=merchant, name="bench").raw_key
    paths, counts = request_paths(merchant=merchant, count=request_count, seed=seed)
    summary = (
        f"{counts['products']:,} products, {counts['customers']:,} customers ({counts['identified']:,} identified), "
        f"{counts['events']:,} events; simulated in {simulated:.0f} s; model v{version.number} "
        f"({version.status}) trained and published in {trained:.0f} s"
    )
    return Shop(raw_key=raw_key, paths=paths, summary=summary)


def model_publish(*, merchant):
    """Train on the simulated shop and make the version active (the cache is warmed on activation)."""
    from recommendations.models import RecommenderVersion, VersionStatus
    from recommendations.services.training import recommender_train

    version = recommender_train(merchant=merchant, trigger="bench")
    version.refresh_from_db()
    if version.status != VersionStatus.ACTIVE:
        raise SystemExit(f"bench/recommend: training left v{version.number} {version.status}: {version.status_reason}")
    return RecommenderVersion.objects.get(pk=version.pk)


def request_paths(*, merchant, count: int, seed: int) -> tuple[list[str], dict[str, int]]:
    """`count` request paths in a shuffled rotation: each placement with the visitors and context it gets."""
    from catalog.models import Category, Product
    from events.models import Customer, Event, Order, Session

    rng = random.Random(seed)
    products = list(
        Product.objects.for_merchant(merchant).filter(is_active=True, inventory__gt=0).values_list("external_id", "sku")
    )
    product_refs = [external_id or sku for external_id, sku in products]
    categories = list(Category.objects.for_merchant(merchant).values_list("pk", flat=True))
    identified = list(
        Customer.objects.for_merchant(merchant).filter(external_id__isnull=False).values_list("external_id", flat=True)
    )
    buyers = list(
        Order.objects.for_merchant(merchant)
        .filter(customer__external_id__isnull=False)
        .values_list("customer__external_id", flat=True)
        .distinct()
    )
    # Live sessions: (session id, the anonymous id it was browsed under), the real-time re-rank's input.
    sessions = list(
        Session.objects.for_merchant(merchant)
        .filter(events__name="Product Viewed")
        .values_list("external_id", "events__anonymous_id")
        .distinct()[:5000]
    )
    counts = {
        "products": len(products),
        "customers": Customer.objects.for_merchant(merchant).count(),
        "identified": len(identified),
        "events": Event.objects.for_merchant(merchant).count(),
    }
    if not product_refs or not identified or not sessions:
        raise SystemExit("bench/recommend: the simulated shop has no products, customers or sessions")

    placements = [name for name, _ in PLACEMENT_MIX]
    weights = [share for _, share in PLACEMENT_MIX]
    paths = []
    for index in range(count):
        placement = rng.choices(placements, weights)[0]
        params: dict[str, object] = {"placement": placement}
        visitor = rng.random()
        if placement in ("post_purchase", "email"):
            params["customer_id"] = rng.choice(buyers or identified)
        elif visitor < 0.45:
            params["customer_id"] = rng.choice(identified)
        elif visitor < 0.85:
            session_id, anonymous_id = rng.choice(sessions)
            params.update(anonymous_id=anonymous_id, session_id=session_id)
        else:
            params["anonymous_id"] = f"bench-new-visitor-{index}"
        if placement == "pdp":
            params["product_id"] = rng.choice(product_refs)
        elif placement == "cart":
            params["cart"] = ",".join(rng.sample(product_refs, k=min(len(product_refs), rng.choice([1, 1, 2, 3]))))
        elif placement == "home" and rng.random() < 0.25 and categories:
            params["category"] = str(rng.choice(categories))
        if rng.random() < 0.5:
            params["device"] = rng.choice(["mobile", "desktop", "tablet"])
        paths.append(f"{RECOMMENDATIONS_PATH}?{urlencode(params)}")
    return paths, counts


# --- the server and the load ------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    worker_class: str  # sync | gthread
    workers: int
    threads: int = 1

    @classmethod
    def parse(cls, text: str) -> ServerConfig:
        """`sync:2` or `gthread:2x4` (2 workers of 4 threads)."""
        worker_class, _, size = text.partition(":")
        workers, _, threads = size.partition("x")
        if worker_class not in ("sync", "gthread") or not workers.isdigit():
            raise argparse.ArgumentTypeError(f"server config {text!r}: use sync:N or gthread:NxT")
        return cls(worker_class=worker_class, workers=int(workers), threads=int(threads or 1))

    def __str__(self) -> str:
        threads = f"x{self.threads}" if self.worker_class == "gthread" else ""
        return f"{self.worker_class}:{self.workers}{threads}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    def __init__(self, config: ServerConfig, *, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [
            str(Path(sys.executable).parent / "gunicorn"),
            "revopt.wsgi:application",
            f"--bind=127.0.0.1:{self.port}",
            f"--workers={config.workers}",
            f"--worker-class={config.worker_class}",
            f"--threads={config.threads}",
            "--backlog=2048",
            "--log-level=warning",
        ]
        self.log = log_path.open("wb")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.flush()
                tail = Path(self.log.name).read_text(errors="replace")[-3000:]
                raise SystemExit(f"bench/recommend: gunicorn exited with {self.process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(self.base_url + BARE_PATH, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("bench/recommend: gunicorn did not answer in time")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@dataclass(frozen=True)
class LoadResult:
    rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    errors: int


def wrk_run(*, url: str, script: Path, connections: int, threads: int, seconds: float) -> LoadResult:
    command = [
        "wrk",
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={seconds:g}s",
        "--timeout=5s",
        f"--script={script}",
        url,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((line for line in completed.stdout.splitlines() if line.startswith("RESULT ")), None)
    if completed.returncode != 0 or line is None:
        raise SystemExit(f"bench/recommend: wrk failed ({completed.returncode}): {completed.stdout}{completed.stderr}")
    raw = json.loads(line.removeprefix("RESULT "))
    return LoadResult(
        rate=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        requests=raw["requests"],
        errors=raw["status_errors"] + raw["socket_errors"],
    )


def write_scripts(*, directory: Path, shop: Shop) -> dict[str, tuple[str, Path]]:
    """Per endpoint: the URL path wrk is pointed at and its Lua script (paths rotate from a Lua table file)."""
    rotations = {"bare": [BARE_PATH], "auth": [AUTH_PATH], "recommendations": shop.paths}
    scripts = {}
    for name, paths in rotations.items():
        paths_file = directory / f"{name}-paths.lua"
        # JSON string literals of these ASCII paths are valid Lua string literals.
        paths_file.write_text("return {\n" + ",\n".join(json.dumps(path) for path in paths) + "\n}\n")
        script = directory / f"{name}.lua"
        script.write_text(LUA_SCRIPT.format(paths_file=paths_file, raw_key=shop.raw_key))
        scripts[name] = (paths[0].split("?")[0], script)
    return scripts


def sample_check(*, base_url: str, shop: Shop) -> dict[str, int]:
    """Ask every placement once outside the load and fail loudly on an error: a benchmark of 4xx is worthless."""
    sources: dict[str, int] = {}
    for path in shop.paths[:200]:
        request = urllib.request.Request(base_url + path, headers={"Authorization": f"Bearer {shop.raw_key}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise SystemExit(f"bench/recommend: {path} answered {error.code}: {error.read()[:500]!r}") from error
        key = f"{body['source']}{' (degraded)' if body['degraded'] else ''}"
        sources[key] = sources.get(key, 0) + 1
    return sources


def measure(
    *,
    config: ServerConfig,
    shop: Shop,
    scripts: dict[str, tuple[str, Path]],
    env: dict[str, str],
    args: argparse.Namespace,
    log_dir: Path,
) -> dict[int, dict[str, list[LoadResult]]]:
    """Per number of connections: each endpoint's runs, interleaved, on one gunicorn."""
    server = Gunicorn(config, env=env, log_path=log_dir / f"gunicorn-{config.worker_class}-{config.workers}.log")
    try:
        server.wait_ready()
        sources = sample_check(base_url=server.base_url, shop=shop)
        print(f"\n[{config}] sources of 200 sample answers: {sources}", flush=True)
        for path, script in scripts.values():
            wrk_run(url=server.base_url + path, script=script, connections=8, threads=args.wrk_threads, seconds=3)
        results: dict[int, dict[str, list[LoadResult]]] = {}
        for connections in args.connections:
            results[connections] = {name: [] for name in scripts}
            for repeat in range(1, args.repeats + 1):
                for name, (path, script) in scripts.items():
                    result = wrk_run(
                        url=server.base_url + path,
                        script=script,
                        connections=connections,
                        threads=args.wrk_threads,
                        seconds=args.duration,
                    )
                    results[connections][name].append(result)
                    print(
                        f"  [{config} c{connections}] repeat {repeat}/{args.repeats}  {name:<16} "
                        f"{result.rate:>8,.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                        f"errors {result.errors}",
                        flush=True,
                    )
        return results
    finally:
        server.stop()


def report(all_results: dict[tuple[ServerConfig, int], dict[str, list[LoadResult]]]) -> int:
    """The medians per server, load and endpoint, and the issue's targets for the recommendations."""
    header = f"{'server':<18}{'endpoint':<18}{'req/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'vs bare':>10}"
    print(f"\n{header}{'errors':>8}")
    status = 0
    for (config, connections), results in all_results.items():
        medians = {
            name: LoadResult(
                rate=statistics.median(r.rate for r in runs),
                p50_ms=statistics.median(r.p50_ms for r in runs),
                p90_ms=statistics.median(r.p90_ms for r in runs),
                p99_ms=statistics.median(r.p99_ms for r in runs),
                requests=sum(r.requests for r in runs),
                errors=sum(r.errors for r in runs),
            )
            for name, runs in results.items()
        }
        bare = medians["bare"].rate
        label = f"{config} c{connections}"
        for name, median in medians.items():
            print(
                f"{label:<18}{name:<18}{median.rate:>10,.0f}{median.p50_ms:>9.2f}{median.p90_ms:>9.2f}"
                f"{median.p99_ms:>9.2f}{median.rate / bare:>10.1%}{median.errors:>8}"
            )
        served = medians["recommendations"]
        checks = {
            f"p99 <= {TARGET_P99_MS:g} ms": served.p99_ms <= TARGET_P99_MS,
            f">= {TARGET_RATE:g} req/s": served.rate >= TARGET_RATE,
            f">= {TARGET_SHARE_OF_BARE:.0%} of bare": served.rate >= TARGET_SHARE_OF_BARE * bare,
            "no errors": served.errors == 0,
        }
        verdict = "PASS" if all(checks.values()) else "FAIL"
        details = ", ".join(f"{name} {'ok' if passed else 'MISSED'}" for name, passed in checks.items())
        print(f"{'':<18}targets: {details} -> {verdict}")
        status = status or (0 if verdict == "PASS" else 1)
    return status


def profile_requests(*, shop: Shop, count: int) -> None:
    """The request path in this process through Django's handler (no network, same settings): where the
    time goes per request (wall, CPU, SQL), then a pyinstrument tree of the wall time."""
    from django.db import connection
    from django.test import Client
    from pyinstrument import Profiler

    client = Client(HTTP_AUTHORIZATION=f"Bearer {shop.raw_key}")
    for path in shop.paths[:50]:
        client.get(path)
    paths = shop.paths[50 : 50 + count]
    statements: list[float] = []

    def timed_statement(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append(time.perf_counter() - started)

    with connection.execute_wrapper(timed_statement):
        wall, cpu = time.perf_counter(), time.process_time()
        for path in paths:
            client.get(path)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"\n--- {len(paths)} recommendation requests in-process: {wall / len(paths) * 1000:.2f} ms wall, "
        f"{cpu / len(paths) * 1000:.2f} ms CPU of this process, {len(statements) / len(paths):.1f} SQL statements "
        f"taking {sum(statements) / len(paths) * 1000:.2f} ms per request ---"
    )
    # The statements of a few requests, slowest first, with PostgreSQL's plan of the slowest.
    samples: list[tuple[float, str, tuple]] = []

    def sampled_statement(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            samples.append((time.perf_counter() - started, sql, params))

    with connection.execute_wrapper(sampled_statement):
        for path in paths[:20]:
            client.get(path)
    samples.sort(key=lambda sample: -sample[0])
    print(f"\n--- slowest SQL of 20 requests ({len(samples)} statements) ---")
    for duration, sql, _ in samples[:8]:
        print(f"  {duration * 1000:7.2f} ms  {' '.join(str(sql).split())[:220]}")
    if samples and str(samples[0][1]).lstrip().upper().startswith("SELECT"):
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {samples[0][1]}", samples[0][2])
            print("\n".join(f"    {row[0]}" for row in cursor.fetchall()))

    profiler = Profiler(interval=0.0005)
    with profiler:
        for path in paths:
            client.get(path)
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    # CPU only (waits on PostgreSQL and Redis excluded): what the Python of a request costs, by function.
    cpu_profiler = cProfile.Profile(time.process_time)
    cpu_profiler.enable()
    for path in paths:
        client.get(path)
    cpu_profiler.disable()
    print(f"--- cProfile of the same {len(paths)} requests, CPU time, by cumulative ---")
    pstats.Stats(cpu_profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(45)


# --- the run ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20_000, help="simulated sessions of the seeded shop")
    parser.add_argument("--products", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20_000, help="distinct requests in the rotation")
    parser.add_argument(
        "--servers",
        type=lambda text: [ServerConfig.parse(part) for part in text.split(",") if part],
        default=[ServerConfig("sync", 2)],
        help="gunicorn configurations to measure, e.g. sync:2,sync:3,gthread:2x4 (empty: no load, e.g. to profile)",
    )
    parser.add_argument(
        "--connections",
        type=lambda text: [int(part) for part in text.split(",") if part],
        default=[2, 8],
        help="requests wrk keeps in flight, one measurement per value: 2 shows the latency of a lightly "
        "loaded server, 8 the throughput of a saturated one",
    )
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="pyinstrument the request path in-process first")
    parser.add_argument("--profile-requests", type=int, default=500)
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")) or not os.environ.get("REDIS_URL"):
        print("bench/recommend.py needs PostgreSQL and Redis: run it as `make bench-recommend` (bin/with-services).")
        return 2
    if shutil.which("wrk") is None:
        subprocess.run([str(ROOT / "bin" / "system-packages"), "wrk"], check=True)

    warnings.filterwarnings("ignore", message="No directory at")
    bench_url, bench_database_drop = bench_database_create(base_url)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "revopt.settings.bench",
        "DATABASE_URL": bench_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",  # testserver: the in-process simulator
        "REVOPT_CACHE_KEY_PREFIX": f"bench{os.getpid()}",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "DEBUG": "false",
    }
    os.environ.update(env)
    try:
        return _run(args, env)
    finally:
        from django.db import connections

        connections.close_all()
        bench_database_drop()


def _run(args, env: dict[str, str]) -> int:
    import django

    django.setup()
    from django.db import connection

    print(
        f"bench/recommend: PostgreSQL {connection.cursor().connection.server_version}, "
        f"{os.cpu_count()} CPUs, gunicorn {_gunicorn_version()}, {_wrk_version()}"
    )
    shop = shop_seed(
        sessions=args.sessions,
        products=args.products,
        days=args.days,
        seed=args.seed,
        request_count=args.requests,
        progress=sys.stderr.isatty(),
    )
    print(f"shop: {shop.summary}")
    print(
        f"load: {len(shop.paths):,} rotating requests; wrk {args.wrk_threads} thread(s), "
        f"{'/'.join(map(str, args.connections))} connections, {args.duration:g} s per run, {args.repeats} repeats "
        "after a 3 s warm-up"
    )
    if args.profile:
        profile_requests(shop=shop, count=args.profile_requests)
    connection.close()
    if not args.servers:
        return 0

    with tempfile.TemporaryDirectory(prefix="revopt-bench-recommend-") as directory:
        scripts = write_scripts(directory=Path(directory), shop=shop)
        all_results = {}
        for config in args.servers:
            by_connections = measure(
                config=config, shop=shop, scripts=scripts, env=env, args=args, log_dir=Path(directory)
            )
            for connections, results in by_connections.items():
                all_results[(config, connections)] = results
    return report(all_results)


def _gunicorn_version() -> str:
    import gunicorn

    return gunicorn.__version__


def _wrk_version() -> str:
    completed = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (completed.stdout or completed.stderr).split("\n")[0].split(" [")[0].strip()


if __name__ == "__main__":
    sys.exit(main())
