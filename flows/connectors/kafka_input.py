"""Kafka in: Bytewax's KafkaSource (and its error stream) turned into micro-batches.

Each consumer read (up to ``consume_batch_size`` messages, or whatever arrived within the
poll) becomes one :class:`RawBatch`, so everything downstream works a batch at a time. Source
errors become dead letters with reason ``kafka_error``; each origin names topic, partition and
offset, which keeps dead-letter ids stable across replays.
"""

from __future__ import annotations

from datetime import UTC, datetime

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow, Stream
from confluent_kafka import OFFSET_BEGINNING

from flows.scoring import RawBatch
from flows.settings import KafkaSettings
from flows.validation import DeadLetter

Message = KafkaSourceMessage[bytes | None, bytes | None]

# librdkafka waits up to fetch.wait.max.ms for a fetch to fill; 50 ms keeps a quiet topic's
# events moving within the one-second target without spinning.
CONSUMER_CONFIG = {"fetch.wait.max.ms": "50"}


def origin_of(message: Message) -> str:
    return f"kafka:{message.topic}:{message.partition}:{message.offset}"


def to_raw_batches(messages: list[Message]) -> list[RawBatch]:
    if not messages:
        return []
    origins: list[str] = []
    payloads: list[bytes] = []
    stamps: list[int] = []
    positions: dict[tuple[str, int], int] = {}
    for m in messages:  # one pass: this runs for every message
        topic, partition, offset = m.topic or "", m.partition or 0, m.offset or 0
        origins.append(f"kafka:{topic}:{partition}:{offset}")
        payloads.append(m.value or b"")
        stamps.append(m.timestamp[1] if m.timestamp else 0)
        if offset >= positions.get((topic, partition), 0):
            positions[(topic, partition)] = offset + 1
    return [
        RawBatch(
            origins=origins,
            payloads=payloads,
            received_at=datetime.now(UTC),
            source="kafka",
            source_ms=stamps,
            positions=positions,
        )
    ]


def errors_to_raw_batches(errors: list[KafkaError[bytes | None, bytes | None]]) -> list[RawBatch]:
    if not errors:
        return []
    dead = [
        DeadLetter(origin_of(e.msg), "kafka_error", str(e.err), e.msg.value or b"") for e in errors
    ]
    return [RawBatch(origins=[], payloads=[], source="kafka", errors=dead)]


def kafka_batches(
    flow: Dataflow, kafka: KafkaSettings, topics: list[str], *, tail: bool = True
) -> Stream[RawBatch]:
    """Read ``topics`` from the beginning (or the recovery snapshot) as micro-batches."""
    read = kop.input(
        "kafka",
        flow,
        brokers=kafka.brokers.split(","),
        topics=topics,
        tail=tail,
        starting_offset=OFFSET_BEGINNING,
        add_config=dict(CONSUMER_CONFIG),
        batch_size=kafka.consume_batch_size,
    )
    batches = op.flat_map_batch("batch", read.oks, to_raw_batches)
    failures = op.flat_map_batch("source_errors", read.errs, errors_to_raw_batches)
    return op.merge("inputs", batches, failures)
