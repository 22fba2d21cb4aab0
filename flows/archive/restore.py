"""Read the archive back and replay it through the dataflow, e.g. to rebuild a lost store.

Only objects a manifest lists are read, and each is checked against the manifest's SHA-256
and row count before any row is used. Replay hands the flow each archived payload with its
original origin and arrival time, so the flow derives the same event ids, dead-letter ids,
``received_at`` and ``source_time`` it derived the first time: a rebuild into an empty store
reproduces raw_events, dead_letters, scored_events (but for ``processed_at``) and every view
fed by them. The scores and decisions that were issued are restored as archived (the PD and
model version an audit must see), unless a re-score is asked for; only events with no
archived score are scored, by the model given to the rebuild, normally the current one.

Dead letters the validator produced are re-validated from their exact bytes
(``payload_base64``); those the source itself produced (a Kafka read error, say) carry no
payload to re-judge and are passed through as they were.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.archive.layout import (
    DATASETS,
    DATASETS_BY_NAME,
    ISSUED,
    MANIFEST,
    RAW_EVENTS,
    ArchiveError,
    Location,
)
from flows.archive.s3 import S3Client, get_bytes, get_json, list_keys
from flows.jobs import RunOptions, run_source
from flows.model import ScoringModel
from flows.scoring import RawBatch
from flows.settings import Settings
from flows.store import Store, journal, open_store
from flows.store.migrations import migrate
from flows.validation import REDERIVABLE, DeadLetter
from flows.writer import RunStats, without_keys

SOURCE_NAME = "archive"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ArchivedFile:
    """One data object as its manifest records it."""

    dataset: str
    key: str
    hour: datetime
    rows: int
    size: int
    sha256: str


def list_archive(
    client: S3Client, location: Location, datasets: tuple[str, ...] | None = None
) -> list[ArchivedFile]:
    """Every archived data object under ``location``, oldest hour first."""
    names = datasets or tuple(d.name for d in DATASETS)
    found: list[ArchivedFile] = []
    for name in names:
        if name not in DATASETS_BY_NAME:
            raise ArchiveError(f"unknown archived dataset {name!r}")
        for key in list_keys(client, location.bucket, location.key(name) + "/"):
            if not key.endswith("/" + MANIFEST):
                continue
            manifest = get_json(client, location.bucket, key) or {}
            for entry in manifest.get("objects", {}).values():
                found.append(
                    ArchivedFile(
                        dataset=name,
                        key=entry["key"],
                        hour=datetime.fromisoformat(entry["hour"].replace("Z", "+00:00")),
                        rows=int(entry["rows"]),
                        size=int(entry["bytes"]),
                        sha256=entry["sha256"],
                    )
                )
    return sorted(found, key=lambda f: (f.hour, f.dataset, f.key))


def read_file(client: S3Client, location: Location, item: ArchivedFile) -> pa.Table:
    """One object's rows, after checking its bytes and row count against the manifest."""
    body = get_bytes(client, location.bucket, item.key)
    digest = hashlib.sha256(body).hexdigest()
    if len(body) != item.size or digest != item.sha256:
        raise ArchiveError(
            f"s3://{location.bucket}/{item.key} does not match its manifest "
            f"({len(body)} bytes, sha256 {digest[:12]}; manifest {item.size}, {item.sha256[:12]})"
        )
    table = pq.read_table(io.BytesIO(body))
    if table.num_rows != item.rows:
        raise ArchiveError(
            f"s3://{location.bucket}/{item.key} has {table.num_rows} rows; "
            f"its manifest says {item.rows}"
        )
    schema = DATASETS_BY_NAME[item.dataset].schema
    return table if schema is None else table.cast(schema)


def read_dataset(client: S3Client, location: Location, dataset: str) -> pa.Table:
    """Every archived row of one dataset."""
    tables = [read_file(client, location, f) for f in list_archive(client, location, (dataset,))]
    if tables:
        return pa.concat_tables(tables)
    schema = DATASETS_BY_NAME[dataset].schema
    if schema is None:
        raise ArchiveError(f"nothing of {dataset} is archived under {location.uri()}")
    return schema.empty_table()


