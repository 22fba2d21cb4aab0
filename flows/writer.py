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

from flows.batches import ScoredBatch, pending_change, restored_rows
from flows.duplicates import split_conflicts
from flows.errors import RiskctlError
from flows.hash_set import Hashes
from flows.seen_keys import STORED_KEYS, SeenKeys, new_writer_id, stored_key_rows
from flows.store import journal
from flows.store.base import Store, StoreUnavailable

# Carried beside each table's rows through the write, dropped before the insert.
_KEY_HASH = "_key_hash"
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
    # live scores a rerun wrote for stored repayments that had none (not counted in ``scored``)
    restored: int = 0
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


def _gathered(batches: list[ScoredBatch]) -> dict[str, pa.Table]:
    """Each target table's rows from all ``batches``."""
    gathered: dict[str, pa.Table] = {}
    for table_name, _key in TARGETS:
        parts = [t for b in batches if (t := b.tables.get(table_name)) is not None and t.num_rows]
        if parts:
            # One contiguous chunk per column: chDB reads many small chunks far more slowly.
            gathered[table_name] = (
                pa.concat_tables(parts).combine_chunks() if len(parts) > 1 else parts[0]
            )
    return gathered


def _with_key_hashes(store: Store, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Each table with its keys' hashes as a column ``_KEY_HASH``, from one store query."""
    chunks = [
        chunk
        for name, key in TARGETS
        if (t := tables.get(name)) is not None
        for chunk in t.column(key).chunks
    ]
    if not chunks:
        return dict(tables)
    hashes = store.key_hashes(pa.chunked_array(chunks, pa.string()).combine_chunks())
    found: dict[str, pa.Table] = {}
    at = 0
    for name, _key in TARGETS:
        table = tables.get(name)
        if table is not None:
            found[name] = table.append_column(_KEY_HASH, hashes.slice(at, table.num_rows))
            at += table.num_rows
    return found


def without_keys(table: pa.Table, key: str, present: pa.Array) -> pa.Table:
    if not len(present):
        return table
    return table.filter(pc.invert(pc.is_in(table.column(key), value_set=present)))


class IdempotentWriter:
    """Writes scored batches once per key. With ``prefilter`` (the default) it keeps the hash of
    every stored key in memory (:mod:`flows.seen_keys`) and asks the store only about keys found
    there; without, it asks about every key. Both give the same rows and dead letters.

    ``alone``: no other writer of this process writes the store (a sink of one partition). On
    a store no other process can write either (:attr:`Store.exclusive`, the embedded one), the
    key set then sees every write as it is applied, so the writer skips exchanging keys with
    other writers through ``stored_keys``: two of a write's seven statements.
    """

    def __init__(
        self,
        open_store: Callable[[], Store],
        stats: RunStats,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        *,
        prefilter: bool = True,
        alone: bool = False,
    ) -> None:
        self._open_store = open_store
        self._store: Store | None = None
        self._stats = stats
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._prefilter = prefilter
        self._alone = alone
        self._writer_id = new_writer_id()
        self._seen: SeenKeys | None = None
        self._exchange = True  # decided on connecting, from the store opened

    def write(self, batches: list[ScoredBatch]) -> WriteResult:
        if not batches:
            return WriteResult(0, 0, 0, 0)
        gathered = _gathered(batches)
        entry, written = self._with_retry(lambda: self._fresh(gathered))
        if entry.tables:
            # Journal first, tables after: see flows.store.journal for why this survives a crash.
            self._with_retry(lambda: journal.record(self._connected(), entry))
            self._with_retry(lambda: journal.apply(self._connected(), entry))
            seen = self._seen
            if seen is not None:
                for table, hashes in written.items():
                    seen.add(table, hashes)
        fresh = {
            name: entry.tables[name].num_rows if name in entry.tables else 0
            for name, _key in TARGETS
        }
        # Every batch counts what it read: scores, dead letters and the repeats the per-loan
        # state skipped. A conflicting duplicate was counted already, by its score row or as a
        # repeat; as a dead letter it moves from skipped to dead-lettered.
        sent = sum(b.sent for b in batches)
        # Restored rows were chosen because the store lacked them, so they are fresh unless
        # another writer stored them meanwhile: the fresh rows count them first.
        restored = min(restored_rows(batches), fresh["repayment_scores"])
        scored = fresh["scored_events"] + fresh["repayment_scores"] - restored
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
            restored=restored,
        )
        return result

    def fresh_rows(self, batches: list[ScoredBatch]) -> dict[str, int]:
        """How many rows a write of ``batches`` would insert per table, writing nothing: the
        key check alone (``riskctl bench --probe`` times it)."""
        gathered = _gathered(batches)
        entry, _written = self._with_retry(lambda: self._fresh(gathered))
        return {name: table.num_rows for name, table in entry.tables.items()}

    def connect(self) -> None:
        """Connect now (completing the journal, loading the key set), not at the first write."""
        self._with_retry(self._connected)

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
        # The set is only known complete while connected: a reconnect loads it afresh.
        self._seen = None
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def seen(self) -> SeenKeys | None:
        """The stored keys' hashes while connected with the prefilter."""
        return self._seen

    def _fresh(self, gathered: dict[str, pa.Table]) -> tuple[journal.Entry, dict[str, Hashes]]:
        """The rows of each table whose keys it does not hold yet, as one journal entry (with
        their stored_keys rows first), and the hashes of the keys it inserts, per table."""
        store = self._connected()
        if self._seen is not None and self._exchange:
            self._seen.refresh(store)
        tables = _with_key_hashes(store, gathered)
        raw = tables.get("raw_events")
        if raw is not None:
            # Found before raw_events is written: the table holds each id's first content.
            ids = raw.column("event_id").combine_chunks()
            maybe = self._maybe_stored("raw_events", raw)
            raw, conflicts = split_conflicts(store, raw, ids.filter(maybe))
            tables["raw_events"] = raw
            if conflicts.num_rows:
                letters = _with_key_hashes(store, {"dead_letters": conflicts})["dead_letters"]
                old = tables.get("dead_letters")
                tables["dead_letters"] = (
                    letters if old is None else pa.concat_tables([old, letters]).combine_chunks()
                )
        fresh: dict[str, pa.Table] = {}
        for table, key in TARGETS:
            data = tables.get(table)
            if data is None or not data.num_rows:
                continue
            data = first_occurrences(data, key)
            maybe = self._maybe_stored(table, data)
            keys = data.column(key).combine_chunks()
            present = (
                store.existing_keys(table, key, keys.filter(maybe))
                if maybe.any()
                else pa.array([], pa.string())
            )
            fresh[table] = without_keys(data, key, present)
        shadow = fresh.get("shadow_scores")
        if shadow is not None:
            # A challenger's row only beside a score issued in this write: a replay of events
            # an earlier run scored must not pair today's challenger with yesterday's score.
            issued = fresh.get("scored_events")
            ids = (
                issued.column("event_id").combine_chunks()
                if issued is not None
                else pa.array([], pa.string())
            )
            keep = pc.is_in(shadow.column("event_id"), value_set=ids)
            fresh["shadow_scores"] = shadow.filter(keep)
        written = {
            table: np.asarray(data.column(_KEY_HASH).to_numpy(), np.uint64)
            for table, data in fresh.items()
            if data.num_rows
        }
        rows = {table: data.drop_columns([_KEY_HASH]) for table, data in fresh.items()}
        # stored_keys before the tables: a key another writer finds in a table is there already.
        exchanged = (
            {STORED_KEYS: stored_key_rows(self._writer_id, written)} if self._exchange else {}
        )
        return journal.Entry.new({**exchanged, **rows}), written

    def _maybe_stored(self, table: str, data: pa.Table) -> np.ndarray:
        """Which rows' keys the table may hold: all, without the prefilter."""
        if self._seen is None:
            return np.ones(data.num_rows, bool)
        return self._seen.maybe_stored(table, data.column(_KEY_HASH).to_numpy())

    def _connected(self) -> Store:
        """The open store; on (re)connecting, first complete whatever an earlier write left
        half done, so that the key checks after it see every write whole, then load the
        stored keys' hashes (after, so they include what the completion wrote)."""
        if self._store is None:
            store = self._open_store()
            self._exchange = not (self._alone and store.exclusive)
            try:
                journal.complete_pending(store)
                if self._prefilter:
                    self._seen = SeenKeys.load(store, TARGETS, self._writer_id)
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
