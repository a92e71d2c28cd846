"""The points ledger replayed in time order: which points are still unspent, and when they expire.

The balance is the sum of the ledger; what the sum cannot tell is *which* points are left. Every positive
entry (an earn, a positive adjustment) is a lot; spending takes the oldest unexpired lots first (FIFO), so
only what is left of a lot when it expires is written off, and spent points never expire. A clawback takes
its own order's lot first. Spending more than the lots hold (a refund after the points were spent) leaves a
debt: the balance is negative, and the next points earned pay it off before they form a lot.

Pure Python (no Django), so the rules can be tested on their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

CLAWBACK = "clawback"
EXPIRE = "expire"


@dataclass(frozen=True, slots=True)
class LedgerRow:
    entry_id: int
    kind: str
    points: int
    created_at: datetime
    expires_at: datetime | None = None
    # Clawbacks: the order whose lot they take first.
    order_id: int | None = None
    # Expiries: the entry (lot) they write off.
    expires_entry_id: int | None = None


@dataclass(slots=True)
class Lot:
    entry_id: int
    created_at: datetime
    expires_at: datetime | None
    points: int
    order_id: int | None
    remaining: int
    expired: int = 0

    def is_expired_at(self, moment: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= moment


@dataclass(frozen=True, slots=True)
class LedgerState:
    lots: tuple[Lot, ...]
    debt: int

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots) - self.debt

    def lot(self, entry_id: int) -> Lot | None:
        return next((lot for lot in self.lots if lot.entry_id == entry_id), None)

    def due(self, now: datetime) -> tuple[Lot, ...]:
        """Lots past their expiry with points left, not yet written off."""
        return tuple(lot for lot in self.lots if lot.remaining > 0 and lot.is_expired_at(now))

    def expiring_by(self, horizon: datetime) -> tuple[Lot, ...]:
        """Lots with points left that expire at or before `horizon`, soonest first."""
        lots = [lot for lot in self.lots if lot.remaining > 0 and lot.expires_at is not None]
        return tuple(sorted((lot for lot in lots if lot.expires_at <= horizon), key=lambda lot: lot.expires_at))


def _take(lot: Lot, wanted: int) -> int:
    taken = min(lot.remaining, wanted)
    lot.remaining -= taken
    return taken


def _spend(lots: list[Lot], wanted: int, moment: datetime, first: Lot | None = None) -> int:
    """Take `wanted` points, `first`'s lot first, then the oldest unexpired lots, then lots past their expiry
    not yet written off; return what could not be taken (the new debt)."""
    if first is not None:
        wanted -= _take(first, wanted)
    for lot in lots:
        if wanted == 0:
            return 0
        if not lot.is_expired_at(moment):
            wanted -= _take(lot, wanted)
    for lot in lots:
        if wanted == 0:
            return 0
        wanted -= _take(lot, wanted)
    return wanted


def replay(rows: Iterable[LedgerRow]) -> LedgerState:
    """The lots left after every row, applied in (created_at, entry_id) order."""
    lots: list[Lot] = []
    debt = 0
    for row in sorted(rows, key=lambda row: (row.created_at, row.entry_id)):
        if row.points > 0:
            paid = min(debt, row.points)
            debt -= paid
            lots.append(
                Lot(
                    entry_id=row.entry_id,
                    created_at=row.created_at,
                    expires_at=row.expires_at,
                    points=row.points,
                    order_id=row.order_id,
                    remaining=row.points - paid,
                )
            )
            continue
        wanted = -row.points
        first = None
        if row.kind == EXPIRE and row.expires_entry_id is not None:
            first = next((lot for lot in lots if lot.entry_id == row.expires_entry_id), None)
            if first is not None:
                first.expired += min(first.remaining, wanted)
        elif row.kind == CLAWBACK and row.order_id is not None:
            first = next((lot for lot in lots if lot.order_id == row.order_id), None)
        debt += _spend(lots, wanted, row.created_at, first=first)
    return LedgerState(lots=tuple(lots), debt=debt)
