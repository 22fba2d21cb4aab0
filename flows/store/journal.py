"""The sink's write-ahead journal: what makes a batch's inserts all-or-nothing across crashes.

ClickHouse commits a table's part and each of its materialized views' parts separately, so a
process that dies mid-insert can leave rows that some views never counted, and a later
"is this key stored?" check would then skip them for good. Instead, every write is first
recorded whole in the store's journal log (:mod:`flows.store.journal_logs`: there or not
there, never in part), then each table gets its rows with a deduplication token derived from
the entry, and the entry is dropped last. A writer that connects replays any entry left behind
with the same tokens: each table and view that already holds its block skips it
(``non_replicated_deduplication_window``, and
``deduplicate_blocks_in_dependent_materialized_views`` for the views), the others get it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pyarrow as pa

from flows.store.base import JournalLog, Store
from flows.store.journal_logs import JOURNAL

__all__ = ["JOURNAL", "Entry", "apply", "complete_pending", "pending", "record"]


@dataclass(frozen=True)
class Entry:
    """One write: the rows for each target table, under one token."""

    token: str
    tables: dict[str, pa.Table]

    @staticmethod
    def new(tables: dict[str, pa.Table]) -> Entry:
        """Tables are applied in the order given: put the ones readers trust last."""
        return Entry(uuid.uuid4().hex, {name: t for name, t in tables.items() if t.num_rows})

    def table_token(self, table: str) -> str:
        return f"{self.token}:{table}"


def record(store: Store, entry: Entry) -> None:
    """Keep the entry in the store's log: afterwards it is complete there, or absent."""
    store.journals[-1].record(entry.token, entry.tables)


def apply(store: Store, entry: Entry, log: JournalLog | None = None) -> None:
    """Insert every table's rows with the entry's tokens, then drop the entry from ``log``
    (the store's log for new entries by default). Idempotent."""
    for name, table in entry.tables.items():
        store.insert_arrow(name, table, token=entry.table_token(name))
    (store.journals[-1] if log is None else log).drop(entry.token)


def pending(store: Store) -> list[tuple[JournalLog, Entry]]:
    """Entries a crashed or failed write left behind, in the order to complete them."""
    return [
        (log, Entry(token, tables)) for log in store.journals for token, tables in log.entries()
    ]


def complete_pending(store: Store) -> int:
    """Replay every entry left behind; returns how many there were."""
    entries = pending(store)
    for log, entry in entries:
        apply(store, entry, log)
    return len(entries)
