"""The dataflow on a real Kafka-protocol broker: produce, consume, score, dead-letter."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import msgspec
from confluent_kafka import Consumer, TopicPartition

from flows.jobs import RunOptions, run_kafka
from flows.kafka_admin import list_topics
from flows.model import ScoringModel
from flows.settings import KafkaSettings, Settings
from flows.store import Store, StoreUnavailable, StoreURL, open_store
from flows.writer import RetryPolicy
from tests.conftest import query_rows
from tests.kafka_fixtures import produce_file


def read_topic(kafka: KafkaSettings, topic: str, expected: int, timeout_s: float = 30) -> list:
    """Every message on ``topic`` (assign, no consumer group), stopping at ``expected``."""
    consumer = Consumer(
        {"bootstrap.servers": kafka.brokers, "group.id": "test-reader",
         "enable.auto.commit": False, "fetch.wait.max.ms": 10}
    )  # fmt: skip
    partitions = next(t.partitions for t in list_topics(kafka.brokers) if t.name == topic)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None:
                    messages.append(message)
    finally:
        consumer.close()
    return messages


def test_topics_are_created_with_the_configured_partitions(kafka_settings: Settings) -> None:
    kafka = kafka_settings.kafka
    found = {t.name: t.partitions for t in list_topics(kafka.brokers)}
    for topic in kafka.topics:
        assert found[topic] == kafka.partitions


def test_produce_flow_clickhouse_with_invalid_events(
    kafka_settings: Settings, model: ScoringModel, events_file: Callable[..., Path]
) -> None:
    path = events_file(4000, corrupt=0.05)
    sent = produce_file(kafka_settings.kafka, path)
    stats = run_kafka(kafka_settings, model, until_end=True)
    assert stats.sent == sent
    assert stats.scored == 4000
    assert stats.dead_lettered == sent - 4000 > 100
    [row] = query_rows(
        kafka_settings.store,
        "SELECT (SELECT count() FROM scored_events) AS scored,"
        " (SELECT uniqExact(event_id) FROM scored_events) AS ids,"
        " (SELECT count() FROM dead_letters) AS dead,"
        " (SELECT countIf(origin LIKE 'kafka:%') FROM dead_letters) AS kafka_origins,"
        " (SELECT min(source_time) > toDateTime64('2000-01-01', 3) FROM scored_events) AS stamped,"
        " (SELECT sum(events_in) FROM ops_batches) AS ops_in,"
        " (SELECT uniqExact(partition) FROM ops_consumer_lag) AS lag_partitions,"
        " (SELECT argMax(lag, measured_at) FROM ops_consumer_lag) AS last_lag",
    )
    assert row["scored"] == row["ids"] == 4000
    assert row["dead"] == row["kafka_origins"] == sent - 4000
    assert row["stamped"] == 1
    assert row["ops_in"] == sent
    assert row["lag_partitions"] == 2  # the final reading covers both partitions
    assert row["last_lag"] == 0  # read to the end
    kafka = kafka_settings.kafka
    dead_topic = read_topic(kafka, kafka.dead_letter_topic, sent - 4000)
    assert len(dead_topic) == sent - 4000
    first = msgspec.json.decode(dead_topic[0].value())
    assert first["reason"] and first["payload_base64"] and first["origin"].startswith("kafka:")


def test_two_workers_score_every_event_once(
    kafka_settings: Settings, model: ScoringModel, events_file: Callable[..., Path]
) -> None:
    path = events_file(6000, corrupt=0.01)
    sent = produce_file(kafka_settings.kafka, path)
    stats = run_kafka(kafka_settings, model, RunOptions(workers=2), until_end=True)
    assert stats.sent == sent and stats.duplicates == 0
    [row] = query_rows(
        kafka_settings.store,
        "SELECT count() AS n, uniqExact(event_id) AS ids,"
        " (SELECT uniqExact(worker) FROM ops_batches) AS workers FROM scored_events",
    )
    assert row == {"n": 6000, "ids": 6000, "workers": 2}


class Outage:
    """Opens the store once (the run's schema check, before any event), then refuses
    connections for ``seconds`` from the next attempt, then opens the real store again.

    No ClickHouse server runs here; this refuses at the connection boundary the way an
    unreachable server does, and everything past it is the real chDB store.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.began: float | None = None
        self.refused = 0
        self.opened = 0

    def __call__(self, url: StoreURL) -> Store:
        if not self.opened:
            self.opened += 1
            return open_store(url)
        if self.began is None:
            self.began = time.monotonic()
        if time.monotonic() - self.began < self.seconds:
            self.refused += 1
            raise StoreUnavailable("connection refused")
        return open_store(url)


def test_store_outage_during_a_run_loses_nothing(
    kafka_settings: Settings, model: ScoringModel, events_file: Callable[..., Path]
) -> None:
    path = events_file(3000, corrupt=0.02)
    sent = produce_file(kafka_settings.kafka, path)
    outage = Outage(seconds=2.0)
    options = RunOptions(
        store_factory=outage,
        retry=RetryPolicy(deadline_s=30, initial_backoff_s=0.05, max_backoff_s=0.5),
    )
    stats = run_kafka(replace(kafka_settings), model, options, until_end=True)
    assert outage.refused >= 3 and stats.store_retries >= 3
    assert stats.sent == sent and stats.scored == 3000
    [row] = query_rows(
        kafka_settings.store,
        "SELECT count() AS n, (SELECT count() FROM dead_letters) AS dead FROM scored_events",
    )
    assert row == {"n": 3000, "dead": sent - 3000}


def test_cli_topics_replay_and_run_on_kafka(kafka_settings: Settings) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    kafka = kafka_settings.kafka
    env = {
        "RISKCTL_TOPIC_APPLICATIONS": kafka.applications_topic,
        "RISKCTL_TOPIC_REPAYMENTS": kafka.repayments_topic,
        "RISKCTL_TOPIC_DEAD_LETTERS": kafka.dead_letter_topic,
    }
    runner = CliRunner(env=env)
    brokers = ["--brokers", kafka.brokers]
    result = runner.invoke(app, ["topics", "create", *brokers])
    assert result.exit_code == 0 and "exists" in result.output
    result = runner.invoke(app, ["topics", "list", *brokers])
    assert result.exit_code == 0 and "dead letters" in result.output

    result = runner.invoke(
        app, ["replay", "--to", "kafka", "--max", "700", "--corrupt", "0.05", "--rate", "2000",
              *brokers],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    produced = int(result.output.split()[1].replace(",", ""))
    assert produced > 700

    store = ["--home", str(kafka_settings.home), "--store", kafka_settings.store.reveal()]
    result = runner.invoke(app, ["run", "--source", "kafka", "--until-end", *brokers, *store])
    assert result.exit_code == 0, result.output
    [row] = query_rows(
        kafka_settings.store,
        "SELECT count() AS n, (SELECT count() FROM dead_letters) AS dead FROM scored_events",
    )
    assert row == {"n": 700, "dead": produced - 700}


def test_cli_refuses_several_processes_on_the_embedded_store(kafka_settings: Settings) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(
        app,
        ["run", "--source", "kafka", "--processes", "2", "--store", kafka_settings.store.reveal()],
    )
    assert result.exit_code == 2
    assert "belongs to one process" in result.output and "Traceback" not in result.output
