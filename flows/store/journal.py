"""The sink's write-ahead journal: what makes a batch's inserts all-or-nothing across crashes.

ClickHouse commits a table's part and each of its materialized views' parts separately, so a
process that dies mid-insert can leave rows that some views never counted, and a later
"is this key stored?" check would then skip them for good. Instead, every write is first
recorded whole in ``sink_journal`` (one INSERT, one part: it is there or it is not), then each
table gets its rows with a deduplication token derived from the entry, and the entry is dropped
last. A writer that connects replays any entry left behind with the same tokens: each table and
view that already holds its block skips it (``non_replicated_deduplication_window``, and
``deduplicate_blocks_in_dependent_materialized_views`` for the views), the others get it.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

import pyarrow as pa

from flows.store.base import Store

JOURNAL = "sink_journal"
_COMPRESSION = "lz4"


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


def encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=_COMPRESSION)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(body: bytes) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
        return reader.read_all()


def record(store: Store, entry: Entry) -> None:
    """Write the entry in one insert: afterwards it is complete in the journal, or absent."""
    names = list(entry.tables)
    rows = pa.table(
        {
            "token": pa.array([entry.token] * len(names), pa.string()),
            "target": pa.array(names, pa.string()),
            "rows": pa.array([entry.tables[n].num_rows for n in names], pa.uint32()),
            "body": pa.array([encode(entry.tables[n]) for n in names], pa.binary()),
        }
    )
    store.insert_arrow(JOURNAL, rows)


def apply(store: Store, entry: Entry) -> None:
    """Insert every table's rows with the entry's tokens, then drop the entry. Idempotent."""
    for name, table in entry.tables.items():
        store.insert_arrow(name, table, token=entry.table_token(name))
    # Tokens are hex digits (uuid4), safe to quote as they are.
    store.command(f"ALTER TABLE {JOURNAL} DROP PARTITION '{entry.token}'")


def pending(store: Store) -> list[Entry]:
    """Entries a crashed or failed write left behind, oldest first."""
    # base64 on the way out: Arrow results carry ClickHouse strings as UTF-8 text.
    found = store.query_arrow(
        f"SELECT token, target, base64Encode(body) AS body, min(written_at) OVER "
        f"(PARTITION BY token) AS began FROM {JOURNAL} ORDER BY began, token, target"
    ).to_pylist()
    entries: dict[str, dict[str, pa.Table]] = {}
    for row in found:
        entries.setdefault(row["token"], {})[row["target"]] = decode(base64.b64decode(row["body"]))
    return [Entry(token, tables) for token, tables in entries.items()]


def complete_pending(store: Store) -> int:
    """Replay every entry left behind; returns how many there were."""
    entries = pending(store)
    for entry in entries:
        apply(store, entry)
    return len(entries)
