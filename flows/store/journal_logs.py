"""Where a store keeps the sink's journal entries (``JournalLog``; the protocol that uses
them is in :mod:`flows.store.journal`).

A log records an entry (a token and the rows for each target table) so that afterwards it is
there whole or not at all, reads back what is left, oldest first, and drops an entry once its
tables have it.

- :class:`TableLog`, the ``sink_journal`` table: one INSERT is one part, present or absent.
  A server's writers may be on several machines, so their journal lives in the store.
- :class:`FileLog`, a directory beside an embedded store's data: one file written under a
  temporary name and renamed into place. Only this process can write an embedded store, so a
  file there is as safe as a part, and much cheaper: a part is a directory of about ten files
  and its drop an ``ALTER``, which cost a small write a quarter of its time.
  Neither kind is synced to disk: ClickHouse does not sync its parts either
  (``fsync_after_insert`` = 0), so both survive the process dying, not the machine.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from flows.store.base import StoreError

if TYPE_CHECKING:
    from flows.store.base import Store

JOURNAL = "sink_journal"
_SUFFIX = ".arrow"
_PARTIAL = ".partial"

Tables = Mapping[str, pa.Table]


def encode(table: pa.Table, compression: str | None) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(body: bytes) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
        return reader.read_all()


def _bodies(tables: Tables, compression: str | None) -> pa.Table:
    names = list(tables)
    return pa.table(
        {
            "target": pa.array(names, pa.string()),
            "rows": pa.array([tables[n].num_rows for n in names], pa.uint32()),
            "body": pa.array([encode(tables[n], compression) for n in names], pa.binary()),
        }
    )


class TableLog:
    """The ``sink_journal`` table (migration 0010): one partition per entry."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def record(self, token: str, tables: Tables) -> None:
        # Compressed: a server's journal travels over the network twice.
        rows = _bodies(tables, "lz4")
        rows = rows.add_column(0, "token", pa.array([token] * rows.num_rows, pa.string()))
        self._store.insert_arrow(JOURNAL, rows)

    def entries(self) -> list[tuple[str, dict[str, pa.Table]]]:
        # base64 on the way out: Arrow results carry ClickHouse strings as UTF-8 text.
        found = self._store.query_arrow(
            f"SELECT token, target, base64Encode(body) AS body, min(written_at) OVER "
            f"(PARTITION BY token) AS began FROM {JOURNAL} ORDER BY began, token, target"
        ).to_pylist()
        kept: dict[str, dict[str, pa.Table]] = {}
        for row in found:
            kept.setdefault(row["token"], {})[row["target"]] = decode(base64.b64decode(row["body"]))
        return list(kept.items())

    def drop(self, token: str) -> None:
        # Tokens are hex digits (uuid4), safe to quote as they are.
        self._store.command(f"ALTER TABLE {JOURNAL} DROP PARTITION '{token}'")


class FileLog:
    """One Arrow file per entry in ``directory``, named by the order entries were recorded.

    For a store only one process can have open: a partial file another process left is from
    one that died while recording, and reading the entries removes it."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def record(self, token: str, tables: Tables) -> None:
        # Uncompressed: the file is gone again once the write completes, and lz4 cost more
        # than writing the bytes.
        rows = _bodies(tables, None)
        partial = self._directory / f"{token}.{os.getpid()}{_PARTIAL}"
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            with pa.OSFile(str(partial), "wb") as file, pa.ipc.new_file(file, rows.schema) as out:
                out.write_table(rows)
            # The rename is the record: a file cut short keeps its partial name, never read.
            os.replace(partial, self._directory / f"{_sequence(self._directory)}-{token}{_SUFFIX}")
        except OSError as exc:
            partial.unlink(missing_ok=True)  # a full disk gets its space back
            raise self._error("cannot record a write in", exc) from exc

    def entries(self) -> list[tuple[str, dict[str, pa.Table]]]:
        kept = []
        try:
            for partial in self._partials("*"):
                if partial.name.split(".")[1] != str(os.getpid()):
                    partial.unlink(missing_ok=True)
            for path in self._files():
                with pa.memory_map(str(path)) as source:
                    rows = pa.ipc.open_file(source).read_all().to_pylist()
                token = path.name.removesuffix(_SUFFIX).split("-", 1)[1]
                kept.append((token, {row["target"]: decode(row["body"]) for row in rows}))
        except OSError as exc:
            raise self._error("cannot read", exc) from exc
        return kept

    def drop(self, token: str) -> None:
        try:
            for path in self._files():
                if path.name.endswith(f"-{token}{_SUFFIX}"):
                    path.unlink(missing_ok=True)
            for partial in self._partials(token):
                partial.unlink(missing_ok=True)
        except OSError as exc:
            raise self._error("cannot drop an entry from", exc) from exc

    def _error(self, doing: str, exc: OSError) -> StoreError:
        return StoreError(f"{doing} the journal {self._directory}: {exc.strerror or exc}")

    def _partials(self, token: str) -> list[Path]:
        if not self._directory.is_dir():
            return []
        return list(self._directory.glob(f"{token}.*{_PARTIAL}"))

    def _files(self) -> list[Path]:
        if not self._directory.is_dir():
            return []
        return sorted(self._directory.glob(f"*{_SUFFIX}"), key=_order)


def _order(path: Path) -> tuple[int, str]:
    # Two writers of one process may take the same number: their entries are independent.
    return int(path.name.split("-", 1)[0]), path.name


def _sequence(directory: Path) -> str:
    """One more than the last entry's number: entries complete in the order they were kept."""
    last = max((_order(p)[0] for p in directory.glob(f"*{_SUFFIX}")), default=0)
    return f"{last + 1:012d}"
