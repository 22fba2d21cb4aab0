"""Recovery snapshots outlive the code that wrote them: Bytewax pickles each shard's book, and
a pickle names every class by its module. ``data/loan_book_snapshot_d7c1028.pickle`` is the
snapshot the code of commit d7c1028 (before the loan package) wrote for ``BEFORE``; it must
still load, equal what this code builds from the same events, and resume identically."""

from __future__ import annotations

import gc
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.events import LoanApplication, LoanRepayment
from flows.loan.book import BookEntry, LoanBook, LoanEvent, Opened, Repaid, opens_safely
from flows.loan.schedule import amortization_schedule, due_date
from flows.loan.snapshot import encode_entry
from flows.loan.state import apply_repayment, open_loan

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


def encoded(entries: dict[str, BookEntry]) -> bytes:
    """Entries as msgpack, each as its (state, segment, waiting)."""
    return msgspec.msgpack.encode(entries, enc_hook=BookEntry.fields)


def test_a_snapshot_written_before_the_loan_package_loads_as_the_same_book() -> None:
    old: dict[str, BookEntry] = pickle.loads(OLD_SNAPSHOT.read_bytes())
    book = LoanBook()
    book.apply(BEFORE)
    # compared encoded: a placeholder's origination PD is NaN, which equals nothing
    assert encoded(old) == encoded(book.snapshot())
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
    assert encoded(resumed.snapshot()) == encoded(whole.snapshot())


def test_a_loan_that_has_only_opened_builds_its_state_at_its_first_read() -> None:
    opened = app("L1")
    book = LoanBook()
    book.apply([opened])
    entry = book.entries["L1"]
    assert entry._state is None  # a run of applications alone schedules no installments
    assert entry.state == open_loan(opened.app, opened.pd)
    # pickled as before (recovery snapshots of earlier versions and this one interchange)
    lean = LoanBook()
    lean.apply([opened])
    restored = pickle.loads(pickle.dumps(lean.entries["L1"]))
    assert type(restored) is BookEntry and restored == BookEntry(*entry.fields())
    assert restored.__getstate__() == BookEntry(*entry.fields()).__getstate__()
    first = rep("L1", 1, 0)
    (observed,) = LoanBook().apply([opened, first])
    assert observed.state == apply_repayment(open_loan(opened.app, opened.pd), first.event)


# numbers of every kind, the schema's edges and values inside it often enough to combine
FIELD_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e-9, 12.0, 100.0, 10_000.0, 1e7]),
    st.integers(-100, 100),
)


@settings(max_examples=400, deadline=None)
@given(
    amount=FIELD_VALUES,
    rate=FIELD_VALUES | st.none(),
    term=st.sampled_from([36, 60]) | st.integers(-5, 700),
    year=st.sampled_from([1, 1969, 1970, 1971, 2099, 2100, 9995, 9999]) | st.integers(1, 9999),
    pd=st.floats(allow_nan=True),
)
def test_an_application_kept_unopened_always_opens(
    amount: float, rate: float | None, term: int, year: int, pd: float
) -> None:
    # Built past validation, as nothing stops a caller: a deferred opening must never fail,
    # or the first repayment would be blamed for its application.
    built = msgspec.structs.replace(
        app("L1").app,
        funded_amnt=amount,
        int_rate=rate,
        term_months=term,
        event_time=datetime(year, 6, 1, tzinfo=UTC),
    )
    if opens_safely(built):
        open_loan(built, pd)


def test_the_running_book_leaves_nothing_per_loan_for_the_garbage_collector() -> None:
    """A full collection walks every object the collector tracks: nothing the book keeps per
    loan (entries, states, their windows, waiting repayments) may be one, or each collection
    would walk the whole book."""
    book = LoanBook()
    gc.collect()
    before = len(gc.get_objects())
    for i in range(300):
        loan = f"G{i}"
        # open with history, lean (only opened), and waiting for its application
        events: list[LoanEvent] = [app(loan), rep(loan, 1, 0), rep(loan, 2, None), rep(loan, 3, 5)]
        book.apply(events if i % 3 == 0 else events[:1] if i % 3 == 1 else events[1:])
    # tuples of untracked values are untracked by the collections that examine them
    gc.collect()
    gc.collect()
    assert len(book) == 300
    assert not any(gc.is_tracked(entry) for entry in book.entries.values())
    assert len(gc.get_objects()) - before < 30


def test_a_waiting_repayment_pickles_as_versions_before_its_event_time_field_read_it() -> None:
    waiting = rep("L9", 2, 4)
    # the four fields an older Repaid takes, positionally; loading computes the event time
    cls, args = waiting.__reduce__()
    assert cls is Repaid and len(args) == 4
    restored = pickle.loads(pickle.dumps(waiting))
    assert restored == waiting and restored.event_ms == waiting.event_ms
    book = LoanBook()
    book.apply([waiting])
    record = encode_entry(book.entries["L9"])
    assert pickle.loads(record).waiting == {waiting.event.event_id: waiting}
