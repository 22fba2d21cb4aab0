"""The S3 archive: raw events, dead letters and drift reports as hourly Parquet objects with
per-day manifests (:mod:`.export`), read back (:mod:`.read`). Replaying them through the flow is
:mod:`flows.connectors.archive_source` and :func:`flows.jobs.run_archive`.
"""

from flows.archive.export import ArchiveSummary, archive
from flows.archive.layout import ArchiveError, Location, parse_location
from flows.archive.read import list_archive, read_dataset
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
    "upload_verified",
]
