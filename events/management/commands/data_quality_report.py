from django.core.management.base import BaseCommand, CommandError, CommandParser

from events.services import data_quality_report_create
from revopt.tenancy.models import Merchant


class Command(BaseCommand):
    help = "Run the data-quality checks for a merchant now (Celery beat also runs them every 6 hours)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--merchant", required=True, help="merchant slug")

    def handle(self, *args, **options) -> None:
        merchant = Merchant.objects.filter(slug=options["merchant"]).first()
        if merchant is None:
            raise CommandError(f"no merchant with slug {options['merchant']!r}")
        report = data_quality_report_create(merchant=merchant)
        for check in report.checks:
            self.stdout.write(f"  {check['status']:<4}  {check['label']:<58} {check['detail']}")
        verdict = "passed: training may run" if report.passed else "FAILED: training is blocked"
        self.stdout.write(self.style.SUCCESS(verdict) if report.passed else self.style.ERROR(verdict))
        if not report.passed:
            raise SystemExit(1)
