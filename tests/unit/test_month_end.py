"""Month-end delinquency positions (migration 0040) on chDB against a direct computation with
flows/loan/: days past due at each month's end from the schedule and the payments
received by then, months without events included."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from flows.events import LoanApplication, LoanRepayment
from flows.loan.labels import dpd_bucket
from flows.loan.schedule import add_months, amortization_schedule, due_date
from flows.loan.state import LoanState, apply_repayment, days_past_due, open_loan
from flows.store import Store
from tests.unit.test_loan_state import APP

ORIGINATION = datetime(2024, 1, 10, 9, 30, tzinfo=UTC)


def _app(loan_id: str) -> LoanApplication:
    import msgspec

    return msgspec.structs.replace(APP, loan_id=loan_id, event_id=f"app-{loan_id}",
                                   event_time=ORIGINATION)  # fmt: skip


def _event(app: LoanApplication, n: int, paid: float, on: date | None) -> LoanRepayment:
    """Installment ``n`` paid ``paid`` on ``on``, or missed (``on`` None: reported 30 days
    after its due date)."""
    due = due_date(app.event_time.date(), n)
    schedule = amortization_schedule(app.funded_amnt, app.int_rate, app.term_months)
    happened = on or due + timedelta(days=30)
    balance = schedule[n - 1][4] if paid else schedule[n - 2][4] if n > 1 else app.funded_amnt
    return LoanRepayment(
        schema_version=1,
        event_type="loan_repayment",
        event_id=f"{app.loan_id}-{n}",
        loan_id=app.loan_id,
        event_time=datetime.combine(happened, app.event_time.timetz()),
        installment_number=n,
        due_date=due,
        amount_due=schedule[n - 1][1],
        amount_paid=paid,
        payment_date=on,
        outstanding_balance=balance,
    )


def _late_every_month(app: LoanApplication) -> list[LoanRepayment]:
    """Every installment paid 29 days after it falls due (the next month, before its due
    date): at every month end the latest installment is unpaid, 21 or so days past due."""
    installment = amortization_schedule(app.funded_amnt, app.int_rate, app.term_months)
    return [
        _event(app, n, installment[n - 1][1], due_date(app.event_time.date(), n) + timedelta(29))
        for n in range(1, 7)
    ]


def _silent_month(app: LoanApplication) -> list[LoanRepayment]:
    """Installment 2 (due 10 March) is missed and reported on 9 April, installment 3 pays both
    on its due date: March has no event at all."""
    origination = app.event_time.date()
    rows = amortization_schedule(app.funded_amnt, app.int_rate, app.term_months)
    return [
        _event(app, 1, rows[0][1], due_date(origination, 1)),
        _event(app, 2, 0.0, None),
        _event(app, 3, round(rows[1][1] + rows[2][1], 2), due_date(origination, 3)),
        _event(app, 4, rows[3][1], due_date(origination, 4)),
    ]


def _scored_rows(app: LoanApplication, events: Iterable[LoanRepayment]) -> list[dict]:
    """repayment_scores rows as the live scorer writes them (the columns the views read)."""
    state: LoanState = open_loan(app, 0.05)
    rows = []
    for event in sorted(events, key=lambda e: (e.event_time, e.installment_number)):
        state = apply_repayment(state, event)
        rows.append(
            {
                "event_id": event.event_id,
                "loan_id": app.loan_id,
                "event_time": event.event_time,
                "installment_number": event.installment_number,
                "amount_due": event.amount_due,
                "amount_paid": event.amount_paid,
                "outstanding_balance": event.outstanding_balance,
                "pd_12m": 0.1,
                "lgd": 0.45,
                "band": "high",
                "grade": "B",
                "addr_state": "CA",
                "origination_date": state.origination_date,
                "term_months": state.term_months,
                "installment": state.installment,
                "funded_amnt": state.funded_amnt,
            }
        )
    return rows


def _month_ends(first: date, last: date) -> list[date]:
    ends = []
    month = first.replace(day=1)
    while month <= last:
        ends.append(add_months(month, 1) - timedelta(days=1))
        month = add_months(month, 1)
    return ends


def direct_positions(
    loans: dict[str, tuple[LoanApplication, list[LoanRepayment]]],
) -> dict[tuple[str, date], tuple[int, float]]:
    """(loan, month end) -> (days past due, balance), replaying the events dated by then."""
    as_of = max(e.event_time.date() for _, events in loans.values() for e in events)
    out = {}
    for loan_id, (app, events) in loans.items():
        ordered = sorted(events, key=lambda e: (e.event_time, e.installment_number))
        last = max(e.event_time.date() for e in events)
        for month_end in _month_ends(app.event_time.date(), min(last, as_of)):
            end = min(month_end, as_of)  # the month under way: as of the latest event
            state = open_loan(app, 0.05)
            for event in ordered:
                if event.event_time.date() <= end:
                    state = apply_repayment(state, event)
            out[(loan_id, end)] = (days_past_due(state, end), state.outstanding_balance)
    return out


def view_positions(db: Store) -> dict[tuple[str, date], tuple[int, float, str]]:
    rows = db.query_arrow(
        "SELECT loan_id, month_end, days_past_due, balance, dpd_bucket FROM loan_month_end"
    ).to_pylist()
    return {
        (r["loan_id"], r["month_end"]): (r["days_past_due"], r["balance"], r["dpd_bucket"])
        for r in rows
    }


@pytest.fixture
def hand_loans(store: Store) -> dict[str, tuple[LoanApplication, list[LoanRepayment]]]:
    late, silent = _app("LATE"), _app("SILENT")
    loans = {"LATE": (late, _late_every_month(late)), "SILENT": (silent, _silent_month(silent))}
    rows = [row for app, events in loans.values() for row in _scored_rows(app, events)]
    store.insert_arrow("repayment_scores", pa.Table.from_pylist(rows))
    return loans


def test_month_end_positions_equal_the_direct_computation(store: Store, hand_loans: dict) -> None:
    want = direct_positions(hand_loans)
    got = view_positions(store)
    assert got.keys() == want.keys()
    for key, (dpd, balance) in want.items():
        assert got[key][0] == dpd, key
        assert got[key][1] == pytest.approx(balance), key
        assert got[key][2] == dpd_bucket(dpd), key


def test_a_loan_paying_late_every_month_is_never_current_at_a_month_end(
    store: Store, hand_loans: dict
) -> None:
    got = view_positions(store)
    # installment 6 is paid on 8 August, the latest event: August is read on that day
    assert got[("LATE", date(2024, 8, 8))][0] == 0
    late = sorted((end, v) for (loan, end), v in got.items() if loan == "LATE" and end.day != 8)
    # January: nothing due yet. From February on, the month's installment is unpaid at its end.
    assert late[0][1][0] == 0
    assert [v[2] for _, v in late[1:]] == ["1-29"] * (len(late) - 1)
    assert [v[0] for _, v in late[1:]] == [(end - date(end.year, end.month, 10)).days
                                           for end, _ in late[1:]]  # fmt: skip


def test_a_month_without_events_still_has_a_position(store: Store, hand_loans: dict) -> None:
    got = view_positions(store)
    march = got[("SILENT", date(2024, 3, 31))]
    assert march[0] == 21 and march[2] == "1-29"  # installment 2, due 10 March, unpaid
    assert got[("SILENT", date(2024, 4, 30))][0] == 0  # cured on 10 April


def test_roll_rates_count_each_loan_between_consecutive_month_ends(
    store: Store, hand_loans: dict
) -> None:
    by_month = {
        (loan, end.replace(day=1)): v[2] for (loan, end), v in view_positions(store).items()
    }
    moves: Counter[tuple[date, str, str]] = Counter()
    for (loan, month), bucket in by_month.items():
        following = (loan, add_months(month, 1))
        if following in by_month:
            moves[(month, bucket, by_month[following])] += 1
    rows = store.query_arrow("SELECT month, from_bucket, to_bucket, loans, rate FROM roll_rates")
    view = {(r["month"], r["from_bucket"], r["to_bucket"]): r["loans"] for r in rows.to_pylist()}
    assert view == dict(moves)
    assert all(0.0 <= r <= 1.0 for r in rows.column("rate").to_pylist())
    # the cure shows as a roll back to current
    assert view[(date(2024, 3, 1), "1-29", "current")] == 1


def test_current_expected_loss_is_on_a_12_month_horizon(store: Store) -> None:
    """A loan scored only at origination (a lifetime PD over 36 months) counts its 12-month
    share; a loan with a live (12-month) score counts as stored."""
    at = datetime(2024, 3, 1, tzinfo=UTC)
    common = {"event_time": at, "band": "high", "grade": "C", "addr_state": "TX",
              "exposure": 10_000.0, "lgd": 0.45, "model_version": "v"}  # fmt: skip
    store.insert_arrow(
        "scored_events",
        pa.Table.from_pylist(
            [
                {
                    **common,
                    "event_id": "a1",
                    "loan_id": "ORIG",
                    "pd_lifetime": 0.30,
                    "expected_loss_lifetime": 1350.0,
                    "term_months": 36,
                },
                {
                    **common,
                    "event_id": "a2",
                    "loan_id": "LIVE",
                    "pd_lifetime": 0.30,
                    "expected_loss_lifetime": 1350.0,
                    "term_months": 36,
                },
            ]
        ),
    )
    store.insert_arrow(
        "repayment_scores",
        pa.Table.from_pylist(
            [
                {
                    **common,
                    "event_id": "r1",
                    "loan_id": "LIVE",
                    "installment_number": 1,
                    "event_time": at + timedelta(days=30),
                    "pd_12m": 0.05,
                    "expected_loss_12m": 225.0,
                    "term_months": 36,
                }
            ]
        ),
    )
    [row] = store.query_arrow(
        "SELECT sum(expected_loss_12m) AS el, sum(loans) AS loans FROM expected_loss_current"
    ).to_pylist()
    twelve_month = 1 - (1 - 0.30) ** (12 / 36)
    assert row["loans"] == 2
    assert row["el"] == pytest.approx(1350.0 * twelve_month / 0.30 + 225.0)
