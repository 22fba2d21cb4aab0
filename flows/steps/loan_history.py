"""Loan state that outlives a run: a loan first met by this run's state step is rebuilt from
the events the store already holds for it, so repayments find applications that an earlier
run (another file, or a run without a recovery directory) stored.

The state step reads the store only for loans it has not met that the store held before this
run began, in one query per batch of them, and only events received before then: this run's
own rows (which the sink may write before the state step sees them) are never taken for
history. Replaying history observes again only repayments that have no live score yet (the
state step died before scoring them, or they waited for an application that arrives now); the
rest are applied silently. A run into a store that held no loans before it (a fresh store)
stops looking at its first batch.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import compress

import numpy as np
import pyarrow as pa
from bytewax.operators import StatefulBatchLogic

from flows.errors import RiskctlError
from flows.events import LoanApplication, LoanRepayment
from flows.hash_set import HashSet
from flows.loan.book import BookOutcome, LoanEvent, Opened, Repaid
from flows.loan.snapshot import BookSnapshot
from flows.sql_literal import sql_string
from flows.steps.loan_state_step import LoanBookLogic, Resume
from flows.store import Store
from flows.validation import decode_event

# A loan id's hash, the same in ClickHouse and here: the CRC-32 of its UTF-8 bytes, then that
# of the bytes reversed (a second linear map, so the pair spans 64 bits). Computed here for a
# batch's loans, no statement per batch is needed; CRC-32 costs a third of MD5 per id, and a
# collision only asks the store about a loan that has no history.
_LOAN_HASH_SQL = (
    "bitOr(bitShiftLeft(toUInt64(CRC32(loan_id)), 32), toUInt64(CRC32(reverse(loan_id))))"
)

_HISTORY_SQL = """
SELECT r.origin AS origin, r.payload AS payload,
       toUnixTimestamp64Micro(r.received_at) AS received_us,
       s.pd AS pd, s.model_version AS model_version,
       r.event_id IN (SELECT event_id FROM repayment_scores WHERE loan_id IN {ids}) AS observed
FROM (SELECT * FROM raw_events WHERE loan_id IN {ids} AND received_at < {before}
      ORDER BY received_at LIMIT 1 BY event_id) AS r
LEFT JOIN (SELECT event_id, any(pd_lifetime) AS pd, any(model_version) AS model_version
           FROM scored_events WHERE loan_id IN {ids} GROUP BY event_id) AS s
    ON s.event_id = r.event_id
ORDER BY received_us, r.event_time, r.event_id
SETTINGS join_use_nulls = 1
"""


def history_sql(loan_ids: list[str], before: datetime) -> str:
    ids = "(" + ", ".join(map(sql_string, loan_ids)) + ")"
    return _HISTORY_SQL.format(ids=ids, before=_moment(before))


class LoanHistory:
    """Events stored before ``before``, per loan; shared by the workers of one process.

    The hashes of the loans stored before are read once, at the first need, into a
    :class:`HashSet` (about 11 bytes a loan, no Python object per loan: a set of five million
    id strings took 1.4 s to build and made every collection of the garbage collector walk it,
    which slowed the whole run 2.5x). Only the loans new to the run whose hash it holds are
    asked about (a hash collision only asks about a loan that has no history). A store that
    fails here goes to ``on_failure`` first, like the sink's failures.
    """

    def __init__(
        self,
        open_store: Callable[[], Store],
        before: datetime,
        on_failure: Callable[[RiskctlError], None] = lambda _error: None,
    ) -> None:
        self._open_store = open_store
        self._before = before
        self._on_failure = on_failure
        self._store: Store | None = None
        self._stored: HashSet | None = None
        self._lock = threading.Lock()
        # Read while the flow starts, not on its thread at the first batch: five million
        # stored loans take about half a second.
        self._early = threading.Thread(target=self._read_early, name="loan-history", daemon=True)
        self._early.start()

    def _read_early(self) -> None:
        try:
            with self._lock:
                self._stored_hashes(self._connected())
        except Exception:
            return  # the first read on the flow's thread tries again, and reports what fails

    def holds_any(self) -> bool:
        """Whether the store held any loan before this run: without one, no loan has history,
        and a step may stop looking for loans it has not met."""
        try:
            with self._lock:
                return len(self._stored_hashes(self._connected())) > 0
        except RiskctlError as exc:
            self._on_failure(exc)
            raise

    def events(self, loan_ids: set[str]) -> tuple[list[LoanEvent], set[str]]:
        """The loans' stored events in arrival order, and the ids of those not yet observed."""
        try:
            with self._lock:
                store = self._connected()
                stored = self._stored_hashes(store)
                if not len(stored) or not loan_ids:
                    return [], set()
                ids = list(loan_ids)
                maybe = stored.contains(loan_hashes(ids))
                # sorted for a statement that does not depend on the set's order
                wanted = sorted(compress(ids, maybe.tolist()))
                if not wanted:
                    return [], set()
                rows = store.query_arrow(history_sql(wanted, self._before))
        except RiskctlError as exc:
            self._on_failure(exc)
            raise
        return history_events(rows)

    def _stored_hashes(self, store: Store) -> HashSet:
        # read once: the loans stored before ``before`` cannot change during the run
        if self._stored is None:
            column = store.query_arrow(stored_loans_sql(self._before)).column(0)
            # sorted here: numpy's sort is ten times ClickHouse's ORDER BY on this
            self._stored = HashSet(np.sort(np.asarray(column.to_numpy(), np.uint64)))
        return self._stored

    def _connected(self) -> Store:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def close(self) -> None:
        self._early.join()
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def _moment(before: datetime) -> str:
    return f"toDateTime64({before.timestamp():.6f}, 6, 'UTC')"


