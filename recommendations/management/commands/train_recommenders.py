from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from recommendations.models import RecommenderVersion, VersionStatus
from recommendations.services.training import recommender_train
from recommendations.services.versions import TrainingAlreadyRunning, metrics_columns, promotion_summary
from revopt.tenancy.models import Merchant

METRICS_SHOWN = ("precision@10", "recall@10", "ndcg@10", "map@10", "coverage", "novelty")


class Command(BaseCommand):
    help = "Train a merchant's recommenders now; the new version replaces the active one only if it scores as well."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--merchant", required=True, help="merchant slug")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        merchant = Merchant.objects.filter(slug=options["merchant"]).first()
        if merchant is None:
            raise CommandError(f"no merchant with slug {options['merchant']!r}")
        with tqdm(total=100, desc="training", unit="%", disable=options["no_progress"]) as bar:

            def progress(fraction: float, message: str) -> None:
                bar.n = round(fraction * 100)
                bar.set_postfix_str(message[:60], refresh=False)
                bar.refresh()

            try:
                version = recommender_train(merchant=merchant, trigger="command", progress=progress)
            except TrainingAlreadyRunning as running:
                raise CommandError(str(running)) from running
        self.stdout.write(print_version(version))
        if version.status == VersionStatus.FAILED:
            raise CommandError(f"{version} failed: {version.status_reason}")


def print_version(version: RecommenderVersion) -> str:
    lines = [f"{version} for {version.merchant.slug}: {version.status}"]
    if version.status_reason:
        lines.append(f"  {version.status_reason}")
    lines.append(
        f"  data: {version.interaction_count:,} interactions, {version.customer_count:,} customers, "
        f"{version.product_count:,} products"
    )
    columns = metrics_columns(version)
    if columns:
        lines.append(f"  holdout of {version.metrics.get('holdout_users', 0):,} customers:")
        width = max(14, *(len(title) + 2 for title, _ in columns))
        lines.append("  " + f"{'metric':<14}" + "".join(f"{title:>{width}}" for title, _ in columns))
        for name in METRICS_SHOWN:
            cells = "".join(
                f"{values[name]:>{width}.4f}" if isinstance(values.get(name), float) else f"{'—':>{width}}"
                for _, values in columns
            )
            lines.append(f"  {name:<14}{cells}")
    if summary := promotion_summary(version):
        lines.append(f"  NDCG@10 judged: {summary}")
    return "\n".join(lines)
