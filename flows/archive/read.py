"""Read the archive back: the objects its manifests list, each checked against the manifest's
SHA-256 and row count before any row is used. Replaying them through the flow is
:mod:`flows.connectors.archive_source`'s work.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq

from flows.archive.layout import (
    DATASETS,
    DATASETS_BY_NAME,
    MANIFEST,
    ArchiveError,
    Location,
)
from flows.archive.s3 import S3Client, get_bytes, get_json, list_keys
from flows.times import parse_instant


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
                        hour=parse_instant(entry["hour"], "a manifest's hour"),
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