def loan_hashes(loan_ids: Iterable[str]) -> np.ndarray:
    """Each loan id's hash, as ClickHouse computes it in :func:`stored_loans_sql`."""
    encoded = [i.encode() for i in loan_ids]
    crc = zlib.crc32
    forward = np.fromiter(map(crc, encoded), np.uint64, len(encoded))
    backward = np.fromiter((crc(e[::-1]) for e in encoded), np.uint64, len(encoded))
    return (forward << np.uint64(32)) | backward


def stored_loans_sql(before: datetime) -> str:
    """The hash of the loan of each event stored before ``before`` (once per event)."""
    return f"SELECT {_LOAN_HASH_SQL} AS h FROM raw_events WHERE received_at < {_moment(before)}"


def history_events(rows: pa.Table) -> tuple[list[LoanEvent], set[str]]:
    events: list[LoanEvent] = []
    unobserved: set[str] = set()
    for row in rows.to_pylist():
        # Stored rows passed validation when they arrived; decoding cannot fail on them now.
        event = decode_event(row["payload"].encode(), row["origin"], 1 << 62)
        if type(event) is LoanApplication:
            if row["pd"] is not None:
                events.append(Opened(event, row["pd"], row["model_version"]))
        elif type(event) is LoanRepayment:
            received = int(row["received_us"])
            events.append(Repaid(event, row["origin"], received, received // 1000))
            if not row["observed"]:
                unobserved.add(event.event_id)
    return events, unobserved


class HistoryBookLogic(StatefulBatchLogic[list[LoanEvent], BookOutcome, BookSnapshot | None]):
    """:class:`LoanBookLogic`, with each loan it meets first brought up to date from the store."""

    def __init__(self, resume: Resume | None, history: LoanHistory, snapshots: bool = True) -> None:
        self._inner = LoanBookLogic(resume, snapshots)
        self._history: LoanHistory | None = history
        self._met: set[str] = set(self._inner.book.entries)

    def on_batch(self, values: list[list[LoanEvent]]) -> tuple[list[BookOutcome], bool]:
        history = self._history
        if history is not None and not history.holds_any():
            # Nothing stored before the run (a fresh store, the usual bench): no loan can have
            # history, so every later batch skips the scan of its events' loan ids.
            self._history = history = None
        if history is None:
            return self._inner.on_batch(values)
        new = {
            e.app.loan_id if type(e) is Opened else e.event.loan_id
            for events in values
            for e in events
        } - self._met
        out: list[BookOutcome] = []
        if new:
            self._met |= new
            stored, unobserved = history.events(new)
            if stored:
                # Applied before the inner step counts waiting repayments: those stored as
                # waiting were counted by the run that read them.
                observed = self._inner.book.apply(stored)
                again = [o for o in observed if o.repaid.event.event_id in unobserved]
                if again:
                    # the same type as the inner step's: the live scorer takes either
                    out.append(BookOutcome(again, restored=len(again)))
        inner, retain = self._inner.on_batch(values)
        return out + inner, retain

    def snapshot(self) -> BookSnapshot | None:
        return self._inner.snapshot()
