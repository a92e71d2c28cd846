from datetime import UTC, datetime, timedelta

import pytest

from loyalty.ledger import LedgerRow, replay

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def test_spending_takes_the_oldest_unexpired_points_first():
    # given two lots, the older expiring first
    rows = [
        LedgerRow(1, "earn", 100, _day(0), expires_at=_day(30)),
        LedgerRow(2, "earn", 100, _day(10), expires_at=_day(40)),
        LedgerRow(3, "redeem", -150, _day(20)),
    ]

    # when
    state = replay(rows)

    # then the first lot is spent entirely and half of the second
    assert [lot.remaining for lot in state.lots] == [0, 50]
    assert state.balance == 50
    assert state.due(_day(35)) == ()
    assert [lot.entry_id for lot in state.due(_day(45))] == [2]


def test_a_spend_after_a_lot_expired_skips_it_and_the_expiry_writes_off_only_the_rest():
    # given
    rows = [
        LedgerRow(1, "earn", 100, _day(0), expires_at=_day(30)),
        LedgerRow(2, "earn", 100, _day(10)),
        LedgerRow(3, "redeem", -40, _day(35)),
        LedgerRow(4, "expire", -100, _day(36), expires_entry_id=1),
    ]

    # when
    state = replay(rows)

    # then the spend came from the unexpired lot, and the expired lot was written off in full
    assert [lot.remaining for lot in state.lots] == [0, 60]
    assert state.lot(1).expired == 100
    assert state.balance == 60 == sum(row.points for row in rows)


def test_clawback_takes_its_orders_lot_first_and_may_leave_a_debt_paid_by_the_next_earning():
    # given an order's points spent before its refund
    rows = [
        LedgerRow(1, "earn", 100, _day(0), order_id=7),
        LedgerRow(2, "redeem", -100, _day(1)),
        LedgerRow(3, "clawback", -100, _day(2), order_id=7),
    ]

    # when
    in_debt = replay(rows)
    paid_off = replay([*rows, LedgerRow(4, "earn", 150, _day(3), expires_at=_day(33))])

    # then
    assert in_debt.balance == -100 and in_debt.debt == 100
    assert paid_off.balance == 50
    assert paid_off.lot(4).remaining == 50


@pytest.mark.parametrize("seed", range(20))
def test_balance_equals_the_sum_of_the_rows_after_any_sequence(seed):
    # given a random ledger
    import random

    rng = random.Random(seed)
    rows, moment = [], T0
    for entry_id in range(1, 60):
        moment += timedelta(days=rng.randint(0, 5))
        kind = rng.choice(["earn", "earn", "redeem", "clawback", "adjust", "expire"])
        if kind in ("earn",) or (kind == "adjust" and rng.random() < 0.5):
            rows.append(LedgerRow(entry_id, kind, rng.randint(1, 300), moment, expires_at=moment + timedelta(days=20)))
        else:
            rows.append(LedgerRow(entry_id, kind, -rng.randint(1, 200), moment, order_id=rng.randint(1, 5)))

    # when
    state = replay(rows)

    # then
    assert state.balance == sum(row.points for row in rows)
    assert all(lot.remaining >= 0 for lot in state.lots)
