"""The ClickHouse sink. Each partition writes through an idempotent writer on a thread of its
own, so a batch's insert overlaps the scoring of the next one (chDB and the HTTP client
release the GIL while ClickHouse works).

Nothing is acknowledged early: ``close`` and, in a run with recovery, ``snapshot`` wait until
every submitted batch is in the store, and Bytewax takes the epoch's recovery snapshot only
after ``snapshot`` returns, so a crash can replay batches (which the writer then skips) but
never lose one.

Rows that describe the writes (the ops dashboard's) come from a :class:`WriteObserver` given
where the sink is built (:class:`flows.ops.OpsRecorder`); the sink only appends them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from flows.batches import ScoredBatch
from flows.errors import RiskctlError
from flows.store import Opener
from flows.writer import IdempotentWriter, RetryPolicy, RunStats, WriteResult

Rows = list[tuple[str, pa.Table]]  # (table, rows to append)


class WriteObserver(Protocol):
    """Rows to append beside the writes of one sink partition, as (table, rows) pairs."""

    def written(self, items: list[ScoredBatch], result: WriteResult, write_ms: float) -> Rows: ...

    def closing(self) -> Rows: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Linger:
    """How long, and up to how many events, the sink gathers batches before one insert.

    An insert costs about the same whatever its size (a part per table and view), so a steady
    trickle written batch by batch would spend the store's time on fixed costs; gathered, it is
    written in few inserts. ``seconds`` bounds what lingering adds to the latency of an event.
    Zero for either turns lingering off: each write takes whatever is waiting.
    """

    seconds: float = 0.0
    events: int = 0

    def __post_init__(self) -> None:
        if self.seconds < 0 or self.events < 0:
            raise ValueError("a linger's seconds and events cannot be negative")

    @property
    def on(self) -> bool:
        return self.seconds > 0 and self.events > 0


# How long ops rows may wait for a moment the writer has nothing ready to write.
OPS_DEFER_S = 2.0


class DeferredRows:
    """Rows that describe writes (the ops rows), held until the writer has a gap.

    An ops insert costs about as much as a small data write; made while scored batches wait,
    it delayed their write by that much. Held, they go in when nothing is ready to be written,
    or once the oldest has waited ``max_age_s``, so a store that is never idle still shows
    its ops figures, that late at most."""

    def __init__(
        self, max_age_s: float = OPS_DEFER_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_age_s = max_age_s
        self._clock = clock
        self._rows: Rows = []
        self._since = 0.0

    def add(self, rows: Rows) -> None:
        if rows and not self._rows:
            self._since = self._clock()
        self._rows.extend(rows)

    def take(self, idle: bool) -> Rows:
        """The rows to append now: all of them when the writer is idle or they are due."""
        if self._rows and (idle or self._clock() - self._since >= self._max_age_s):
            return self.take_all()
        return []

    def take_all(self) -> Rows:
        rows, self._rows = self._rows, []
        return rows


class BackgroundWriter:
    """Runs ``write`` on its own thread; each call takes everything submitted since the last.

    A part costs ClickHouse a fixed ~10 ms of file-system work per table and view, so when
    the store falls behind, the batches that queued up meanwhile go in as one insert: the
    slower the store, the larger and cheaper its inserts, and no batch waits longer than the
    write before it. With a :class:`Linger`, a write also waits (from the first batch waiting)
    up to its seconds for its events to gather, unless a flush or close asks for everything.
    ``submit`` blocks while a write runs and ``max_waiting`` submissions wait: back-pressure,
    which also bounds how far reading runs ahead of the store, and so how much a restart after
    a crash reads again (a recovery snapshot waits for the store to hold everything before it).
    ``between`` runs on the writer's thread after each write, told whether nothing is ready to
    be written next: the place for work that must not delay the data (the ops rows).
    """

    def __init__(
        self,
        write: Callable[[list[ScoredBatch]], None],
        max_waiting: int = 2,
        linger: Linger | None = None,
        prepare: Callable[[], None] | None = None,
        between: Callable[[bool], None] | None = None,
    ) -> None:
        """``prepare`` runs first on the writer's thread (connecting, loading the key set), so
        that work overlaps the flow's start and the first batches' scoring."""
        self._write = write
        self._prepare = prepare
        self._between = between
        self._max_waiting = max_waiting
        self._linger = linger or Linger()
        self._pending: list[ScoredBatch] = []
        self._pending_events = 0
        self._first_waiting_at = 0.0
        self._waiting = 0
        self._flushes = 0  # flush calls waiting: no write lingers while one does
        self._busy = prepare is not None
        self._stopping = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)
        self._thread.start()

    def submit(self, items: list[ScoredBatch]) -> None:
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    self._error is not None or not self._busy or self._waiting < self._max_waiting
                )
            )
            self._raise_pending()
            if not self._pending:
                self._first_waiting_at = time.monotonic()
            self._pending.extend(items)
            self._pending_events += sum(b.sent for b in items)
            self._waiting += 1
            self._changed.notify_all()

    @property
    def waiting(self) -> int:
        """Submissions not yet taken by a write."""
        with self._changed:
            return self._waiting

    def flush(self) -> None:
        """Wait until everything submitted is written (or the writer failed)."""
        with self._changed:
            self._flushes += 1
            self._changed.notify_all()
            try:
                self._changed.wait_for(
                    lambda: self._error is not None or not (self._pending or self._busy)
                )
            finally:
                self._flushes -= 1
            self._raise_pending()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with self._changed:
                self._stopping = True
                self._changed.notify_all()
            self._thread.join()

    def raise_failure(self) -> None:
        """Raise the error a write ended with, if one did; never waits."""
        with self._changed:
            self._raise_pending()

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _gathered(self) -> bool:
        """Whether the waiting batches should be written now rather than linger."""
        return (
            not self._linger.on
            or self._stopping
            or self._flushes > 0
            or self._pending_events >= self._linger.events
            or time.monotonic() - self._first_waiting_at >= self._linger.seconds
        )

    def _loop(self) -> None:
        if self._prepare is not None:
            failed: BaseException | None = None
            try:
                self._prepare()
            except BaseException as exc:  # re-raised on the flow's thread
                failed = exc
            with self._changed:
                self._busy = False
                self._error = failed
                self._changed.notify_all()
            if failed is not None:
                return
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stopping or bool(self._pending))
                if not self._pending:
                    return
                while not self._gathered():
                    left = self._first_waiting_at + self._linger.seconds - time.monotonic()
                    self._changed.wait(max(left, 0.0))
                items, self._pending, self._waiting = self._pending, [], 0
                self._pending_events = 0
                self._busy = True
                self._changed.notify_all()
            error: BaseException | None = None
            try:
                self._write(items)
                if self._between is not None:
                    with self._changed:
                        idle = not (self._pending and self._gathered())
                    self._between(idle)
            except BaseException as exc:  # re-raised on the flow's thread
                error = exc
            with self._changed:
                self._busy = False
                if error is not None:
                    self._error = error
                    self._pending = []  # after a failure nothing later may be written
                self._changed.notify_all()
            if error is not None:
                return


class _StorePartition(StatefulSinkPartition[ScoredBatch, None]):
    def __init__(
        self,
        writer: IdempotentWriter,
        observer: WriteObserver | None,
        on_write: Callable[[RunStats], None],
        on_failure: Callable[[RiskctlError], None],
        linger: Linger,
        snapshots: bool = True,
    ) -> None:
        self._on_failure = on_failure
        self._snapshots = snapshots
        self._writer = writer
        self._observer = observer
        self._on_write = on_write
        self._deferred = DeferredRows()
        self._background = BackgroundWriter(
            self._write, linger=linger, prepare=writer.connect, between=self._between
        )

    def write_batch(self, values: list[ScoredBatch]) -> None:
        try:
            self._background.submit(values)
        except RiskctlError as exc:
            self._on_failure(exc)
            raise

    def snapshot(self) -> None:
        # Returning lets Bytewax record the epoch as done; after a failed write it never may.
        # Without recovery nothing records it: waiting for the store here only stalled the
        # flow for a write or two every epoch, and the events read next waited that out.
        try:
            if self._snapshots:
                self._background.flush()
            else:
                self._background.raise_failure()
        except RiskctlError as exc:
            self._on_failure(exc)
            raise

    def close(self) -> None:
        try:
            self._background.close()
            if self._observer is not None:
                self._append([*self._deferred.take_all(), *self._observer.closing()])
        except RiskctlError as exc:
            self._on_failure(exc)
            raise
        finally:
            self._writer.close()
            if self._observer is not None:
                self._observer.close()

    def _append(self, rows: Rows) -> None:
        """One insert per table, however many rows gathered for it."""
        tables: dict[str, list[pa.Table]] = {}
        for table, data in rows:
            tables.setdefault(table, []).append(data)
        for table, parts in tables.items():
            self._writer.append(table, pa.concat_tables(parts) if len(parts) > 1 else parts[0])

    def _write(self, items: list[ScoredBatch]) -> None:
        began = time.perf_counter()
        result = self._writer.write(items)
        write_ms = (time.perf_counter() - began) * 1000
        if self._observer is not None:
            self._deferred.add(self._observer.written(items, result, write_ms))
        self._on_write(self._writer.stats)

    def _between(self, idle: bool) -> None:
        self._append(self._deferred.take(idle))


class StoreSink(FixedPartitionedSink[ScoredBatch, None]):
    """``partitions`` writers; items are ``(routing key, batch)`` pairs."""

    def __init__(
        self,
        open_store: Opener,
        stats: RunStats,
        *,
        partitions: int = 1,
        retry: RetryPolicy | None = None,
        linger: Linger | None = None,
        observe: Callable[[int], WriteObserver] | None = None,
        on_write: Callable[[RunStats], None] = lambda _stats: None,
        on_failure: Callable[[RiskctlError], None] = lambda _error: None,
        snapshots: bool = True,
    ) -> None:
        """``observe`` builds each partition's :class:`WriteObserver` from its index;
        ``on_failure`` sees a write that failed for good before it is raised into Bytewax
        (the command line ends the process there, with one line). ``snapshots``: whether the
        run keeps recovery snapshots, which each wait until the store holds every batch
        before them; without, an epoch's end does not wait for the store (closing still does).
        """
        self._on_failure = on_failure
        self._snapshots = snapshots
        self._open_store = open_store
        self._stats = stats
        self._partitions = partitions
        self._retry = retry
        self._linger = linger or Linger()
        self._observe = observe
        self._on_write = on_write

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(self._partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _StorePartition:
        writer = IdempotentWriter(
            self._open_store, self._stats, self._retry, alone=self._partitions == 1
        )
        observer = None if self._observe is None else self._observe(int(for_part))
        return _StorePartition(
            writer, observer, self._on_write, self._on_failure, self._linger, self._snapshots
        )
