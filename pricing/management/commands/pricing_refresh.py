from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from pricing.services.model import demand_model_fit
from pricing.services.proposals import price_proposals_generate
from revopt.runs import bar_progress
from revopt.tenancy.models import Merchant


class Command(BaseCommand):
    help = "Fit a merchant's demand model now, then propose prices from it (--skip-fit: from the fit in service)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--merchant", required=True, help="merchant slug")
        parser.add_argument("--skip-fit", action="store_true", help="propose from the fit already in service")
        parser.add_argument("--seed", type=int, default=None, help="seed of the Thompson draws (reproducible runs)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        merchant = Merchant.objects.filter(slug=options["merchant"]).first()
        if merchant is None:
            raise CommandError(f"no merchant with slug {options['merchant']!r}")
        if not options["skip_fit"]:
            with tqdm(total=100, desc="demand fit", unit="%", disable=options["no_progress"]) as bar:
                try:
                    run = demand_model_fit(merchant=merchant, progress=bar_progress(bar))
                except Exception as error:
                    raise CommandError(f"demand fit failed: {type(error).__name__}: {error}") from error
            self.stdout.write(
                f"demand fit #{run.pk}: {run.products_fitted:,} products from {run.product_days:,} product-days "
                f"({run.history_start} → {run.history_end})"
            )
        with tqdm(total=100, desc="proposals", unit="%", disable=options["no_progress"]) as bar:
            batch = price_proposals_generate(merchant=merchant, seed=options["seed"], progress=bar_progress(bar))
        self.stdout.write(
            f"proposals: {batch.created:,} created, {batch.superseded:,} superseded, "
            f"{batch.auto_approved:,} auto-approved"
        )
        for reason, count in batch.skipped.items():
            self.stdout.write(f"  skipped ({reason}): {count:,}")
