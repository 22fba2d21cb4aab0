"""The ClickHouse sink: each worker writes its scored batches through an idempotent writer."""

from __future__ import annotations

from collections.abc import Callable

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.scoring import ScoredBatch
from flows.store import Store, open_store
from flows.writer import IdempotentWriter, RetryPolicy, RunStats


class _StorePartition(StatelessSinkPartition[ScoredBatch]):
    def __init__(self, writer: IdempotentWriter, on_write: Callable[[RunStats], None]) -> None:
        self._writer = writer
        self._on_write = on_write

    def write_batch(self, items: list[ScoredBatch]) -> None:
        self._writer.write(items)
        self._on_write(self._writer.stats)

    def close(self) -> None:
        self._writer.close()


class StoreSink(DynamicSink[ScoredBatch]):
    def __init__(
        self,
        store_url: str,
        stats: RunStats,
        retry: RetryPolicy | None = None,
        on_write: Callable[[RunStats], None] = lambda _stats: None,
        store_factory: Callable[[str], Store] = open_store,
    ) -> None:
        self._url = store_url
        self._stats = stats
        self._retry = retry
        self._on_write = on_write
        self._store_factory = store_factory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        writer = IdempotentWriter(lambda: self._store_factory(self._url), self._stats, self._retry)
        return _StorePartition(writer, self._on_write)
