"""The per-loan state as a Bytewax stateful step: one :class:`LoanBook` per state key (a
shard of loan ids), snapshotted with the recovery snapshots so a restarted flow resumes with
the state its last snapshot had; repayments replayed after it are applied again, idempotently.

Bytewax asks every state key it woke for a snapshot at the end of every epoch, with or without
recovery. A run without recovery never reads them back, so there ``snapshot()`` returns None
at once (the resume path takes None as "nothing to resume") instead of copying the shard.

Every repayment leaves the step accounted for: observed (to be scored), waiting for its
application (``pending_change``), a repeat of an event already applied (``repeats``), or a
dead letter when the state logic failed on it (the book unchanged by it).
"""

from __future__ import annotations

import msgspec
from bytewax.operators import StatefulBatchLogic

from flows.loan.book import BookEntry, LoanBook, LoanEvent, Observation
from flows.validation import DeadLetter

BookSnapshot = dict[str, BookEntry]


class BookOutcome(msgspec.Struct, frozen=True):
    """What one batch of a shard's events did to its book."""

    observed: list[Observation]
    pending_change: int = 0  # net repayments now waiting (negative once applied)
    repeats: int = 0
    dead: list[DeadLetter] = msgspec.field(default_factory=list)


class LoanBookLogic(StatefulBatchLogic[list[LoanEvent], BookOutcome, BookSnapshot | None]):
    """``snapshots``: whether the run keeps recovery snapshots (False: ``snapshot()`` is None)."""

    def __init__(self, resume: BookSnapshot | None, snapshots: bool = True) -> None:
        self.book = LoanBook(resume)
        self.snapshots = snapshots

    def on_batch(self, values: list[list[LoanEvent]]) -> tuple[list[BookOutcome], bool]:
        observed: list[Observation] = []
        pending_before = self.book.pending
        for events in values:
            observed.extend(self.book.apply(events))
        dead, repeats = self.book.take_rejected()
        outcome = BookOutcome(observed, self.book.pending - pending_before, repeats, dead)
        keep = observed or outcome.pending_change or repeats or dead
        return ([outcome] if keep else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> BookSnapshot | None:
        return self.book.snapshot() if self.snapshots else None
