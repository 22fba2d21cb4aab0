"""Recovery snapshots outlive the code that wrote them: Bytewax pickles each shard's book, and
a pickle names every class by its module. ``data/loan_book_snapshot_d7c1028.pickle`` is the
snapshot the code of commit d7c1028 (before the loan package) wrote for ``BEFORE``; it must
still load, equal what this code builds from the same events, and resume identically."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from flows.events import LoanApplication, LoanRepayment
from flows.loan.book import BookEntry, LoanBook, LoanEvent, Opened, Repaid
from flows.loan.schedule import amortization_schedule, due_date

OLD_SNAPSHOT = Path(__file__).resolve().parent / "data" / "loan_book_snapshot_d7c1028.pickle"
ORIGINATED = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)
SCHEDULE = amortization_schedule(10_000.0, 12.0, 36)


def app(loan: str) -> Opened:
    event = LoanApplication(
        schema_version=1,
        event_type="loan_application",
        event_id=f"app-{loan}",
        loan_id=loan,
        borrower_id=f"B-{loan}",
        event_time=ORIGINATED,
        funded_amnt=10_000.0,
        term_months=36,
        int_rate=12.0,
        sub_grade="B3",
        addr_state="CA",
        verification_status="verified",
        annual_inc=60_000.0,
    )
    return Opened(event, 0.08, "v1")


def rep(loan: str, n: int, late_days: int | None, tag: str = "") -> Repaid:
    """Installment ``n`` of ``loan``, paid ``late_days`` after its due date (None: missed)."""
    due = due_date(ORIGINATED.date(), n)
    missed = late_days is None
    happened = due + timedelta(days=30 if late_days is None else late_days)
    event = LoanRepayment(
        schema_version=1,
        event_type="loan_repayment",
        event_id=f"rep-{loan}-{n}{tag}",
        loan_id=loan,
        event_time=datetime.combine(happened, ORIGINATED.timetz()),
        installment_number=n,
        due_date=due,
        amount_due=332.14,
        amount_paid=0.0 if missed else 332.14,
        payment_date=None if missed else happened,
        outstanding_balance=SCHEDULE[n - 1][4],
    )
    return Repaid(event, f"test:{loan}:{n}", 1_700_000_000_000_000 + n, 1_700_000_000_000 + n)


# L1 open with a late and a missed installment; L2 a repayment waiting for its application
BEFORE: list[LoanEvent] = [
    app("L1"),
    rep("L1", 1, 0),
    rep("L1", 2, 9),
    rep("L1", 3, None),
    rep("L2", 1, 3),
]
AFTER: list[LoanEvent] = [rep("L1", 4, 0), app("L2"), rep("L2", 2, 0), rep("L1", 3, 40, "-fix")]


def test_a_snapshot_written_before_the_loan_package_loads_as_the_same_book() -> None:
    old: dict[str, BookEntry] = pickle.loads(OLD_SNAPSHOT.read_bytes())
    book = LoanBook()
    book.apply(BEFORE)
    # compared encoded: a placeholder's origination PD is NaN, which equals nothing
    assert msgspec.msgpack.encode(old) == msgspec.msgpack.encode(book.snapshot())
    assert not old["L2"].state.is_open and list(old["L2"].waiting) == ["rep-L2-1"]


def test_a_book_resumed_from_the_old_snapshot_carries_on_as_an_uninterrupted_one() -> None:
    whole = LoanBook()
    # L1's three repayments before the snapshot were observed before it
    expected = whole.apply(BEFORE + AFTER)[3:]
    resumed = LoanBook(pickle.loads(OLD_SNAPSHOT.read_bytes()))
    got = resumed.apply(AFTER)
    assert [o.repaid.event.event_id for o in got] == [
        "rep-L1-4",
        "rep-L2-1",
        "rep-L2-2",
        "rep-L1-3-fix",
    ]
    assert msgspec.msgpack.encode(got) == msgspec.msgpack.encode(expected)
    assert msgspec.msgpack.encode(resumed.snapshot()) == msgspec.msgpack.encode(whole.snapshot())