@dataclass(frozen=True, slots=True)
class _Item:
    received_us: int
    origin: str
    payload: bytes
    source_ms: int
    error: DeadLetter | None


def _items(table: pa.Table, dataset: str) -> list[_Item]:
    received = table.column("received_at").cast(pa.int64()).to_pylist()
    origins = table.column("origin").to_pylist()
    if dataset == RAW_EVENTS.name:
        payloads = [p.encode("utf-8") for p in table.column("payload").to_pylist()]
        source = table.column("source_time").cast(pa.int64()).to_pylist()
        return [
            # Events archived before source_time existed arrived from files, where the source
            # time is the read time.
            _Item(r, o, p, s if s is not None else r // 1000, None)
            for r, o, p, s in zip(received, origins, payloads, source, strict=True)
        ]
    reasons = table.column("reason").to_pylist()
    details = table.column("detail").to_pylist()
    raw = [base64.b64decode(b) for b in table.column("payload_base64").to_pylist()]
    items = []
    for r, o, p, reason, detail in zip(received, origins, raw, reasons, details, strict=True):
        passed = None if reason in REDERIVABLE else DeadLetter(o, reason, detail, p)
        items.append(_Item(r, o, p, r // 1000, passed))
    return items


def replay_batches(tables: Iterator[tuple[str, pa.Table]], batch_size: int) -> Iterator[RawBatch]:
    """Raw batches of archived rows; rows that arrived together arrive together again."""
    for dataset, table in tables:
        items = sorted(_items(table, dataset), key=lambda i: (i.received_us, i.origin))
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


def restore_issued(store: Store, client: S3Client, location: Location) -> dict[str, int]:
    """Insert the archived issued scores and decisions the store does not hold yet, each
    object as one journaled write (complete or absent after a crash); rows per table."""
    restored: dict[str, int] = {}
    for dataset in ISSUED:
        for item in list_archive(client, location, (dataset.name,)):
            table = read_file(client, location, item)
            key = dataset.key_column
            present = store.existing_keys(dataset.name, key, table.column(key).combine_chunks())
            entry = journal.Entry.new({dataset.name: without_keys(table, key, present)})
            if entry.tables:
                journal.record(store, entry)
                journal.apply(store, entry)
            added = entry.tables[dataset.name].num_rows if entry.tables else 0
            restored[dataset.name] = restored.get(dataset.name, 0) + added
    return restored


@dataclass(frozen=True)
class Rebuilt:
    stats: RunStats
    # issued rows restored as archived, per table (empty with rescore)
    restored: dict[str, int]


def rebuild(
    settings: Settings,
    model: ScoringModel,
    location: Location,
    client_factory: Callable[[], S3Client],
    on_write: Callable[[RunStats], None] = lambda _stats: None,
    *,
    rescore: bool = False,
) -> Rebuilt:
    """Rebuild the settings' store from the archive under ``location``.

    The issued scores and decisions are restored first, as they were issued (model version,
    PD, processed_at); then the events and dead letters are replayed through the flow, whose
    score rows for events already restored are skipped by the writer's key check, so only
    events with no archived score are scored, by ``model``. With ``rescore`` nothing is
    restored and ``model`` scores every event.
    """
    files = list_archive(client_factory(), location)
    if not files:
        raise ArchiveError(f"no archived events under {location.uri()}")
    restored: dict[str, int] = {}
    if not rescore:
        store = open_store(settings.store)
        try:
            migrate(store)
            restored = restore_issued(store, client_factory(), location)
        finally:
            store.close()
    source = ArchiveSource(files, location, client_factory, settings.batch_size)
    options = RunOptions(on_write=on_write)
    stats = run_source(source, settings, model, options, flow_id="riskctl-rebuild")
    return Rebuilt(stats, restored)
