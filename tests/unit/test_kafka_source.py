"""A consumer read of one partition becomes one micro-batch: payloads, origins, source
timestamps, where the partition stands, source errors as dead letters, and the end of the
partition. Built from confluent-kafka's own message objects, as the consumer returns them.
"""

from __future__ import annotations

from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError, Message

from flows.connectors.kafka_input import to_raw_batch


def _message(offset: int, value: bytes, error: KafkaError | None = None) -> Message:
    return Message(
        topic="loans",
        partition=3,
        offset=offset,
        value=value,
        timestamp=(TIMESTAMP_CREATE_TIME, 1_700_000_000_000 + offset),
        error=error,
    )


def test_a_read_becomes_one_batch_with_origins_and_position() -> None:
    batch, at_end = to_raw_batch("loans", 3, [_message(7, b"a"), _message(8, b"b")])
    assert not at_end
    assert batch.payloads == [b"a", b"b"]
    assert batch.origins == ["kafka:loans:3:7", "kafka:loans:3:8"]
    assert batch.source_ms == [1_700_000_000_007, 1_700_000_000_008]
    assert batch.positions == {("loans", 3): 9}
    assert batch.source == "kafka" and batch.errors == []


def test_source_errors_are_dead_letters_and_the_read_moves_past_them() -> None:
    corrupt = KafkaError(KafkaError._BAD_MSG)
    batch, _ = to_raw_batch("loans", 3, [_message(4, b"ok"), _message(5, b"\xff", corrupt)])
    assert batch.payloads == [b"ok"]
    [dead] = batch.errors
    assert (dead.origin, dead.reason, dead.payload) == ("kafka:loans:3:5", "kafka_error", b"\xff")
    assert "Local: Bad message format" in dead.detail
    assert batch.positions == {("loans", 3): 6}
    assert len(batch) == 2


def test_an_error_without_a_message_moves_no_position() -> None:
    lost = Message(topic="loans", partition=3, error=KafkaError(KafkaError._TRANSPORT))
    batch, _ = to_raw_batch("loans", 3, [lost])
    assert batch.positions == {}
    assert [d.origin for d in batch.errors] == ["kafka:loans:3:-1"]


def test_the_end_of_the_partition_ends_the_read() -> None:
    end = Message(topic="loans", partition=3, offset=9, error=KafkaError(KafkaError._PARTITION_EOF))
    batch, at_end = to_raw_batch("loans", 3, [_message(8, b"last"), end])
    assert at_end
    assert batch.payloads == [b"last"] and batch.errors == []
    assert batch.positions == {("loans", 3): 9}
