"""The per-loan state as a Bytewax stateful step: one :class:`LoanBook` per state key (a
shard of loan ids), snapshotted with the recovery snapshots so a restarted flow resumes with
the state its last snapshot had; repayments replayed after it are applied again, idempotently.
"""

from __future__ import annotations

from bytewax.operators import StatefulBatchLogic

from flows.loan_book import BookEntry, LoanBook, LoanEvent, Observation

BookSnapshot = dict[str, BookEntry]


class LoanBookLogic(
    StatefulBatchLogic[list[LoanEvent], tuple[list[Observation], int], BookSnapshot]
):
    def __init__(self, resume: BookSnapshot | None) -> None:
        self.book = LoanBook(resume)

    def on_batch(
        self, values: list[list[LoanEvent]]
    ) -> tuple[list[tuple[list[Observation], int]], bool]:
        observed: list[Observation] = []
        pending_before = self.book.pending
        for events in values:
            observed.extend(self.book.apply(events))
        # Net change of repayments waiting for their application (negative once they are applied).
        pending_change = self.book.pending - pending_before
        out = [(observed, pending_change)] if observed or pending_change else []
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> BookSnapshot:
        return self.book.snapshot()
