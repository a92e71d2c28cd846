"""Writes of the simulator: run a synthetic shop against a merchant and keep its ground truth."""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from catalog.models import Product
from catalog.services import product_import_csv
from events.models import AnonymousIdentity, Customer, Event, Order, OrderLine, Session
from revopt.db import tables_analyze
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import api_key_create, api_key_revoke, audit_log_write

from .driver import InProcessTransport, StorefrontDriver, Transport
from .models import SimulationRun
from .policy import StorefrontPolicy
from .world import World, WorldConfig

logger = logging.getLogger(__name__)

SHOPIFY_COLUMNS = (
    "Handle",
    "Title",
    "Body (HTML)",
    "Vendor",
    "Product Category",
    "Type",
    "Tags",
    "Published",
    "Option1 Name",
    "Option1 Value",
    "Option2 Name",
    "Option2 Value",
    "Option3 Name",
    "Option3 Value",
    "Variant SKU",
    "Variant Inventory Qty",
    "Variant Price",
    "Variant Compare At Price",
    "Cost per item",
    "Image Src",
    "Status",
    "Rating",
    "Rating Count",
    "Currency",
)


def world_catalog_csv(world: World) -> str:
    """The world's catalog as a Shopify product export, the file a real shop would import."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(SHOPIFY_COLUMNS)
    p = world.products
    for j, sku in enumerate(p["sku"]):
        category_path = world.categories[int(p["category"][j])]
        list_price = float(world.list_price[j])
        # A fifth of the products show a struck-through "was" price, as shops do.
        compare_at = f"{round(list_price * 1.25) - 0.01:.2f}" if j % 5 == 0 else ""
        writer.writerow(
            [
                sku.lower(),
                p["title"][j],
                f"<p>{p['title'][j]}: {p['style'][j]} {p['material'][j]}.</p>",
                p["brand"][j],
                category_path,
                category_path.split(" > ")[-1],
                f"{p['style'][j]}, {p['material'][j]}",
                "TRUE",
                "Color",
                p["color"][j],
                "Material",
                p["material"][j],
                "Style",
                p["style"][j],
                sku,
                int(p["inventory"][j]),
                f"{list_price:.2f}",
                compare_at,
                f"{float(world.unit_cost[j]):.2f}",
                "",
                "active",
                f"{float(p['rating'][j]):.1f}",
                int(p["rating_count"][j]),
                world.config.currency,
            ]
        )
    return buffer.getvalue()


def simulation_config_resolve(*, merchant: Merchant, config: WorldConfig) -> WorldConfig:
    """Fill in what depends on the merchant and the clock: the shop's currency and a period ending yesterday."""
    changes: dict = {}
    if config.start_date is None:
        changes["start_date"] = timezone.now().date() - timedelta(days=config.days)
    if config.currency != merchant.currency:
        changes["currency"] = merchant.currency
    return dataclasses.replace(config, **changes) if changes else config


def simulation_run(
    *,
    merchant: Merchant,
    config: WorldConfig,
    policy: StorefrontPolicy | None = None,
    transport: Transport | None = None,
    progress: bool = True,
    on_day_stored: Callable[[int], None] | None = None,
) -> SimulationRun:
    """Generate a world, import its catalog, drive its shoppers through the storefront API, store the truth.

    Not one transaction: the events go through the API in their own requests, like a real shop's. The run
    row records running → completed / failed, with the simulator's own counts beside the ground truth.
    `on_day_stored(day)` runs after each simulated day's events are stored: what a shop's back office
    does between days (train a model, start an experiment) happens there.
    """
    config = simulation_config_resolve(merchant=merchant, config=config)
    if config.start_date + timedelta(days=config.days) > timezone.now().date() + timedelta(days=1):
        raise ValueError("the simulated period must end by today: events cannot be in the future")
    run = SimulationRun.objects.create(merchant=merchant, seed=config.seed, config=config.to_dict())
    issued = None
    try:
        world = World.generate(config)
        with transaction.atomic():
            catalog_import = product_import_csv(
                merchant=merchant, csv_file=io.StringIO(world_catalog_csv(world)), filename=f"simulation-{run.pk}.csv"
            )
            if catalog_import.rows_failed:
                raise ValueError(f"the simulated catalog did not import cleanly: {catalog_import.errors[:3]}")
            run.catalog_import = catalog_import
            if transport is None:
                issued = api_key_create(merchant=merchant, name=f"simulation #{run.pk}")
                run.api_key = issued.api_key
            run.ground_truth = world.to_ground_truth()
            run.save(update_fields=["catalog_import", "api_key", "ground_truth"])
        transport = transport or InProcessTransport(issued.raw_key)
        driver = StorefrontDriver(world=world, transport=transport, policy=policy)
        with tqdm(total=config.n_sessions, unit="session", disable=not progress, desc="simulating") as bar:

            def day_done(day: int, sessions: int) -> None:
                bar.update(sessions)
                if on_day_stored is not None:
                    on_day_stored(day)

            stats = driver.run(on_day=day_done)
        tables_analyze([Customer, AnonymousIdentity, Session, Event, Order, OrderLine, Product])
        run.stats = {**stats.as_dict(), "events_accepted": driver.accepted, "events_duplicate": driver.duplicate}
        run.status = SimulationRun.Status.COMPLETED
    except Exception as error:
        logger.exception("simulation #%s failed", run.pk)
        run.status = SimulationRun.Status.FAILED
        run.error = f"{type(error).__name__}: {error}"[:10_000]
        raise
    finally:
        run.finished_at = timezone.now()
        with transaction.atomic():
            run.save(update_fields=["stats", "status", "error", "finished_at"])
            if issued is not None:
                api_key_revoke(api_key=issued.api_key)
            audit_log_write(
                merchant=merchant,
                actor=None,
                action=f"simulation.{run.status}",
                target=run,
                detail={
                    "seed": config.seed,
                    "sessions": config.n_sessions,
                    **({"error": run.error} if run.error else {}),
                },
            )
    return run
