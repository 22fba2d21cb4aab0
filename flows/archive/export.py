"""Archive raw events, dead letters, the issued scores and decisions, and drift reports to S3
as hourly Parquet objects.

An archive run picks every hour partition that the window touches, by the partition's own
time column or by arrival (so an event that arrives late re-archives the hour it belongs
to), and writes each such hour whole. An object therefore always holds every row of its hour
known at the time, and archiving the same window again rewrites the same keys with the same
bytes: unchanged objects are detected by checksum and not uploaded again.

The store is read first and closed before any upload (the embedded store belongs to one
user at a time). Each Parquet file is staged under the home directory, uploaded, verified,
and only then removed; then each touched day's manifest is updated.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flows.archive.layout import (
    DATASETS,
    ISSUED,
    MANIFEST,
    RAW_EVENTS,
    REPORTS,
    Dataset,
    Location,
    data_key,
    date_dir,
    hour_of,
    manifest_key,
    report_key,
)
from flows.archive.s3 import S3Client, Transfer, Uploaded, get_json, upload_verified
from flows.clock import utc_now
from flows.store import Store, StoreURL, open_store
from flows.times import Window, iso_utc, parse_instant

_HOUR = timedelta(hours=1)
_PARAMS = "{start:DateTime64(6, 'UTC')}", "{end:DateTime64(6, 'UTC')}"


def touched_hours(store: Store, dataset: Dataset, window: Window) -> list[datetime]:
    """Hours (by the dataset's partition time) holding rows that fall in, or arrived in, the
    window."""
    start, end = _PARAMS
    column = dataset.time_column
    # Dead letters partition by arrival already; events also by arrival, to catch late ones.
    late = dataset.arrival_column
    arrival = "" if late is None else f" OR ({late} >= {start} AND {late} < {end})"
    result = store.query_arrow(
        # DateTime64 keeps the result a timestamp in Arrow (a plain DateTime arrives as UInt32).
        f"SELECT DISTINCT toDateTime64(toStartOfHour({column}), 0, 'UTC') AS hour "
        f"FROM {dataset.name} "
        f"WHERE ({column} >= {start} AND {column} < {end}){arrival} ORDER BY hour",
        window.params(),
    )
    return [hour_of(h) for h in result.column("hour").to_pylist()]


def hour_rows(store: Store, dataset: Dataset, hour: datetime) -> pa.Table:
    """Every row of one hour partition, one row per key, in key order."""
    start, end = _PARAMS
    params = Window(hour, hour + _HOUR).params()
    if dataset is RAW_EVENTS:
        # source_time lives on the scored row; the rebuild needs it to reproduce that row.
        sql = f"""
SELECT r.event_id AS event_id, r.loan_id AS loan_id, r.event_type AS event_type,
       r.event_time AS event_time, r.received_at AS received_at, r.origin AS origin,
       r.payload AS payload, s.source_time AS source_time
FROM (SELECT * FROM raw_events FINAL WHERE event_time >= {start} AND event_time < {end}) AS r
LEFT JOIN
(
    SELECT event_id, source_time FROM scored_events FINAL
    WHERE event_time >= {start} AND event_time < {end}
) AS s ON r.event_id = s.event_id
ORDER BY event_id
SETTINGS join_use_nulls = 1
"""
    else:
        columns = "*" if dataset.schema is None else ", ".join(dataset.schema.names)
        sql = (
            f"SELECT {columns} FROM {dataset.name} FINAL "
            f"WHERE {dataset.time_column} >= {start} AND {dataset.time_column} < {end} "
            f"ORDER BY {dataset.key_column}"
        )
    table = store.query_arrow(sql, params)
    if dataset.schema is None:
        return table
    return table.select(dataset.schema.names).cast(dataset.schema)


def archived_datasets(store: Store) -> tuple[Dataset, ...]:
    """The event datasets, and the issued-score tables this store has."""
    present = store.query_arrow(
        "SELECT name FROM system.tables WHERE database = currentDatabase()"
    ).column("name").to_pylist()
    return (*DATASETS, *(d for d in ISSUED if d.name in present))


def write_parquet(table: pa.Table, path: Path) -> None:
    """Deterministic for the same rows: same schema, order and writer settings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=128 * 1024)


@dataclass(frozen=True)
class StagedObject:
    dataset: str
    key: str
    path: Path
    hour: datetime
    rows: int
    min_time: datetime | None
    max_time: datetime | None
    counts: dict[str, int]


@dataclass(frozen=True)
class ArchivedObject:
    dataset: str
    key: str
    rows: int
    size: int
    sha256: str
    parts: int
    uploaded: bool


@dataclass
class ArchiveSummary:
    location: Location
    window: Window
    objects: list[ArchivedObject] = field(default_factory=list)
    manifests: list[ArchivedObject] = field(default_factory=list)

    def by_dataset(self) -> dict[str, dict[str, int]]:
        totals: dict[str, dict[str, int]] = {}
        for obj in self.objects:
            t = totals.setdefault(
                obj.dataset, {"objects": 0, "uploaded": 0, "unchanged": 0, "rows": 0, "bytes": 0}
            )
            t["objects"] += 1
            t["uploaded" if obj.uploaded else "unchanged"] += 1
            t["rows"] += obj.rows
            t["bytes"] += obj.size
        return totals


