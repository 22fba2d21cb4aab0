"""Kafka fixtures: one real broker per session (KAFKA_BOOTSTRAP, or Tansu started here) and
fresh topic names per test, so tests never see each other's messages.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from flows.kafka_admin import create_topics, event_messages, produce
from flows.settings import KafkaSettings, Settings
from tests.services import TansuBroker


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    with TansuBroker(tmp_path_factory.mktemp("tansu") / "tansu.log") as broker:
        yield broker.bootstrap


def fresh_kafka(bootstrap: str, partitions: int) -> KafkaSettings:
    tag = uuid.uuid4().hex[:10]
    kafka = KafkaSettings(
        brokers=bootstrap,
        applications_topic=f"applications-{tag}",
        repayments_topic=f"repayments-{tag}",
        dead_letter_topic=f"dead-letters-{tag}",
        partitions=partitions,
        consume_batch_size=1000,
    )
    # Tansu creates unknown topics on first use with its own partition count: create first.
    create_topics(kafka)
    return kafka


@pytest.fixture
def kafka_settings(settings: Settings, kafka_bootstrap: str) -> Settings:
    """Test settings with fresh topics (2 partitions each) on the session's broker."""
    return replace(settings, kafka=fresh_kafka(kafka_bootstrap, partitions=2))


def produce_file(kafka: KafkaSettings, path: Path) -> int:
    """Send a JSON-lines file's events to their topics, keyed by loan id."""
    return produce(kafka.brokers, event_messages(kafka, path.read_bytes().splitlines()))
