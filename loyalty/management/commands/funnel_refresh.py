"""Run the funnel's scheduled work now: train the abandonment predictor, train the incentive uplift model and
queue the recovery messages of carts abandoned since the last run (what the nightly and 10-minute tasks do).

It lives in loyalty because loyalty builds on events: the abandonment model is the events app's."""

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from events.models import ModelRunStatus
from events.services.abandonment import abandonment_model_train
from loyalty.models import RunStatus
from loyalty.services.recovery import abandoned_carts_enqueue
from loyalty.services.uplift import METHODS, uplift_model_train
from revopt.runs import bar_progress
from revopt.tenancy.models import Merchant

STEPS = ("abandonment", "uplift", "recovery")


class Command(BaseCommand):
    help = (
        "Train the cart-abandonment predictor and the incentive uplift model, and queue cart-recovery messages, "
        "for one merchant now. A training that fails keeps the model in service and is reported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--merchant", required=True, help="merchant slug")
        parser.add_argument(
            "--only", default=",".join(STEPS), help=f"comma-separated steps among {', '.join(STEPS)} (default: all)"
        )
        parser.add_argument("--method", choices=METHODS, default="x_learner", help="uplift learner")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options) -> None:
        merchant = Merchant.objects.filter(slug=options["merchant"]).first()
        if merchant is None:
            raise CommandError(f"no merchant with slug {options['merchant']!r}")
        steps = [step.strip() for step in options["only"].split(",") if step.strip()]
        if not steps or set(steps) - set(STEPS):
            raise CommandError(f"--only takes {', '.join(STEPS)}; got {options['only']!r}")
        quiet = options["no_progress"]
        failures = []
        if "abandonment" in steps:
            with tqdm(total=100, desc="abandonment model", unit="%", disable=quiet) as bar:
                try:
                    model = abandonment_model_train(merchant=merchant, progress=bar_progress(bar))
                except Exception as error:  # noqa: BLE001 - recorded on the run; reported below
                    model, failure = None, f"abandonment: {error}"
                    failures.append(failure)
            if model is not None and model.status == ModelRunStatus.SUCCEEDED:
                metrics = model.metrics
                self.stdout.write(
                    f"abandonment model #{model.pk}: {model.train_carts:,} train / {model.test_carts:,} test carts, "
                    f"test AUC {metrics.get('auc', float('nan')):.3f} "
                    f"(cart value + device alone {metrics.get('auc_baseline', float('nan')):.3f})"
                )
        if "uplift" in steps:
            with tqdm(total=100, desc="uplift model", unit="%", disable=quiet) as bar:
                try:
                    uplift = uplift_model_train(merchant=merchant, method=options["method"], progress=bar_progress(bar))
                except Exception as error:  # noqa: BLE001 - recorded on the run; reported below
                    uplift = None
                    failures.append(f"uplift: {error}")
            if uplift is not None and uplift.status == RunStatus.SUCCEEDED:
                serving = "loses to no offer: not serving" if uplift.metrics.get("loses_to_no_offer") else "serves"
                self.stdout.write(f"uplift model #{uplift.pk}: {uplift.decisions:,} randomized decisions, {serving}")
        if "recovery" in steps:
            queued = abandoned_carts_enqueue(merchant=merchant)
            self.stdout.write(f"recovery: {queued:,} messages queued")
        if failures:
            raise CommandError("failed: " + "; ".join(failures))
