"""The scores and decisions that were issued, restored from the archive as they were issued
(the PD, model version and processing time an audit must see), before a rebuild replays the
events: the writer's key check then skips scoring those events again.
"""

from __future__ import annotations

from flows.archive.layout import ISSUED, Location
from flows.archive.read import list_archive, read_file
from flows.archive.s3 import S3Client
from flows.store import Store, journal
from flows.writer import without_keys


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
