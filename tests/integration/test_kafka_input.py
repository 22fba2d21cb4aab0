"""The Kafka input hands the flow what has arrived at each read: at a low rate a batch never
waits to fill (that wait would be latency), against the real broker."""

from __future__ import annotations

import time

from flows.connectors.kafka_input import MicroBatchKafkaSource
from flows.kafka_admin import produce
from flows.settings import Settings, from_env

READ_BOUND_S = 0.5  # one read may take this long at most: it must not wait for a full batch
DEADLINE_S = 20.0  # all events must have been read by then


def test_a_read_returns_the_few_events_that_arrived_without_waiting_for_a_full_batch(
    kafka_settings: Settings,
) -> None:
    kafka = kafka_settings.kafka
    topic = kafka.applications_topic
    sent = produce(
        kafka.brokers, [(topic, f"loan-{i}".encode(), f'{{"n": {i}}}'.encode()) for i in range(5)]
    )
    source = MicroBatchKafkaSource(kafka.brokers, [topic], tail=True, batch_size=20_000)
    parts = [source.build_part("kafka", name, None) for name in source.list_parts()]
    got: list[bytes] = []
    slowest = 0.0
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(got) < sent and time.monotonic() < deadline:
            for part in parts:
                began = time.monotonic()
                batches = part.next_batch()
                slowest = max(slowest, time.monotonic() - began)
                got.extend(p for b in batches for p in b.payloads)
    finally:
        for part in parts:
            part.close()
    assert sorted(got) == sorted(f'{{"n": {i}}}'.encode() for i in range(5))
    assert slowest < READ_BOUND_S


def test_each_partition_consumer_takes_the_configured_fetch_wait(kafka_settings: Settings) -> None:
    kafka = from_env({"RISKCTL_KAFKA_FETCH_WAIT_MS": "250"}).kafka
    assert kafka.fetch_wait_ms == 250
    source = MicroBatchKafkaSource(
        kafka_settings.kafka.brokers,
        [kafka_settings.kafka.applications_topic],
        tail=True,
        batch_size=100,
        fetch_wait_ms=kafka.fetch_wait_ms,
    )
    assert source._config["fetch.wait.max.ms"] == "250"
