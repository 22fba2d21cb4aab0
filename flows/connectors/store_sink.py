"""The ClickHouse sink. Each partition writes through an idempotent writer on a thread of its
own, so a batch's insert overlaps the scoring of the next one (chDB and the HTTP client
release the GIL while ClickHouse works).

Nothing is acknowledged early: ``snapshot`` and ``close`` wait until every submitted batch is
in the store, and Bytewax takes the epoch's recovery snapshot only after ``snapshot`` returns,
so a crash can replay batches (which the writer then skips) but never lose one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from flows.ops import LagProbe, batch_row, lag_rows
from flows.scoring import Positions, ScoredBatch
from flows.store import Store, open_store
from flows.writer import IdempotentWriter, RetryPolicy, RunStats

_STOP = None


class BackgroundWriter:
    """Runs ``write`` on its own thread, one submission at a time, at most one waiting."""

    def __init__(self, write: Callable[[list[ScoredBatch]], None]) -> None:
        self._write = write
        self._queue: queue.Queue[list[ScoredBatch] | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)
        self._thread.start()

    def submit(self, items: list[ScoredBatch]) -> None:
        self._raise_pending()
        self._queue.put(items)  # blocks while one batch waits: back-pressure on the flow

    def flush(self) -> None:
        self._queue.join()
        self._raise_pending()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._queue.put(_STOP)
            self._thread.join()

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        while True:
            items = self._queue.get()
            try:
                if items is _STOP:
                    return
                if self._error is None:  # after a failure nothing later may be written
                    self._write(items)
            except BaseException as exc:  # re-raised on the flow's thread
                self._error = exc
            finally:
                self._queue.task_done()


class _StorePartition(StatefulSinkPartition[ScoredBatch, None]):
    def __init__(
        self,
        writer: IdempotentWriter,
        flow_id: str,
        worker: int,
        lag_probe: LagProbe | None,
        on_write: Callable[[RunStats], None],
    ) -> None:
        self._writer = writer
        self._flow_id = flow_id
        self._worker = worker
        self._lag_probe = lag_probe
        self._on_write = on_write
        self._positions: Positions = {}
        self._background = BackgroundWriter(self._write)

    def write_batch(self, values: list[ScoredBatch]) -> None:
        self._background.submit(values)

    def snapshot(self) -> None:
        self._background.flush()

    def close(self) -> None:
        try:
            self._background.close()
            self._record_lag(force=True)
        finally:
            self._writer.close()
            if self._lag_probe is not None:
                self._lag_probe.close()

    def _record_lag(self, force: bool = False) -> None:
        probe = self._lag_probe
        if probe is None or not self._positions or not (force or probe.due()):
            return
        marks = probe.watermarks(self._positions)
        if marks is not None:
            self._writer.append("ops_consumer_lag", lag_rows(self._flow_id, self._positions, marks))

    def _write(self, items: list[ScoredBatch]) -> None:
        began = time.perf_counter()
        result = self._writer.write(items)
        write_ms = (time.perf_counter() - began) * 1000
        self._writer.append(
            "ops_batches", batch_row(self._flow_id, self._worker, items, result, write_ms)
        )
        for item in items:
            for key, offset in item.positions.items():
                self._positions[key] = max(self._positions.get(key, 0), offset)
        self._record_lag()
        self._on_write(self._writer.stats)


class StoreSink(FixedPartitionedSink[ScoredBatch, None]):
    """``partitions`` writers; items are ``(routing key, batch)`` pairs."""

    def __init__(
        self,
        store_url: str,
        stats: RunStats,
        *,
        partitions: int = 1,
        flow_id: str = "riskctl",
        retry: RetryPolicy | None = None,
        kafka_brokers: str | None = None,
        on_write: Callable[[RunStats], None] = lambda _stats: None,
        store_factory: Callable[[str], Store] = open_store,
    ) -> None:
        self._url = store_url
        self._stats = stats
        self._partitions = partitions
        self._flow_id = flow_id
        self._retry = retry
        self._kafka_brokers = kafka_brokers
        self._on_write = on_write
        self._store_factory = store_factory

    def list_parts(self) -> list[str]:
        return [str(i) for i in range(self._partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _StorePartition:
        writer = IdempotentWriter(lambda: self._store_factory(self._url), self._stats, self._retry)
        probe = LagProbe(self._kafka_brokers) if self._kafka_brokers else None
        return _StorePartition(writer, self._flow_id, int(for_part), probe, self._on_write)
