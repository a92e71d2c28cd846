import io
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pricing.services.competitors import competitor_prices_import_csv
from revopt.tenancy.models import Merchant


class Command(BaseCommand):
    help = (
        "Import competitor prices from a CSV (sku, competitor, price, observed_at[, currency, source_url]) into a "
        "merchant's shop and print the per-row report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="The CSV file.")
        parser.add_argument("--merchant", required=True, help="The merchant's slug.")

    def handle(self, *args: object, merchant: str, path: Path, **options: object) -> None:
        shop = Merchant.objects.filter(slug=merchant).first()
        if shop is None:
            raise CommandError(f"No merchant with slug '{merchant}'.")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {path}: {error}") from error

        report = competitor_prices_import_csv(merchant=shop, csv_file=io.StringIO(text, newline=""), filename=path.name)
        if report.rejected:
            raise CommandError(f"{path} could not be imported: {report.errors[0].reason}")
        self.stdout.write(
            f"{path.name}: {report.rows_total} rows, {report.recorded} observations recorded, "
            f"{report.failed} rows failed."
        )
        for error in report.errors:
            sku = f" [{error.sku}]" if error.sku else ""
            self.stdout.write(f"  line {error.position}{sku} {error.field}: {error.reason}")
