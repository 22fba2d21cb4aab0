"""Consumer lag for the ops dashboard: each partition's high watermark minus the flow's next
offset, for the partitions one sink worker has written, measured at most every interval.
"""

from __future__ import annotations

import time

import pyarrow as pa
from confluent_kafka import Consumer, KafkaException

from flows.batches import TS_MS, ApplicationBatch, Positions, ScoredBatch
from flows.clock import utc_now
from flows.kafka_admin import high_watermarks


def lag_rows(flow_id: str, positions: Positions, marks: dict[tuple[str, int], int]) -> pa.Table:
    keys = sorted(positions)
    now = utc_now()
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


class ConsumerLag:
    """The ``ops_consumer_lag`` rows of one sink worker: it follows how far the batches it
    wrote had read, and asks the brokers for their watermarks when the probe is due."""

    def __init__(self, flow_id: str, probe: LagProbe) -> None:
        self._flow_id = flow_id
        self._probe = probe
        self._positions: Positions = {}

    def written(self, items: list[ScoredBatch], *, force: bool = False) -> pa.Table | None:
        for item in items:
            if type(item) is ApplicationBatch:  # live scores follow their applications' reads
                for key, offset in item.positions.items():
                    self._positions[key] = max(self._positions.get(key, 0), offset)
        if not self._positions or not (force or self._probe.due()):
            return None
        marks = self._probe.watermarks(self._positions)
        return None if marks is None else lag_rows(self._flow_id, self._positions, marks)

    def close(self) -> None:
        self._probe.close()
