"""What every long model run (a demand fit, an insight run) shares: its progress, passed to the caller's
callback (a terminal bar) and written to the run's row for the screens only when it visibly moved, so a fast
loop does not hammer the database; and its failure, recorded on the row with an audit entry."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import models, transaction
from django.utils import timezone

from revopt.tenancy.services import audit_log_write

Progress = Callable[[float], None]

PROGRESS_STEP = 0.05
PROGRESS_SECONDS = 2.0


class RunProgress:
    """Callable with a share in [0, 1]; `run` is a merchant-owned row with a `progress` field."""

    def __init__(self, run: models.Model, callback: Progress | None) -> None:
        self.run = run
        self.callback = callback
        self.written = run.progress
        self.written_at = time.monotonic()

    def __call__(self, share: float) -> None:
        share = min(max(float(share), 0.0), 1.0)
        if self.callback is not None:
            self.callback(share)
        moved = share - self.written >= PROGRESS_STEP
        if moved or (share > self.written and time.monotonic() - self.written_at >= PROGRESS_SECONDS):
            type(self.run).objects.for_merchant(self.run.merchant_id).filter(pk=self.run.pk).update(progress=share)
            self.run.progress, self.written, self.written_at = share, share, time.monotonic()

    def stage(self, start: float, end: float) -> Progress:
        """The callback for one stage of the run, mapping its own 0 → 1 onto start → end."""
        return lambda share: self(start + (end - start) * min(max(float(share), 0.0), 1.0))


def run_failed(*, run: models.Model, error: Exception, action: str) -> None:
    """Mark the run FAILED with the error, and audit it; the run in service stays the previous succeeded one."""
    with transaction.atomic():
        run.status = "failed"  # ModelRunStatus.FAILED and RunStatus.FAILED alike
        run.finished_at = timezone.now()
        run.error = f"{type(error).__name__}: {error}"[:5000]
        run.save(update_fields=["status", "finished_at", "error"])
        audit_log_write(
            merchant=run.merchant,
            actor=None,
            action=action,
            target=run,
            detail={"status": run.status, "error": run.error[:500]},
        )


def bar_progress(bar) -> Progress:
    """A Progress that moves a terminal bar (a tqdm of total 100) to the run's share, for management commands."""

    def progress(share: float) -> None:
        bar.n = round(min(max(share, 0.0), 1.0) * 100)
        bar.refresh()

    return progress
