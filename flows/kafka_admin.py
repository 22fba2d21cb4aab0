"""Kafka administration and production with confluent-kafka: topics, checked deliveries,
high watermarks. Keys are loan ids, so one loan's events stay in order on one partition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from flows.errors import RiskctlError
from flows.settings import KafkaSettings
from flows.validation import depth_problem, is_repayment


class KafkaUnavailable(RiskctlError):
    """The brokers did not answer in time."""


class DeliveryError(RiskctlError):
    """At least one message was not acknowledged by the brokers."""


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int


class _Key(msgspec.Struct):
    loan_id: str = ""


_KEY_DECODER = msgspec.json.Decoder(_Key)


def loan_key(payload: bytes) -> bytes:
    """The message key for an event: its loan id, or empty when the payload has none."""
    if depth_problem(payload) is not None:  # the parser would recurse past the stack
        return b""
    try:
        return _KEY_DECODER.decode(payload).loan_id.encode()
    except (msgspec.DecodeError, UnicodeDecodeError):
        return b""


# librdkafka logs every failed connection attempt (hundreds of lines while a broker is down) to
# stderr; its clients log here instead, silent unless the application configures logging. A
# failure still reaches the user, once, as the error this module raises.
LIBRDKAFKA_LOG = logging.getLogger("flows.kafka.librdkafka")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())
LIBRDKAFKA_LOG.propagate = False

# How long an unreachable broker (every connection refused) is given before giving up: long
# enough for one that is just starting, short enough that a wrong address is said at once.
ALL_DOWN_GRACE_S = 2.0


def _admin(brokers: str, on_error: Callable[[KafkaError], None] | None = None) -> AdminClient:
    # Any: confluent-kafka's stubs allow only scalar values, but it takes callbacks and loggers
    config: dict[str, Any] = {
        "bootstrap.servers": brokers,
        "socket.timeout.ms": 5000,
        "logger": LIBRDKAFKA_LOG,
    }
    if on_error is not None:
        config["error_cb"] = on_error
    return AdminClient(config)


def _metadata(brokers: str, timeout_s: float) -> ClusterMetadata:
    """Cluster metadata, probed in short steps so that brokers refusing every connection fail
    within :data:`ALL_DOWN_GRACE_S` rather than the whole timeout."""
    errors: list[KafkaError] = []
    admin = _admin(brokers, errors.append)
    began = time.monotonic()
    while True:
        elapsed = time.monotonic() - began
        try:
            return admin.list_topics(timeout=max(0.1, min(0.5, timeout_s - elapsed)))
        except KafkaException as exc:
            admin.poll(0)  # delivers the error callbacks
            all_down = any(e.code() == KafkaError._ALL_BROKERS_DOWN for e in errors)
            elapsed = time.monotonic() - began
            if elapsed >= timeout_s or (all_down and elapsed >= ALL_DOWN_GRACE_S):
                reason = "no broker accepts connections" if all_down else str(exc.args[0])
                raise KafkaUnavailable(
                    f"Kafka at {brokers} did not answer in {elapsed:.0f} s: {reason}"
                ) from None


def list_topics(brokers: str, timeout_s: float = 10.0) -> list[TopicInfo]:
    metadata = _metadata(brokers, timeout_s)
    return sorted(
        (
            TopicInfo(name, len(t.partitions))
            for name, t in metadata.topics.items()
            if not name.startswith("__")
        ),
        key=lambda t: t.name,
    )


def create_topics(kafka: KafkaSettings, timeout_s: float = 15.0) -> list[str]:
    """Create the applications, repayments and dead-letter topics; returns those created now."""
    existing = {t.name for t in list_topics(kafka.brokers, timeout_s)}
    wanted = [
        NewTopic(name, num_partitions=kafka.partitions, replication_factor=kafka.replication_factor)
        for name in kafka.topics
        if name not in existing
    ]
    if not wanted:
        return []
    admin = _admin(kafka.brokers)  # must outlive the futures, or they fail as destroyed
    futures = admin.create_topics(wanted, operation_timeout=timeout_s)
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            raise KafkaUnavailable(f"cannot create topic {name}: {exc.args[0]}") from exc
    return sorted(created)


def event_messages(
    kafka: KafkaSettings, events: Iterable[bytes]
) -> Iterator[tuple[str, bytes, bytes]]:
    """``(topic, key, value)`` for each event: repayments to their topic, all else (broken
    events included, so they reach the dead letters) to the applications topic."""
    for event in events:
        topic = kafka.repayments_topic if is_repayment(event) else kafka.applications_topic
        yield topic, loan_key(event), event


def produce(
    brokers: str,
    messages: Iterable[tuple[str, bytes, bytes]],
    *,
    rate: float = 0.0,
    flush_timeout_s: float = 60.0,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Send ``(topic, key, value)`` messages and wait for every acknowledgement.

    A message the brokers did not acknowledge raises :class:`DeliveryError` naming how many
    failed and the first reason, after the rest have been flushed.
    """
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "acks": "all",
            "enable.idempotence": False,
            "linger.ms": 5,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
            "message.timeout.ms": int(flush_timeout_s * 1000),
            "logger": LIBRDKAFKA_LOG,
        }
    )
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    sent = 0
    began = time.monotonic()
    topics: set[str] = set()
    for topic, key, value in messages:
        topics.add(topic)
        if rate:
            delay = began + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain, then retry
        sent += 1
        producer.poll(0)
        if on_progress is not None:
            on_progress(sent)
    remaining = producer.flush(flush_timeout_s)
    if remaining:
        failures.extend(["not acknowledged before the flush timeout"] * remaining)
    if failures:
        raise DeliveryError(
            f"{len(failures)} of {sent} messages to {', '.join(sorted(topics))} were not "
            f"delivered: {failures[0]}"
        )
    return sent


def high_watermarks(consumer: Consumer, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """The next offset to be written on each partition, as the broker reports it."""
    marks = {}
    for partition in partitions:
        _low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=2.0, cached=False
        )
        marks[partition] = high
    return marks
