"""Write scored batches to the store exactly once per key, retrying while the store is down.

Bytewax delivers at least once: after a crash it replays everything since the last snapshot.
Before each insert the writer drops rows whose key is already in the target table (and
repeats within the batch), so a replayed batch adds nothing and the materialized views, which
fire on inserted rows, count each event once. The scored table goes last: its keys are what
the sink's own statistics and the views trust.
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

from flows.duplicates import split_conflicts
from flows.errors import RiskctlError
from flows.scoring import ScoredBatch
from flows.store.base import Store, StoreUnavailable

_NO_ROWS = pa.table({})
T = TypeVar("T")

TARGETS = (
    ("raw_events", "event_id", "raw"),
    ("dead_letters", "dead_letter_id", "dead"),
    ("scored_events", "event_id", "scored"),
    ("repayment_scores", "event_id", "repayments"),
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
        fresh_counts: dict[str, int] = {}
        offered: dict[str, int] = {}
        conflicts = _NO_ROWS
        for table_name, key, attr in TARGETS:
            parts = [t for t in (getattr(b, attr) for b in batches) if t.num_rows]
            if attr == "dead" and conflicts.num_rows:
                parts.append(conflicts)
            if not parts:
                offered[attr] = fresh_counts[attr] = 0
                continue
            # One contiguous chunk per column: chDB reads many small chunks far more slowly.
            data = pa.concat_tables(parts).combine_chunks() if len(parts) > 1 else parts[0]
            offered[attr] = data.num_rows
            if data.num_rows == 0:
                fresh_counts[attr] = 0
                continue
            if attr == "raw":
                # Found before raw_events is written: the table holds each id's first content.
                data, conflicts = self._with_retry(
                    lambda d=data: split_conflicts(self._connected(), d)
                )
            data = first_occurrences(data, key)
            inserted = self._with_retry(
                lambda t=table_name, k=key, d=data: self._insert_new(t, k, d)
            )
            fresh_counts[attr] = inserted
        # repeats the per-loan state recognised were read too, and are skipped
        repeats = sum(b.skipped for b in batches)
        # A conflicting duplicate was counted already, by its score row or as a repeat; as a
        # dead letter it moves from skipped to dead-lettered.
        dead_offered = offered["dead"] - conflicts.num_rows
        sent = offered["scored"] + offered["repayments"] + dead_offered + repeats
        scored = fresh_counts["scored"] + fresh_counts["repayments"]
        result = WriteResult(
            sent=sent,
            scored=scored,
            dead_lettered=fresh_counts["dead"],
            duplicates=sent - scored - fresh_counts["dead"],
        )
        self._stats.add(
            pending_repayments=sum(b.pending_repayments for b in batches),
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

    def _insert_new(self, table: str, key: str, data: pa.Table) -> int:
        store = self._connected()
        present = store.existing_keys(table, key, data.column(key).combine_chunks())
        data = without_keys(data, key, present)
        store.insert_arrow(table, data)
        return data.num_rows

    def _connected(self) -> Store:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def _with_retry(self, action: Callable[[], T]) -> T:
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
