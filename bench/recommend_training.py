"""Recommender training benchmark: `engine.training.train` on 100k and 1M interactions.

    .venv/bin/python bench/recommend_training.py                 # 100k and 1M interactions
    .venv/bin/python bench/recommend_training.py --sizes 100000 --profile

The interactions are synthetic but structured, generated in numpy from a seed: shoppers have latent
tastes (a mix of one or two of 20 category centres), products sit near their category's centre with
a brand, a price and a Zipf-like popularity, and each shopper's products are drawn from a softmax
of taste · product + popularity. Views, clicks, wishlists, carts and purchases arrive in sessions
over 180 days; a session's purchases form an order. No database: the engine is pure numpy.

Each size reports the full training (every candidate list, the tuned ranker, personal candidates for
every shopper) beside two baselines fitted on the same data in the same run: popularity only (the
floor of any training) and implicit's ALS (one collaborative model, no tuning, no lists). Target:
1M interactions in under 60 s.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommendations.engine.collaborative import als_available, fit_als  # noqa: E402
from recommendations.engine.dataset import (  # noqa: E402
    KIND_INDEX,
    Baskets,
    Interactions,
    Items,
    TrainingData,
    TrainingParams,
    Users,
)
from recommendations.engine.popularity import popularity_scores, ranked  # noqa: E402
from recommendations.engine.precomputed import precomputed_to_bytes  # noqa: E402
from recommendations.engine.ranker import history_matrix  # noqa: E402
from recommendations.engine.training import train  # noqa: E402

TARGET_SECONDS_1M = 60.0
DAY = 86_400.0
NOW = 1_800_000_000.0
CATEGORIES = 20
BRANDS = 80
LATENT = 16
INTERACTIONS_PER_USER = 20
SESSION_LENGTH = 5
KIND_SHARES = {"view": 0.70, "click": 0.10, "wishlist": 0.03, "cart": 0.10, "purchase": 0.07}
WORDS = "alpine trail summit ultralight classic pro lite storm ridge explorer urban travel".split()


def synthetic_shop(interactions: int, *, seed: int = 0) -> TrainingData:
    """A shop with `interactions` interactions drawn from latent tastes (see the module docstring)."""
    rng = np.random.default_rng(seed)
    user_count = max(interactions // INTERACTIONS_PER_USER, 10)
    item_count = int(np.clip(5 * np.sqrt(interactions), 200, 20_000))

    centres = rng.normal(size=(CATEGORIES, LATENT))
    category = rng.integers(0, CATEGORIES, item_count)
    item_vectors = centres[category] + 0.6 * rng.normal(size=(item_count, LATENT))
    popularity = -1.1 * np.log(rng.permutation(item_count) + 1.0)
    brand_of_category = rng.integers(0, BRANDS, (CATEGORIES, 4))
    brand = brand_of_category[category, rng.integers(0, 4, item_count)]
    price = np.round(np.exp(rng.normal(3.0 + 0.1 * category, 0.5)), 2)
    items = Items(
        ids=np.arange(1, item_count + 1, dtype=np.int64),
        category=(category + 1).astype(np.int64),
        category_path=[f"Department {c // 5} > Category {c}" for c in category],
        title=[f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7) % len(WORDS)]} {c}" for i, c in enumerate(category)],
        description=["" for _ in range(item_count)],
        brand=[f"brand-{b}" for b in brand],
        attributes=[{"colour": ["red", "blue", "green", "black"][i % 4]} for i in range(item_count)],
        price=price,
        created_at=NOW - DAY * rng.uniform(0, 720, item_count) * (rng.random(item_count) > 0.03),
    )

    mix = rng.integers(0, CATEGORIES, (user_count, 2))
    weight = rng.uniform(0.5, 1.0, (user_count, 1))
    tastes = weight * centres[mix[:, 0]] + (1 - weight) * centres[mix[:, 1]]
    tastes += 0.3 * rng.normal(size=tastes.shape)
    per_user = np.maximum(rng.lognormal(np.log(INTERACTIONS_PER_USER) - 0.5, 1.0, user_count), 3.0)
    per_user = np.maximum(np.round(per_user * interactions / per_user.sum()), 1).astype(np.int64)
    per_user[-1] += interactions - per_user.sum()
    per_user = np.maximum(per_user, 1)

    users_of_rows = np.repeat(np.arange(user_count), per_user)
    item_of_rows = np.empty(len(users_of_rows), dtype=np.int64)
    offsets = np.r_[0, np.cumsum(per_user)]
    batch = max(1, 2_000_000 // item_count)
    for start in range(0, user_count, batch):
        stop = min(start + batch, user_count)
        logits = tastes[start:stop] @ item_vectors.T / np.sqrt(LATENT) * 2.0 + popularity
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        cdf = np.cumsum(probabilities / probabilities.sum(axis=1, keepdims=True), axis=1)
        cdf[:, -1] = 1.0
        counts = per_user[start:stop]
        rows = np.repeat(np.arange(stop - start), counts)
        flat = (cdf + np.arange(stop - start)[:, None]).ravel()
        draws = np.searchsorted(flat, rows + rng.random(len(rows)), side="right") - rows * item_count
        item_of_rows[offsets[start] : offsets[stop]] = np.minimum(draws, item_count - 1)

    kinds = rng.choice(
        [KIND_INDEX[kind] for kind in KIND_SHARES], size=len(users_of_rows), p=list(KIND_SHARES.values())
    ).astype(np.int8)
    first_day = rng.uniform(0, 180, user_count)
    session_of_row = np.arange(len(users_of_rows)) // SESSION_LENGTH
    session_day = np.minimum(
        first_day[users_of_rows] + rng.exponential(20.0, session_of_row.max() + 1)[session_of_row], 180.0
    )
    timestamps = NOW - DAY * 180 + DAY * session_day + rng.uniform(0, 1800, len(users_of_rows))
    order = np.lexsort((timestamps, users_of_rows))
    interactions_block = Interactions(
        user=users_of_rows[order],
        item=item_of_rows[order],
        kind=kinds[order],
        timestamp=timestamps[order],
        session=session_of_row[order],
    )

    purchases = np.flatnonzero(interactions_block.kind == KIND_INDEX["purchase"])
    purchase_sessions = interactions_block.session[purchases]
    by_session = np.argsort(purchase_sessions, kind="stable")
    purchases, purchase_sessions = purchases[by_session], purchase_sessions[by_session]
    starts = np.flatnonzero(np.r_[True, purchase_sessions[1:] != purchase_sessions[:-1]])
    baskets = Baskets(
        offsets=np.r_[starts, len(purchases)].astype(np.int64),
        item=interactions_block.item[purchases],
        user=interactions_block.user[purchases[starts]],
        timestamp=interactions_block.timestamp[purchases[starts]],
    )
    users = Users(
        ids=np.arange(1, user_count + 1, dtype=np.int64),
        device=[["mobile", "desktop", "tablet"][i % 3] for i in range(user_count)],
        segment=[["new", "active", "loyal", "lapsed"][i % 4] for i in range(user_count)],
    )
    return TrainingData(items=items, users=users, interactions=interactions_block, baskets=baskets, now=NOW)


def _time(function: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def run(size: int, *, profile: bool) -> dict:
    data = synthetic_shop(size, seed=0)
    params = TrainingParams()
    print(
        f"\n{size:,} interactions: {len(data.users):,} shoppers, {len(data.items):,} products, "
        f"{len(data.baskets):,} orders"
    )
    popular_seconds, _ = _time(
        lambda: ranked(scores=popularity_scores(data=data, params=params), items=data.items, k=200),
    )
    als_seconds = None
    if als_available():
        als_seconds, _ = _time(lambda: fit_als(history_matrix(data, params), seed=0))

    stages: list[tuple[str, float]] = []
    with tqdm(total=100, desc=f"train {size:,}", unit="%", bar_format="{l_bar}{bar}| {n:.0f}% {postfix}") as bar:
        last = [time.perf_counter()]

        def progress(fraction: float, message: str) -> None:
            now = time.perf_counter()
            stages.append((message, now - last[0]))
            last[0] = now
            bar.update(100 * fraction - bar.n)
            bar.set_postfix_str(message[:40])

        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        cpu_started = time.process_time()
        train_seconds, precomputed = _time(lambda: train(data, params, progress=progress))
        cpu_seconds = time.process_time() - cpu_started
        if profiler:
            profiler.disable()
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)

    print(
        f"  train       {train_seconds:7.1f} s  {size / train_seconds:10,.0f} interactions/s  "
        f"(CPU {cpu_seconds:.1f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print("  stages:     " + ", ".join(f"{message} {seconds:.1f} s" for message, seconds in stages))
    print(f"  popularity  {popular_seconds:7.2f} s  (train is {train_seconds / popular_seconds:,.0f}× it)")
    if als_seconds is not None:
        print(f"  ALS fit     {als_seconds:7.1f} s  (train is {train_seconds / als_seconds:.1f}× it)")
    artifact_seconds, artifact = _time(lambda: precomputed_to_bytes(precomputed))
    print(f"  artifact    {len(artifact) / 1e6:7.1f} MB compressed, pickled in {artifact_seconds:.1f} s")
    print(
        f"  lists: {len(precomputed.for_customer):,} shoppers with candidates, "
        f"{len(precomputed.bought_together):,} products with rules, {len(precomputed.similar_content):,} "
        "with content neighbours"
    )
    return {"size": size, "train": train_seconds, "popularity": popular_seconds, "als": als_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--profile", action="store_true", help="print where training spends its time")
    arguments = parser.parse_args()
    results = [run(size, profile=arguments.profile) for size in arguments.sizes]
    for result in results:
        if result["size"] == 1_000_000:
            verdict = "met" if result["train"] < TARGET_SECONDS_1M else "MISSED"
            print(f"\ntarget: 1M interactions in < {TARGET_SECONDS_1M:.0f} s: {result['train']:.1f} s ({verdict})")


if __name__ == "__main__":
    main()
