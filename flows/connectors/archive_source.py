"""The S3 archive as a Bytewax source: its objects, hour by hour, replayed as raw batches.

Replay hands the flow each archived payload with its original origin and arrival time, so the
flow derives the same event ids, dead-letter ids, ``received_at`` and ``source_time`` it derived
the first time: a rebuild into an empty store reproduces raw_events, dead_letters, scored_events
(but for ``processed_at``) and every view fed by them.

Dead letters the validator produced are re-validated from their exact bytes
(``payload_base64``); those the source itself produced (a Kafka read error, say) carry no
payload to re-judge and are passed through as they were.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.archive.layout import RAW_EVENTS, Location
from flows.archive.read import ArchivedFile, read_file
from flows.archive.s3 import S3Client
from flows.batches import RawBatch
from flows.validation import REDERIVABLE, DeadLetter

SOURCE_NAME = "archive"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ArchivedItem:
    received_us: int
    origin: str
    payload: bytes
    source_ms: int
    error: DeadLetter | None


def archived_items(table: pa.Table, dataset: str) -> list[ArchivedItem]:
    received = table.column("received_at").cast(pa.int64()).to_pylist()
    origins = table.column("origin").to_pylist()
    if dataset == RAW_EVENTS.name:
        payloads = [p.encode("utf-8") for p in table.column("payload").to_pylist()]
        source = table.column("source_time").cast(pa.int64()).to_pylist()
        return [
            # Events archived before source_time existed arrived from files, where the source
            # time is the read time.
            ArchivedItem(r, o, p, s if s is not None else r // 1000, None)
            for r, o, p, s in zip(received, origins, payloads, source, strict=True)
        ]
    reasons = table.column("reason").to_pylist()
    details = table.column("detail").to_pylist()
    raw = [base64.b64decode(b) for b in table.column("payload_base64").to_pylist()]
    items = []
    for r, o, p, reason, detail in zip(received, origins, raw, reasons, details, strict=True):
        passed = None if reason in REDERIVABLE else DeadLetter(o, reason, detail, p)
        items.append(ArchivedItem(r, o, p, r // 1000, passed))
    return items


def replay_batches(tables: Iterator[tuple[str, pa.Table]], batch_size: int) -> Iterator[RawBatch]:
    """Raw batches of archived rows; rows that arrived together arrive together again."""
    for dataset, table in tables:
        items = sorted(archived_items(table, dataset), key=lambda i: (i.received_us, i.origin))
        start = 0
        while start < len(items):
            moment = items[start].received_us
            stop = start
            while stop < len(items) and items[stop].received_us == moment:
                stop += 1
            for lo in range(start, stop, batch_size):
                chunk = items[lo : min(stop, lo + batch_size)]
                fed = [i for i in chunk if i.error is None]
                yield RawBatch(
                    origins=[i.origin for i in fed],
                    payloads=[i.payload for i in fed],
                    received_at=_EPOCH + timedelta(microseconds=moment),
                    source=SOURCE_NAME,
                    source_ms=[i.source_ms for i in fed],
                    errors=[i.error for i in chunk if i.error is not None],
                )
            start = stop


class _ArchivePartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(self, batches: Iterator[RawBatch], skip: int) -> None:
        self._batches = batches
        self._emitted = 0
        for _ in range(skip):  # resuming: the batches before the snapshot are already written
            next(self._batches, None)
            self._emitted += 1

    def next_batch(self) -> list[RawBatch]:
        batch = next(self._batches, None)
        if batch is None:
            raise StopIteration
        self._emitted += 1
        return [batch]

    def snapshot(self) -> int:
        return self._emitted


class ArchiveSource(FixedPartitionedSource[RawBatch, int]):
    """The archived objects, hour by hour, as one partition of raw batches."""

    def __init__(
        self,
        files: list[ArchivedFile],
        location: Location,
        client_factory: Callable[[], S3Client],
        batch_size: int,
    ) -> None:
        self._files = files
        self._location = location
        self._client_factory = client_factory
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return ["archive"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _ArchivePartition:
        client = self._client_factory()  # per partition: boto3 clients stay in their thread

        def tables() -> Iterator[tuple[str, pa.Table]]:
            for item in self._files:
                yield item.dataset, read_file(client, self._location, item)

        return _ArchivePartition(replay_batches(tables(), self._batch_size), resume_state or 0)
