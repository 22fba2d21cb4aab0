"""The S3 archive: raw events, dead letters and drift reports as hourly Parquet objects with
per-day manifests (:mod:`.export`), read back and replayed through the flow (:mod:`.restore`).
"""

from flows.archive.export import ArchiveSummary, archive
from flows.archive.layout import ArchiveError, Location, parse_location
from flows.archive.restore import list_archive, read_dataset, rebuild
from flows.archive.s3 import Transfer, VerificationError, make_client, upload_verified

__all__ = [
    "ArchiveError",
    "ArchiveSummary",
    "Location",
    "Transfer",
    "VerificationError",
    "archive",
    "list_archive",
    "make_client",
    "parse_location",
    "read_dataset",
    "rebuild",
    "upload_verified",
]
