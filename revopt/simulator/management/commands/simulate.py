from django.core.management.base import BaseCommand, CommandError, CommandParser

from revopt.simulator.driver import HttpTransport
from revopt.simulator.policy import CatalogBrowsePolicy, OfferPolicy, RecommendationPolicy, StorefrontPolicy
from revopt.simulator.selectors import simulation_run_latest
from revopt.simulator.services import simulation_run
from revopt.simulator.world import WorldConfig
from revopt.tenancy.models import Merchant

_STATS_ROWS = (
    ("sessions", "sessions"),
    ("product views", "product_views"),
    ("carts", "carts"),
    ("checkouts", "checkouts"),
    ("orders", "orders"),
    ("revenue", "revenue"),
    ("conversion", "conversion"),
    ("cart abandonment", "cart_abandonment"),
    ("AOV", "aov"),
    ("events sent", "events"),
)


POLICIES: dict[str, type[StorefrontPolicy]] = {
    "catalog": CatalogBrowsePolicy,
    "recommendations": RecommendationPolicy,
    "offers": OfferPolicy,
}


class Command(BaseCommand):
    help = "Simulate a shop with known ground truth and send its shoppers through the storefront API."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--merchant", required=True, help="slug of the merchant that owns the simulated shop")
        parser.add_argument("--sessions", type=int, default=10_000)
        parser.add_argument("--days", type=int, default=60)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--products", type=int, default=400)
        parser.add_argument("--if-empty", action="store_true", help="do nothing if the merchant has a completed run")
        parser.add_argument("--base-url", help="send to a running server instead of in-process (needs --api-key)")
        parser.add_argument("--api-key", help="the merchant's storefront API key, with --base-url")
        parser.add_argument(
            "--policy",
            choices=sorted(POLICIES),
            default="catalog",
            help="what the storefront does: show the catalog's order, show revopt's recommendations first, or "
            "show the catalog and ask revopt's offer decision at every cart",
        )
        parser.add_argument(
            "--session-signals",
            action="store_true",
            help="funnel realism: hesitant shoppers who show it (shipping/returns pages, price sorting) and respond "
            "unevenly to incentives",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        merchant = Merchant.objects.filter(slug=options["merchant"]).first()
        if merchant is None:
            raise CommandError(f"no merchant with slug {options['merchant']!r}")
        if bool(options["base_url"]) != bool(options["api_key"]):
            raise CommandError("--base-url and --api-key go together")
        if options["sessions"] < 1 or options["days"] < 1 or options["products"] < 1:
            raise CommandError("--sessions, --days and --products must be positive")
        if options["if_empty"] and (previous := simulation_run_latest(merchant=merchant)) is not None:
            self.stdout.write(f"{merchant.slug} already has a completed {previous}; skipping (--if-empty).")
            return
        config = WorldConfig(
            seed=options["seed"],
            n_sessions=options["sessions"],
            days=options["days"],
            n_products=options["products"],
            n_categories=min(12, options["products"]),
            session_signals=options["session_signals"],
        )
        transport = HttpTransport(options["base_url"], options["api_key"]) if options["base_url"] else None
        policy = POLICIES[options["policy"]](max_products=config.listing_size)
        try:
            run = simulation_run(
                merchant=merchant,
                config=config,
                policy=policy,
                transport=transport,
                progress=not options["no_progress"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(f"{run} for {merchant.slug} completed"))
        width = max(len(label) for label, _ in _STATS_ROWS)
        for label, key in _STATS_ROWS:
            value = run.stats.get(key, 0)
            if key in ("conversion", "cart_abandonment"):
                shown = f"{value:.2%}"
            elif isinstance(value, float):
                shown = f"{value:,.2f}"
            else:
                shown = f"{value:,}"
            self.stdout.write(f"  {label:<{width}}  {shown:>14}")
        if isinstance(policy, RecommendationPolicy):
            self.stdout.write(
                f"  {'rec. lists':<{width}}  {policy.served_lists:>14,}\n"
                f"  {'rec. failures':<{width}}  {policy.failures:>14,}"
            )
        if isinstance(policy, OfferPolicy):
            offers = run.stats.get("offers", 0)
            anyway = run.stats.get("offers_would_have_bought", 0)
            self.stdout.write(
                f"  {'offers':<{width}}  {offers:>14,}\n"
                f"  {'would have bought':<{width}}  {anyway / offers if offers else 0:>14.1%}\n"
                f"  {'offer failures':<{width}}  {policy.failures:>14,}"
            )
