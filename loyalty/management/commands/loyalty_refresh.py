from collections.abc import Callable
from datetime import datetime, time
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from loyalty.models import InsightRun, RunStatus
from loyalty.services.insights import lifetime_value_refresh, segments_refresh
from revopt.runs import bar_progress
from revopt.tenancy.models import Merchant

Refresh = Callable[..., InsightRun]
KINDS = ("segments", "lifetime_value", "churn")


class Command(BaseCommand):
    help = (
        "Recompute a merchant's customer insights now (what the nightly and weekly tasks do): RFM segments and "
        "clusters, lifetime value, the churn model and retention list."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--merchant", required=True, help="merchant slug")
        parser.add_argument(
            "--only", default=",".join(KINDS), help=f"comma-separated runs among {', '.join(KINDS)} (default: all)"
        )
        parser.add_argument("--as-of", default=None, help="score as of this ISO date-time (default: now)")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        merchant = Merchant.objects.filter(slug=options["merchant"]).first()
        if merchant is None:
            raise CommandError(f"no merchant with slug {options['merchant']!r}")
        kinds = [kind.strip() for kind in options["only"].split(",") if kind.strip()]
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown or not kinds:
            raise CommandError(f"--only takes {', '.join(KINDS)}; got {options['only']!r}")
        as_of = _as_of(options["as_of"], merchant=merchant)
        failures = []
        for kind in KINDS:
            if kind not in kinds:
                continue
            refresh = _refresh_for(kind)
            if refresh is None:
                self.stderr.write(f"{kind}: skipped, loyalty.services.churn.churn_refresh is not available")
                continue
            with tqdm(total=100, desc=kind, unit="%", disable=options["no_progress"]) as bar:
                try:
                    run = refresh(merchant=merchant, as_of=as_of, progress=bar_progress(bar))
                except Exception as error:
                    failures.append(f"{kind}: {type(error).__name__}: {error}")
                    continue
            if run.status != RunStatus.SUCCEEDED:
                failures.append(f"{kind}: {run.error}")
                continue
            self.stdout.write(f"{kind} run #{run.pk}: {run.customers:,} customers as of {run.as_of:%Y-%m-%d %H:%M}")
        if failures:
            raise CommandError("failed: " + "; ".join(failures))


def _as_of(text: str | None, *, merchant: Merchant) -> datetime | None:
    """An ISO date-time, or a date: its midnight in the merchant's time zone (the history ends the day before)."""
    if text is None:
        return None
    zone = ZoneInfo(merchant.timezone or "UTC")
    day = parse_date(text) if "T" not in text and " " not in text else None
    value = datetime.combine(day, time.min) if day is not None else parse_datetime(text)
    if value is None:
        raise CommandError(f"--as-of {text!r} is not an ISO date or date-time (e.g. 2026-11-01 or 2026-11-01T06:00Z)")
    return value if timezone.is_aware(value) else timezone.make_aware(value, zone)


def _refresh_for(kind: str) -> Refresh | None:
    if kind == "segments":
        return segments_refresh
    if kind == "lifetime_value":
        return lifetime_value_refresh
    try:
        from loyalty.services.churn import churn_refresh
    except ImportError:
        return None
    return churn_refresh
