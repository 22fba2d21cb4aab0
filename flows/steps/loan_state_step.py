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

from bytewax.operators import StatefulBatchLogic

from flows.loan.book import BookEntry, BookOutcome, LoanBook, LoanEvent, Observation
from flows.loan.snapshot import BookSnapshot, SnapshotRecords

# What a recovery directory may hold for a shard: this code's snapshot, or the whole-book dict
# earlier versions wrote (still resumed; the first snapshot after it encodes every loan).
Resume = BookSnapshot | dict[str, BookEntry]


class LoanBookLogic(StatefulBatchLogic[list[LoanEvent], BookOutcome, BookSnapshot | None]):
    """``snapshots``: whether the run keeps recovery snapshots (False: ``snapshot()`` is None,
    and the book keeps nothing for them). With them, a snapshot encodes only the loans events
    reached since the last one (:mod:`flows.loan.snapshot`)."""

    def __init__(self, resume: Resume | None, snapshots: bool = True) -> None:
        self.records: SnapshotRecords | None = None
        if isinstance(resume, BookSnapshot):
            self.book = LoanBook(resume.entries(), track_changes=snapshots)
            if snapshots:
                self.records = SnapshotRecords(resume.records)
                self.book.take_changed()  # the records already hold every loan as it is
        else:
            self.book = LoanBook(resume, track_changes=snapshots)
            self.records = SnapshotRecords() if snapshots else None

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
        if self.records is None:
            return None
        return self.records.take(self.book.entries, self.book.take_changed())
