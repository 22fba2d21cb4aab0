"""The loan state step's snapshots, through Bytewax's own runtime: a run without recovery never
copies a book for a snapshot (Bytewax still asks at every epoch), and its output is the same."""

from __future__ import annotations

from datetime import timedelta

import bytewax.operators as op
import msgspec
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.loan.book import LoanBook, LoanEvent, shard_events
from flows.steps.loan_state_step import BookOutcome, LoanBookLogic
from tests.unit.test_loan_snapshots import AFTER, BEFORE


@pytest.fixture
def book_copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times a loan book was copied for a snapshot (the real copy, counted)."""
    copies = [0]
    real = LoanBook.snapshot

    def counted(book: LoanBook) -> object:
        copies[0] += 1
        return real(book)

    monkeypatch.setattr(LoanBook, "snapshot", counted)
    return copies


def run_step(batches: list[list[LoanEvent]], snapshots: bool) -> list[BookOutcome]:
    out: list[tuple[str, BookOutcome]] = []
    flow = Dataflow("loan_state_step")
    work = op.flat_map("shard", op.input("in", flow, TestingSource(batches)), shard_events)
    logic = op.stateful_batch("loans", work, lambda resume: LoanBookLogic(resume, snapshots))
    op.output("out", logic, TestingSink(out))
    # an epoch per item: Bytewax asks for a snapshot of every woken key at each one
    run_main(flow, epoch_interval=timedelta(0))
    return [outcome for _, outcome in out]


BATCHES = [[e] for e in BEFORE + AFTER]


def test_without_recovery_no_epoch_copies_a_book_and_the_output_is_the_same(
    book_copies: list[int],
) -> None:
    lean = run_step(BATCHES, snapshots=False)
    assert book_copies[0] == 0
    kept = run_step(BATCHES, snapshots=True)
    assert book_copies[0] >= len(BATCHES)  # at least one woken key per epoch
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
    frozen = msgspec.msgpack.encode(snapshot)
    logic.on_batch([AFTER])
    assert msgspec.msgpack.encode(snapshot) == frozen
