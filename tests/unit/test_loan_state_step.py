"""The loan state step's snapshots: a run without recovery never encodes a loan for a snapshot
(Bytewax still asks at every epoch, through its own runtime here), and its output is the same;
with recovery each snapshot encodes only the loans events reached since the last one, and a
flow resumed from any of them carries on exactly as one never interrupted."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone

import bytewax.operators as op
import msgspec
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.loan import snapshot as snapshot_module
from flows.loan.book import BookEntry, BookOutcome, LoanBook, LoanEvent, Opened, shard_events
from flows.steps.loan_state_step import LoanBookLogic
from tests.unit.test_loan_snapshots import AFTER, BEFORE, OLD_SNAPSHOT, app, rep


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The loans encoded for snapshots, in order (the real encoding, recorded)."""
    loans: list[str] = []
    real = snapshot_module.encode_entry

    def recorded(entry: BookEntry) -> bytes:
        loans.append(entry.state.loan_id)
        return real(entry)

    monkeypatch.setattr(snapshot_module, "encode_entry", recorded)
    return loans


def run_step(batches: list[list[LoanEvent]], snapshots: bool) -> list[BookOutcome]:
    out: list[tuple[str, BookOutcome]] = []
    flow = Dataflow("loan_state_step")
    work = op.flat_map("shard", op.input("in", flow, TestingSource(batches)), shard_events)
    logic = op.stateful_batch("loans", work, lambda resume: LoanBookLogic(resume, snapshots))
    op.output("out", logic, TestingSink(out))
    # an epoch per item: Bytewax asks for a snapshot of every woken key at each one
    run_main(flow, epoch_interval=timedelta(0))
    return [outcome for _, outcome in out]


BATCHES_FLAT = BEFORE + AFTER
BATCHES = [[e] for e in BATCHES_FLAT]


def loan_of(event: LoanEvent) -> str:
    return event.app.loan_id if isinstance(event, Opened) else event.event.loan_id


def encoded_book(book: LoanBook) -> bytes:
    """A book's entries in loan order, encoded: a placeholder's NaN PD equals nothing, and an
    entry's UTC offset shows (equal instants in other offsets compare equal)."""
    return msgspec.msgpack.encode(
        [
            (loan, repr(e.state.origination_time), e.state, e.segment, e.waiting)
            for loan, e in sorted(book.entries.items())
        ]
    )


ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]


def opened(loan: int, zone: int) -> Opened:
    """An application of loan ``loan``, near midnight in ``ZONES[zone]``: its date depends on
    the offset, which a snapshot must therefore keep."""
    event = app(f"L{loan}").app
    moment = datetime(2024, 1, 31, 23, 30, tzinfo=ZONES[zone])
    return Opened(msgspec.structs.replace(event, event_time=moment), 0.05 + loan / 100, "v1")


# (loan, 0: its application in a zone / n > 0: installment n paid some days late or missed)
step_event = st.tuples(
    st.integers(0, 4), st.integers(0, 6), st.sampled_from([0, 3, 20, 45, None]), st.integers(0, 2)
)


def build(raw: list[tuple[int, int, int | None, int]]) -> list[LoanEvent]:
    return [
        opened(loan, zone) if n == 0 else rep(f"L{loan}", n, late, tag=f"z{zone}")
        for loan, n, late, zone in raw
    ]


@settings(max_examples=120, deadline=None)
@given(raw=st.lists(step_event, min_size=1, max_size=40), cuts=st.sets(st.integers(0, 40)))
def test_snapshots_encode_only_what_changed_and_resume_exactly(
    raw: list[tuple[int, int, int | None, int]], cuts: set[int]
) -> None:
    events = build(raw)
    whole = LoanBookLogic(None)
    expected = [whole.on_batch([[e]])[0] for e in events]
    logic = LoanBookLogic(None)
    got: list[BookOutcome] = []
    since: set[str] = set()
    for i, event in enumerate(events):
        got += logic.on_batch([[event]])[0]
        since.add(loan_of(event))
        if i in cuts:
            records = logic.records
            assert records is not None
            before = records.encoded
            snapshot = logic.snapshot()
            assert records.encoded - before == len(since)  # only the loans reached since
            since = set()
            # as Bytewax stores and loads it
            logic = LoanBookLogic(pickle.loads(pickle.dumps(snapshot)))
    assert msgspec.msgpack.encode(got) == msgspec.msgpack.encode(
        [o for outcomes in expected for o in outcomes]
    )
    assert encoded_book(logic.book) == encoded_book(whole.book)
    resumed = LoanBookLogic(pickle.loads(pickle.dumps(logic.snapshot())))
    assert encoded_book(resumed.book) == encoded_book(whole.book)


def test_a_book_resumed_from_the_old_format_encodes_every_loan_once_and_carries_on(
    encoded: list[str],
) -> None:
    whole = LoanBookLogic(None)
    whole.on_batch([BEFORE + AFTER])
    old = pickle.loads(OLD_SNAPSHOT.read_bytes())
    logic = LoanBookLogic(old)
    snapshot = logic.snapshot()
    assert sorted(encoded) == sorted(old)
    again = LoanBookLogic(pickle.loads(pickle.dumps(snapshot)))
    assert again.snapshot() is not None and sorted(encoded) == sorted(old)  # nothing new
    again.on_batch([AFTER])
    assert encoded_book(again.book) == encoded_book(whole.book)


def test_without_recovery_no_epoch_encodes_a_loan_and_the_output_is_the_same(
    encoded: list[str],
) -> None:
    lean = run_step(BATCHES, snapshots=False)
    assert encoded == []
    kept = run_step(BATCHES, snapshots=True)
    # an epoch per event: each encodes the one loan its event reached
    assert encoded == [loan_of(e) for e in BATCHES_FLAT]
    assert msgspec.msgpack.encode(lean) == msgspec.msgpack.encode(kept)


def test_a_logic_without_snapshots_answers_none_and_resumes_from_none() -> None:
    logic = LoanBookLogic(None, snapshots=False)
    logic.on_batch([BEFORE])
    assert len(logic.book) == 2 and logic.snapshot() is None
    assert len(LoanBookLogic(logic.snapshot()).book) == 0


def test_a_snapshot_is_apart_from_the_book_it_was_taken_from() -> None:
    logic = LoanBookLogic(None)
    logic.on_batch([BEFORE])
    snapshot = logic.snapshot()
    assert snapshot is not None
    frozen = pickle.dumps(snapshot)
    logic.on_batch([AFTER])
    assert logic.snapshot() is not None  # records brought up to date by the next one
    assert pickle.dumps(snapshot) == frozen


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=8), st.integers(0, 3)), min_size=0, max_size=60
    )
)
def test_sharding_keeps_each_loans_events_together_and_in_order(
    picks: list[tuple[str, int]],
) -> None:
    """Every event goes to its loan's key (shard_of), each key once, none empty, and a key's
    events keep the batch's order: a loan's state sees its events as they arrived."""
    from flows.loan.book import shard_of

    events: list[LoanEvent] = [app(loan) if n == 0 else rep(loan, n, 0) for loan, n in picks]
    groups = shard_events(events)
    keys = [key for key, _ in groups]
    assert len(keys) == len(set(keys)) and all(group for _, group in groups)
    assert sum(len(group) for _, group in groups) == len(events)
    for key, group in groups:
        expected = [e for e in events if shard_of(_loan(e)) == key]
        assert [id(e) for e in group] == [id(e) for e in expected]


def _loan(event: LoanEvent) -> str:
    return event.app.loan_id if isinstance(event, Opened) else event.event.loan_id
