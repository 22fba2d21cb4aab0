"""The ClickHouse sink: each worker writes its scored batches through an idempotent writer,
then appends the operational figures for the batch (and, for Kafka, consumer lag).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.ops import LagProbe, batch_row, lag_rows
from flows.scoring import Positions, ScoredBatch
from flows.store import Store, open_store
from flows.writer import IdempotentWriter, RetryPolicy, RunStats


class _StorePartition(StatelessSinkPartition[ScoredBatch]):
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

    def write_batch(self, items: list[ScoredBatch]) -> None:
        began = time.perf_counter()
        result = self._writer.write(items)
        write_ms = (time.perf_counter() - began) * 1000
        self._writer.append(
            "ops_batches", batch_row(self._flow_id, self._worker, items, result, write_ms)
        )
        for item in items:
            for key, offset in item.positions.items():
                self._positions[key] = max(self._positions.get(key, 0), offset)
        if self._lag_probe is not None and self._positions and self._lag_probe.due():
            marks = self._lag_probe.watermarks(self._positions)
            if marks is not None:
                self._writer.append(
                    "ops_consumer_lag", lag_rows(self._flow_id, self._positions, marks)
                )
        self._on_write(self._writer.stats)

    def close(self) -> None:
        self._writer.close()
        if self._lag_probe is not None:
            self._lag_probe.close()


class StoreSink(DynamicSink[ScoredBatch]):
    def __init__(
        self,
        store_url: str,
        stats: RunStats,
        *,
        flow_id: str = "riskctl",
        retry: RetryPolicy | None = None,
        kafka_brokers: str | None = None,
        on_write: Callable[[RunStats], None] = lambda _stats: None,
        store_factory: Callable[[str], Store] = open_store,
    ) -> None:
        self._url = store_url
        self._stats = stats
        self._flow_id = flow_id
        self._retry = retry
        self._kafka_brokers = kafka_brokers
        self._on_write = on_write
        self._store_factory = store_factory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        writer = IdempotentWriter(lambda: self._store_factory(self._url), self._stats, self._retry)
        probe = LagProbe(self._kafka_brokers) if self._kafka_brokers else None
        return _StorePartition(writer, self._flow_id, worker_index, probe, self._on_write)
