"""Operational figures for the ops dashboard: one row per written batch, and consumer lag.

Lag is the partition's high watermark minus the flow's next offset, measured at most every
``lag_interval_s`` per worker.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from confluent_kafka import Consumer, KafkaException

from flows.batches import TS_MS, ApplicationBatch, Positions, ScoredBatch, pending_change
from flows.kafka_admin import high_watermarks
from flows.writer import WriteResult


def latency_ms(batches: list[ScoredBatch]) -> np.ndarray:
    """processed_at minus event_time for every scored row, in milliseconds."""
    parts = []
    for batch in batches:
        if type(batch) is ApplicationBatch and batch.scored.num_rows:
            processed = batch.scored.column("processed_at").to_numpy().astype("datetime64[us]")
            event = batch.scored.column("event_time").to_numpy().astype("datetime64[us]")
            parts.append((processed - event).astype(np.int64) / 1000.0)
    return np.concatenate(parts) if parts else np.empty(0)


def batch_row(
    flow_id: str, worker: int, batches: list[ScoredBatch], result: WriteResult, write_ms: float
) -> pa.Table:
    lat = latency_ms(batches)
    p50, p95, p99, top = (
        np.percentile(lat, [50, 95, 99, 100]).tolist() if len(lat) else [np.nan] * 4
    )
    return pa.table(
        {
            "written_at": pa.array([datetime.now(UTC)], TS_MS),
            "flow_id": [flow_id],
            "worker": pa.array([worker], pa.uint16()),
            # live scores carry no source of their own: the write's applications name it
            "source": [next((b.source for b in batches if type(b) is ApplicationBatch), "")],
            "events_in": pa.array([result.sent], pa.uint32()),
            "scored": pa.array([result.scored], pa.uint32()),
            "dead_lettered": pa.array([result.dead_lettered], pa.uint32()),
            "duplicates": pa.array([result.duplicates], pa.uint32()),
            "write_ms": [write_ms],
            "pending_repayments": pa.array([pending_change(batches)], pa.int32()),
            "latency_p50_ms": [p50],
            "latency_p95_ms": [p95],
            "latency_p99_ms": [p99],
            "latency_max_ms": [top],
        }
    )


def lag_rows(flow_id: str, positions: Positions, marks: dict[tuple[str, int], int]) -> pa.Table:
    keys = sorted(positions)
    now = datetime.now(UTC)
    return pa.table(
        {
            "measured_at": pa.array([now] * len(keys), TS_MS),
            "flow_id": [flow_id] * len(keys),
            "topic": [topic for topic, _ in keys],
            "partition": pa.array([partition for _, partition in keys], pa.uint32()),
            "next_offset": pa.array([positions[k] for k in keys], pa.int64()),
            "high_watermark": pa.array([marks[k] for k in keys], pa.int64()),
            "lag": pa.array([max(marks[k] - positions[k], 0) for k in keys], pa.int64()),
        }
    )


class LagProbe:
    """Reads high watermarks for the partitions a worker has consumed, at most every interval."""

    def __init__(self, brokers: str, interval_s: float = 2.0) -> None:
        self._brokers = brokers
        self._interval_s = interval_s
        self._consumer: Consumer | None = None
        self._last = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._last >= self._interval_s

    def watermarks(self, positions: Positions) -> dict[tuple[str, int], int] | None:
        self._last = time.monotonic()
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    "bootstrap.servers": self._brokers,
                    "group.id": "riskctl-lag-probe",
                    "enable.auto.commit": False,
                }
            )
        marks: dict[tuple[str, int], int] = {}
        try:
            for topic in {t for t, _ in positions}:
                partitions = [p for t, p in positions if t == topic]
                for partition, high in high_watermarks(self._consumer, topic, partitions).items():
                    marks[(topic, partition)] = high
        except KafkaException:
            # Lag is a gauge: a missed reading shows as a gap on the chart, never as data.
            return None
        return marks

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
