"""Dead letters out to Kafka as well, for consumers who watch bad input as a stream.

Keyed by dead-letter id; the value is JSON with the reason and the exact payload in base64.
Kafka producers are at-least-once, so after a crash and restart a dead letter can appear on
the topic twice; the ClickHouse table keeps it once.
"""

from __future__ import annotations

import msgspec
from bytewax.connectors.kafka import KafkaSinkMessage

from flows.batches import ScoredBatch
from flows.times import iso_utc

_ENCODER = msgspec.json.Encoder()
_COLUMNS = ("dead_letter_id", "received_at", "origin", "reason", "detail", "payload_base64")


def dead_letter_messages(batch: ScoredBatch) -> list[KafkaSinkMessage[bytes, bytes]]:
    if batch.dead.num_rows == 0:
        return []
    rows = batch.dead.select(list(_COLUMNS)).to_pylist()
    return [
        KafkaSinkMessage(
            key=row["dead_letter_id"].encode(),
            value=_ENCODER.encode({**row, "received_at": iso_utc(row["received_at"])}),
        )
        for row in rows
    ]
