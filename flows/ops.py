"""Operational figures for the ops dashboard, recorded beside each store write: one
``ops_batches`` row per write, and consumer lag (:mod:`flows.lag`) when the flow reads Kafka.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from flows.batches import TS_MS, ApplicationBatch, ScoredBatch, pending_change
from flows.clock import utc_now
from flows.lag import ConsumerLag
from flows.writer import WriteResult


def latency_ms(batches: list[ScoredBatch], queryable_at: datetime) -> np.ndarray:
    """For every score row written, milliseconds from its event time until ``queryable_at``,
    the moment the write returned: the delay a user querying the store sees, lingering and
    the insert included (processed_at stops before both)."""
    until = np.datetime64(queryable_at.astimezone(UTC).replace(tzinfo=None), "us")
    parts = []
    for batch in batches:
        for name in ("scored_events", "repayment_scores"):
            scores = batch.tables.get(name)
            if scores is not None and scores.num_rows:
                event = scores.column("event_time").to_numpy().astype("datetime64[us]")
                parts.append((until - event).astype(np.int64) / 1000.0)
    return np.concatenate(parts) if parts else np.empty(0)


def batch_row(
    flow_id: str,
    worker: int,
    batches: list[ScoredBatch],
    result: WriteResult,
    write_ms: float,
    queryable_at: datetime,
) -> pa.Table:
    lat = latency_ms(batches, queryable_at)
    p50, p95, p99, top = (
        np.percentile(lat, [50, 95, 99, 100]).tolist() if len(lat) else [np.nan] * 4
    )
    return pa.table(
        {
            "written_at": pa.array([queryable_at], TS_MS),
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


Rows = list[tuple[str, pa.Table]]  # (table, rows to append)


class OpsRecorder:
    """What one sink worker records beside its writes; the sink appends the rows it returns."""

    def __init__(self, flow_id: str, worker: int, lag: ConsumerLag | None = None) -> None:
        self._flow_id = flow_id
        self._worker = worker
        self._lag = lag

    def written(self, items: list[ScoredBatch], result: WriteResult, write_ms: float) -> Rows:
        # called as the write returns: from now on its rows are queryable
        row = batch_row(self._flow_id, self._worker, items, result, write_ms, utc_now())
        rows = [("ops_batches", row)]
        lag = None if self._lag is None else self._lag.written(items)
        if lag is not None:
            rows.append(("ops_consumer_lag", lag))
        return rows

    def closing(self) -> Rows:
        """The last lag reading, taken whether due or not, so a short run records one."""
        lag = None if self._lag is None else self._lag.written([], force=True)
        return [] if lag is None else [("ops_consumer_lag", lag)]

    def close(self) -> None:
        if self._lag is not None:
            self._lag.close()
