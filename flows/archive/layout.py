"""Where archived things live in the bucket, and the Parquet schema of each dataset.

Keys are a pure function of the data's time, so archiving the same hours again writes the
same keys (overwriting, never duplicating)::

    <prefix>/raw_events/date=2024-05-01/hour=13/data.parquet      by event_time
    <prefix>/dead_letters/date=2024-05-01/hour=13/data.parquet    by received_at
    <prefix>/reports/drift/date=2024-05-01/drift-<end>-<model>.json|.html
    <prefix>/<dataset>/date=2024-05-01/_manifest.json             rows, bytes, sha256 per object

Dead letters partition by arrival because a payload that failed to parse has no event time.
The Hive-style ``date=``/``hour=`` directories let ClickHouse's ``s3()`` or Athena read the
archive in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pyarrow as pa

from flows.batches import TS_MS, TS_US
from flows.errors import RiskctlError

MANIFEST = "_manifest.json"
DATA_FILE = "data.parquet"
REPORTS = "reports/drift"


class ArchiveError(RiskctlError):
    """The archive cannot be written or read as asked."""


@dataclass(frozen=True)
class Dataset:
    name: str
    time_column: str
    key_column: str
    # None: the table's own columns as the store returns them (the issued-score tables, whose
    # every column is kept for audit and restored as it was).
    schema: pa.Schema | None
    # Rows also re-archive the hour they belong to when they arrived inside the window.
    arrival_column: str | None = "received_at"
    # What a manifest counts the rows by.
    count_column: str = "event_type"


RAW_EVENTS = Dataset(
    name="raw_events",
    time_column="event_time",
    key_column="event_id",
    schema=pa.schema(
        [
            pa.field("event_id", pa.string(), nullable=False),
            pa.field("loan_id", pa.string(), nullable=False),
            pa.field("event_type", pa.string(), nullable=False),
            pa.field("event_time", TS_MS, nullable=False),
            pa.field("received_at", TS_US, nullable=False),
            pa.field("origin", pa.string(), nullable=False),
            pa.field("payload", pa.string(), nullable=False),
            # From scored_events: when the source handed the event over (Kafka's timestamp).
            # Not in raw_events, but a rebuild needs it to reproduce the scored rows.
            pa.field("source_time", TS_MS, nullable=True),
        ]
    ),
)
DEAD_LETTERS = Dataset(
    name="dead_letters",
    time_column="received_at",
    key_column="dead_letter_id",
    arrival_column=None,
    count_column="reason",
    schema=pa.schema(
        [
            pa.field("dead_letter_id", pa.string(), nullable=False),
            pa.field("received_at", TS_US, nullable=False),
            pa.field("origin", pa.string(), nullable=False),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("detail", pa.string(), nullable=False),
            pa.field("payload", pa.string(), nullable=False),
            pa.field("payload_base64", pa.string(), nullable=False),
        ]
    ),
)
DATASETS: tuple[Dataset, ...] = (RAW_EVENTS, DEAD_LETTERS)
# The scores and decisions that were issued, kept for audit, and restored as they were by a
# rebuild (rather than re-scored with whatever model is current then). A table the store does
# not have (decisions or shadow_scores, before their migrations) is not archived.
ISSUED: tuple[Dataset, ...] = (
    Dataset("scored_events", "event_time", "event_id", None, count_column="model_version"),
    Dataset("repayment_scores", "event_time", "event_id", None, count_column="model_version"),
    Dataset(
        "decisions", "decided_at", "decision_id", None, arrival_column=None,
        count_column="model_version",
    ),
    # A challenger's shadow scores: the evidence a promotion was judged on. They have no
    # received_at; scored as they arrived, a late one is found by when it was processed.
    Dataset(
        "shadow_scores", "event_time", "event_id", None, arrival_column="processed_at",
        count_column="challenger_version",
    ),
)  # fmt: skip
DATASETS_BY_NAME = {d.name: d for d in (*DATASETS, *ISSUED)}


@dataclass(frozen=True)
class Location:
    """A bucket and the key prefix under it that holds one archive."""

    bucket: str
    prefix: str = ""

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def parse_location(uri: str, default_prefix: str = "") -> Location:
    """``s3://bucket[/prefix]``; without a prefix in the URI, ``default_prefix``."""
    parts = urlsplit(uri.strip())
    if parts.scheme != "s3" or not parts.netloc:
        raise ArchiveError(f"expected an archive location like s3://bucket/prefix, got {uri!r}")
    prefix = parts.path.strip("/")
    return Location(bucket=parts.netloc, prefix=prefix if prefix else default_prefix.strip("/"))


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def date_dir(moment: datetime) -> str:
    return f"date={moment.astimezone(UTC):%Y-%m-%d}"


def data_key(location: Location, dataset: Dataset, hour: datetime) -> str:
    return location.key(dataset.name, date_dir(hour), f"hour={hour.astimezone(UTC):%H}", DATA_FILE)


def manifest_key(location: Location, directory: str, moment: datetime) -> str:
    """The manifest of one day's objects of a dataset (or of the drift reports)."""
    return location.key(directory, date_dir(moment), MANIFEST)


def report_key(location: Location, window_end: datetime, file_name: str) -> str:
    return location.key(REPORTS, date_dir(window_end), file_name)
