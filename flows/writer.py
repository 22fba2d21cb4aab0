"""Write scored batches to the store exactly once per key, retrying while the store is down.

Bytewax delivers at least once: after a crash it replays everything since the last snapshot.
The writer drops rows whose key the target table already holds (and repeats within the batch),
so a replayed batch adds nothing and the materialized views, which fire on inserted rows, count
each event once. What remains goes through the store's journal (:mod:`flows.store.journal`):
recorded whole, then inserted table by table under deduplication tokens, so a crash between
or inside those inserts is completed, not skipped, when the next writer connects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flows.batches import ScoredBatch, pending_change
from flows.duplicates import split_conflicts
from flows.errors import RiskctlError
from flows.store import journal
from flows.store.base import Store, StoreUnavailable

_NO_ROWS = pa.table({})
_T = TypeVar("_T")

TARGETS = (
    ("raw_events", "event_id"),
    ("dead_letters", "dead_letter_id"),
    ("scored_events", "event_id"),
    ("repayment_scores", "event_id"),
    ("shadow_scores", "event_id"),
)


class SinkDeadlineExceeded(RiskctlError):
    """The store stayed unreachable past the configured deadline; nothing was skipped."""


@dataclass(frozen=True)
class RetryPolicy:
    deadline_s: float = 300.0
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0


@dataclass(frozen=True)
class WriteResult:
    sent: int
    scored: int
    dead_lettered: int
    duplicates: int


@dataclass
class RunStats:
    """Counters shared by the workers of one process."""

    sent: int = 0
    scored: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    store_retries: int = 0
    pending_repayments: int = 0
    # the signal (or other cause) that ended the run before its inputs did
    stopped_by: str | None = None
    started: float = field(default_factory=time.perf_counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


def first_occurrences(table: pa.Table, key: str) -> pa.Table:
    """Rows whose key has not appeared earlier in the table, in their order."""
    column = table.column(key)
    if pc.count_distinct(column, mode="all").as_py() == table.num_rows:
        return table  # the usual case, checked without leaving Arrow
    positions = pa.table({"key": column, "at": np.arange(table.num_rows)})
    firsts = positions.group_by("key", use_threads=False).aggregate([("at", "min")])
    return table.take(np.sort(firsts.column("at_min").to_numpy()))


def without_keys(table: pa.Table, key: str, present: pa.Array) -> pa.Table:
    if not len(present):
        return table
    return table.filter(pc.invert(pc.is_in(table.column(key), value_set=present)))


class IdempotentWriter:
    def __init__(
        self,
        open_store: Callable[[], Store],
        stats: RunStats,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._open_store = open_store
        self._store: Store | None = None
        self._stats = stats
        self._retry = retry or RetryPolicy()
        self._sleep = sleep

    def write(self, batches: list[ScoredBatch]) -> WriteResult:
        if not batches:
            return WriteResult(0, 0, 0, 0)
        candidates: dict[str, tuple[str, pa.Table]] = {}
        conflicts = _NO_ROWS
        for table_name, key in TARGETS:
            parts = [
                t for b in batches if (t := b.tables.get(table_name)) is not None and t.num_rows
            ]
            if table_name == "dead_letters" and conflicts.num_rows:
                parts.append(conflicts)
            if not parts:
                continue
            # One contiguous chunk per column: chDB reads many small chunks far more slowly.
            data = pa.concat_tables(parts).combine_chunks() if len(parts) > 1 else parts[0]
            if table_name == "raw_events":
                # Found before raw_events is written: the table holds each id's first content.
                data, conflicts = self._with_retry(
                    lambda d=data: split_conflicts(self._connected(), d)
                )
            if data.num_rows:
                candidates[table_name] = (key, first_occurrences(data, key))
        entry = self._with_retry(lambda: self._fresh(candidates))
        if entry.tables:
            # Journal first, tables after: see flows.store.journal for why this survives a crash.
            self._with_retry(lambda: journal.record(self._connected(), entry))
            self._with_retry(lambda: journal.apply(self._connected(), entry))
        fresh = {
            name: entry.tables[name].num_rows if name in entry.tables else 0
            for name, _key in TARGETS
        }
        # Every batch counts what it read: scores, dead letters and the repeats the per-loan
        # state skipped. A conflicting duplicate was counted already, by its score row or as a
        # repeat; as a dead letter it moves from skipped to dead-lettered.
        sent = sum(b.sent for b in batches)
        scored = fresh["scored_events"] + fresh["repayment_scores"]
        dead_lettered = fresh["dead_letters"]
        result = WriteResult(
            sent=sent,
            scored=scored,
            dead_lettered=dead_lettered,
            duplicates=sent - scored - dead_lettered,
        )
        self._stats.add(
            pending_repayments=pending_change(batches),
            sent=result.sent,
            scored=result.scored,
            dead_lettered=result.dead_lettered,
            duplicates=result.duplicates,
        )
        return result

    def append(self, table: str, data: pa.Table) -> None:
        """Insert rows that need no de-duplication (operational figures), with the same retries."""
        if data.num_rows:
            self._with_retry(lambda: self._append(table, data))

    def _append(self, table: str, data: pa.Table) -> int:
        self._connected().insert_arrow(table, data)
        return data.num_rows

    @property
    def stats(self) -> RunStats:
        return self._stats

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _fresh(self, candidates: dict[str, tuple[str, pa.Table]]) -> journal.Entry:
        """The rows of each table whose keys it does not hold yet, as one journal entry."""
        store = self._connected()
        tables: dict[str, pa.Table] = {}
        for table, (key, data) in candidates.items():
            present = store.existing_keys(table, key, data.column(key).combine_chunks())
            tables[table] = without_keys(data, key, present)
        shadow = tables.get("shadow_scores")
        if shadow is not None:
            # A challenger's row only beside a score issued in this write: a replay of events
            # an earlier run scored must not pair today's challenger with yesterday's score.
            issued = tables.get("scored_events")
            ids = (
                issued.column("event_id").combine_chunks()
                if issued is not None
                else pa.array([], pa.string())
            )
            keep = pc.is_in(shadow.column("event_id"), value_set=ids)
            tables["shadow_scores"] = shadow.filter(keep)
        return journal.Entry.new(tables)

    def _connected(self) -> Store:
        """The open store; on (re)connecting, first complete whatever an earlier write left
        half done, so that the key checks after it see every write whole."""
        if self._store is None:
            store = self._open_store()
            try:
                journal.complete_pending(store)
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store

    def _with_retry(self, action: Callable[[], _T]) -> _T:
        deadline = time.monotonic() + self._retry.deadline_s
        backoff = self._retry.initial_backoff_s
        while True:
            try:
                return action()
            except StoreUnavailable as exc:
                self.close()
                if time.monotonic() + backoff > deadline:
                    raise SinkDeadlineExceeded(
                        f"store unavailable for more than {self._retry.deadline_s:.0f}s: {exc}"
                    ) from exc
                self._stats.add(store_retries=1)
                self._sleep(backoff)
                backoff = min(backoff * 2, self._retry.max_backoff_s)