def stage(store_url: StoreURL, window: Window, staging: Path) -> list[StagedObject]:
    """Write every touched hour of every dataset to Parquet under ``staging``."""
    staged: list[StagedObject] = []
    store = open_store(store_url, create_database=False)
    try:
        for dataset in archived_datasets(store):
            for hour in touched_hours(store, dataset, window):
                table = hour_rows(store, dataset, hour)
                relative = data_key(Location("staging"), dataset, hour).removeprefix("staging/")
                path = staging / relative
                write_parquet(table, path)
                times = table.column(dataset.time_column).to_pylist()
                counts = Counter(table.column(dataset.count_column).to_pylist())
                staged.append(
                    StagedObject(
                        dataset=dataset.name,
                        key=relative,
                        path=path,
                        hour=hour,
                        rows=table.num_rows,
                        min_time=min(times) if times else None,
                        max_time=max(times) if times else None,
                        counts=dict(sorted(counts.items())),
                    )
                )
    finally:
        store.close()
    return staged


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return iso_utc(moment, "microseconds")


class Manifests:
    """Each touched day's manifest, read once, updated in memory, written back at the end."""

    def __init__(self, client: S3Client, location: Location) -> None:
        self._client = client
        self._location = location
        self._loaded: dict[str, dict[str, Any]] = {}

    def entry(self, directory: str, moment: datetime) -> dict[str, Any]:
        key = manifest_key(self._location, directory, moment)
        if key not in self._loaded:
            found = get_json(self._client, self._location.bucket, key)
            manifest = found or {
                "dataset": directory,
                "date": f"{moment.astimezone(UTC):%Y-%m-%d}",
                "format": "parquet" if directory != REPORTS else "json+html",
                "objects": {},
            }
            self._loaded[key] = manifest
        return self._loaded[key]

    def record(self, directory: str, moment: datetime, uploaded: Uploaded, **extra: object) -> None:
        manifest = self.entry(directory, moment)
        name = uploaded.key.removeprefix(self._location.key(directory, date_dir(moment)) + "/")
        previous = manifest["objects"].get(name, {})
        unchanged = not uploaded.uploaded and previous.get("sha256") == uploaded.sha256
        manifest["objects"][name] = {
            "key": uploaded.key,
            "bytes": uploaded.size,
            "sha256": uploaded.sha256,
            **extra,
            # Kept from the first upload while the bytes stay the same, so an idempotent re-run
            # leaves the manifest byte-for-byte unchanged too.
            "archived_at": previous.get("archived_at") if unchanged else _iso(utc_now()),
        }

    def flush(self, staging: Path, transfer: Transfer) -> list[ArchivedObject]:
        written = []
        for key, manifest in self._loaded.items():
            manifest["objects"] = dict(sorted(manifest["objects"].items()))
            text = _canonical(manifest)
            path = staging / key.replace("/", "_")
            path.write_text(text)
            result = upload_verified(
                self._client, self._location.bucket, key, path, transfer, "application/json"
            )
            path.unlink()
            written.append(
                ArchivedObject(
                    MANIFEST,
                    key,
                    len(manifest["objects"]),
                    result.size,
                    result.sha256,
                    1,
                    result.uploaded,
                )
            )
        return written


def _canonical(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def report_files(directory: Path | None, window: Window) -> list[tuple[Path, datetime]]:
    """Drift reports (JSON and HTML pairs) whose window ended inside the archive window."""
    if directory is None or not directory.is_dir():
        return []
    found = []
    for json_path in sorted(directory.glob("drift-*.json")):
        try:
            end = parse_instant(json.loads(json_path.read_text())["window"]["end"])
        except (ValueError, KeyError, TypeError):
            continue  # not a drift report this code wrote
        if window.start <= end < window.end:
            found.append((json_path, end))
            html_path = json_path.with_suffix(".html")
            if html_path.is_file():
                found.append((html_path, end))
    return found


def archive(
    store_url: StoreURL,
    client: S3Client,
    location: Location,
    window: Window,
    staging: Path,
    *,
    reports: Path | None = None,
    transfer: Transfer | None = None,
) -> ArchiveSummary:
    """Archive every hour the window touches, and the drift reports that ended in it."""
    transfer = transfer or Transfer()
    staging.mkdir(parents=True, exist_ok=True)
    summary = ArchiveSummary(location, window)
    staged = stage(store_url, window, staging)
    manifests = Manifests(client, location)
    for item in staged:
        key = location.key(item.key)
        result = upload_verified(client, location.bucket, key, item.path, transfer)
        item.path.unlink()  # verified in the bucket: the staged copy is no longer needed
        manifests.record(
            item.dataset,
            item.hour,
            result,
            rows=item.rows,
            hour=_iso(item.hour),
            min_time=_iso(item.min_time),
            max_time=_iso(item.max_time),
            counts=item.counts,
            parts=result.parts,
        )
        summary.objects.append(
            ArchivedObject(
                item.dataset,
                key,
                item.rows,
                result.size,
                result.sha256,
                result.parts,
                result.uploaded,
            )
        )
    for path, end in report_files(reports, window):
        key = report_key(location, end, path.name)
        kind = "application/json" if path.suffix == ".json" else "text/html; charset=utf-8"
        result = upload_verified(client, location.bucket, key, path, transfer, kind)
        manifests.record(REPORTS, end, result, window_end=_iso(end))
        summary.objects.append(
            ArchivedObject(
                REPORTS, key, 0, result.size, result.sha256, result.parts, result.uploaded
            )
        )
    summary.manifests = manifests.flush(staging, transfer)
    return summary
