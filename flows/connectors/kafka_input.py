"""Kafka in: Bytewax's KafkaSource, each partition yielding whole micro-batches.

Bytewax's own partitions turn every message into a ``KafkaSourceMessage`` and split oks from
errors item by item; at tens of thousands of events a second that per-message Python work
cost more than scoring them. Here each consumer read (up to ``batch_size`` messages, or
whatever arrived within the poll) becomes one :class:`RawBatch` straight from librdkafka's
messages. Partitions, their listing and recovery stay Bytewax's: the snapshot of a partition
is the next offset to read, so a restarted flow resumes where its last snapshot stood.

Errors the consumer reports become dead letters with reason ``kafka_error`` in the same
batch (the error stream); each origin names topic, partition and offset, which keeps
dead-letter ids stable across replays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from confluent_kafka import KafkaError as ConsumerError

from flows.batches import RawBatch
from flows.clock import utc_now
from flows.connectors.stoppable import StoppableSource, StopRequest
from flows.errors import RiskctlError
from flows.settings import KafkaSettings
from flows.validation import DeadLetter

POLL_TIMEOUT_S = 0.001
WATERMARK_TIMEOUT_S = 5.0


def to_raw_batch(topic: str, partition: int, messages: Sequence[Message]) -> tuple[RawBatch, bool]:
    """One consumer read of one partition as a micro-batch, and whether it reached the end."""
    prefix = f"kafka:{topic}:{partition}:"
    origins: list[str] = []
    payloads: list[bytes] = []
    stamps: list[int] = []
    dead: list[DeadLetter] = []
    at_end = False
    next_offset = -1
    for m in messages:  # one pass: this runs for every message
        offset = m.offset()
        if offset is None or offset < 0:  # an error not tied to a message
            offset = -1
        error = m.error()
        at = f"{prefix}{offset}"
        if error is not None:
            if error.code() == ConsumerError._PARTITION_EOF:
                at_end = True
                break
            dead.append(DeadLetter(at, "kafka_error", str(error), m.value() or b""))
        else:
            origins.append(at)
            payloads.append(m.value() or b"")
            stamps.append(m.timestamp()[1])
        if offset >= 0:
            next_offset = max(next_offset, offset + 1)
    batch = RawBatch(
        origins=origins,
        payloads=payloads,
        received_at=utc_now(),
        source="kafka",
        source_ms=stamps,
        positions={(topic, partition): next_offset} if next_offset >= 0 else {},
        errors=dead,
    )
    return batch, at_end


def _first_offset(consumer: Consumer, topic: str, partition: int) -> int:
    """The partition's first offset. librdkafka resolves the logical BEGINNING only after a
    fixed 500 ms retry when the partition's leader is not yet known, which a fresh consumer's
    never is; asking for the low watermark first starts the read within milliseconds. If the
    brokers do not answer now, BEGINNING still gives the same offset, only later."""
    try:
        low, _high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=WATERMARK_TIMEOUT_S
        )
    except KafkaException:
        return OFFSET_BEGINNING
    return int(low)


class _BatchPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(self, config: dict[str, str], topic: str, partition: int, offset: int, size: int):
        self._consumer = Consumer(config)
        if offset == OFFSET_BEGINNING:
            offset = _first_offset(self._consumer, topic, partition)
        # assign, not subscribe: the recovery snapshots are the consumer group.
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._size = size
        self._at_end = False

    def next_batch(self) -> list[RawBatch]:
        if self._at_end:
            raise StopIteration
        messages = self._consumer.consume(self._size, POLL_TIMEOUT_S)
        if not messages:
            return []
        batch, self._at_end = to_raw_batch(self._topic, self._partition, messages)
        self._offset = batch.positions.get((self._topic, self._partition), self._offset)
        return [batch] if len(batch) else []

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class MicroBatchKafkaSource(KafkaSource):
    """Bytewax's KafkaSource (its partition listing and recovery) yielding :class:`RawBatch`."""

    def __init__(
        self,
        brokers: str,
        topics: list[str],
        *,
        tail: bool,
        batch_size: int,
        fetch_wait_ms: int = KafkaSettings.fetch_wait_ms,
    ):
        super().__init__(
            brokers.split(","),
            topics,
            tail=tail,
            starting_offset=OFFSET_BEGINNING,
            batch_size=batch_size,
            raise_on_errors=False,
        )
        self._config = {
            "group.id": "riskctl-unused",
            "enable.auto.commit": "false",
            "bootstrap.servers": brokers,
            "enable.partition.eof": str(not tail).lower(),
            "fetch.wait.max.ms": str(fetch_wait_ms),
        }
        self._topic_names = set(topics)
        self._size = batch_size

    def build_part(  # type: ignore[override]
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _BatchPartition:
        index, topic = for_part.split("-", 1)
        if topic not in self._topic_names:
            raise ValueError(f"recovery data names topic {topic!r}, not one this flow reads")
        offset = OFFSET_BEGINNING if resume_state is None else resume_state
        return _BatchPartition(dict(self._config), topic, int(index), offset, self._size)


# librdkafka reports every failed connection attempt on stderr; the run reports the outcome once.
_QUIET = logging.getLogger("riskctl.kafka.probe")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class BrokersUnavailable(RiskctlError):
    """The brokers did not answer, or lack a topic the flow reads."""


def check_brokers(brokers: str, topics: list[str], timeout_s: float) -> None:
    """Fail within ``timeout_s`` unless the brokers answer and hold every one of ``topics``.

    Without this, a flow against a dead broker waits for it forever (librdkafka retries)."""
    consumer = Consumer(
        {"bootstrap.servers": brokers, "group.id": "riskctl-probe", "logger": _QUIET}
    )
    try:
        metadata = consumer.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokersUnavailable(
            f"Kafka at {brokers} did not answer within {timeout_s:.0f}s ({exc.args[0]})"
        ) from exc
    finally:
        consumer.close()
    missing = [t for t in topics if t not in metadata.topics]
    if missing:
        raise BrokersUnavailable(
            f"Kafka at {brokers} has no topic {', '.join(missing)}; "
            "create them with `riskctl topics create`"
        )


def kafka_batches(
    flow: Dataflow,
    kafka: KafkaSettings,
    topics: list[str],
    *,
    tail: bool = True,
    stop: StopRequest | None = None,
) -> Stream[RawBatch]:
    """Read ``topics`` from the beginning (or the recovery snapshot) as micro-batches, until
    their end (without ``tail``) or until ``stop`` is requested."""
    # typed by its KafkaSource base, but build_part makes RawBatch partitions
    source = cast(
        "FixedPartitionedSource[RawBatch, int | None]",
        MicroBatchKafkaSource(
            kafka.brokers,
            topics,
            tail=tail,
            batch_size=kafka.consume_batch_size,
            fetch_wait_ms=kafka.fetch_wait_ms,
        ),
    )
    return op.input("kafka", flow, StoppableSource(source, stop or StopRequest()))
