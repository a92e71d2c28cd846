"""Run the same work on several threads at once, each with its own database connection: how the PostgreSQL race
tests (caps, budgets, redemptions, hand-overs) start their contenders together."""

import threading
from collections.abc import Callable

from django.db import connections


def run_at_once(
    count: int, work: Callable[[int], object], *, expected: tuple[type[Exception], ...] = (), timeout: float = 120
) -> tuple[list, list]:
    """`work(index)` on `count` threads released together by a barrier. Returns (outcomes, errors): what each
    returned, or raised among the `expected` exceptions (a refusal is an outcome), and any other exception."""
    barrier = threading.Barrier(count)
    outcomes, errors = [], []

    def run(index: int) -> None:
        try:
            barrier.wait()
            outcomes.append(work(index))
        except expected as refused:
            outcomes.append(refused)
        except Exception as error:  # noqa: BLE001 - reported by the caller's assertions
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return outcomes, errors
