import io
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.services import catalog_import_rejected_file, product_import_csv
from revopt.tenancy.models import Merchant


class Command(BaseCommand):
    help = "Import a Shopify product-export CSV into a merchant's catalog and print the per-row report."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--merchant", required=True, help="The merchant's slug.")
        parser.add_argument("path", type=Path, help="The CSV file.")

    def handle(self, *args, merchant: str, path: Path, **options) -> None:
        shop = Merchant.objects.filter(slug=merchant).first()
        if shop is None:
            raise CommandError(f"No merchant with slug '{merchant}'.")
        try:
            # utf-8-sig: Shopify and Excel both write a byte-order mark.
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {path}: {error}") from error

        catalog_import = product_import_csv(merchant=shop, csv_file=io.StringIO(text, newline=""), filename=path.name)

        self.stdout.write(
            f"{path.name}: {catalog_import.rows_total} rows, {catalog_import.products_created} products created, "
            f"{catalog_import.products_updated} updated, {catalog_import.rows_skipped} skipped, "
            f"{catalog_import.rows_failed} failed."
        )
        for error in catalog_import.errors:
            sku = f" [{error['sku']}]" if error.get("sku") else ""
            self.stdout.write(f"  line {error['row']}{sku} {error['field'] or 'file'}: {error['reason']}")
        if catalog_import_rejected_file(catalog_import):
            raise CommandError(f"{path} could not be imported.")
