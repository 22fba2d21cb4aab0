"""The embedded store: ClickHouse in-process through chDB, persisted to a directory.

chDB serves one data directory per process; a second process opening the same directory is
refused, and so is a second directory in the same process while the first is open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from chdb import session as chdb_session

from flows.store.base import (
    KEY_HASH,
    JournalLog,
    StoreError,
    StoreUnavailable,
    dedup_settings,
)
from flows.store.journal_logs import JOURNAL, FileLog, TableLog
from flows.store.url import StoreURL, URLNamed


class EmbeddedStore(URLNamed):
    def __init__(self, url: StoreURL, *, create_database: bool = True) -> None:
        assert url.path is not None
        self._url = url
        url.path.mkdir(parents=True, exist_ok=True)
        # ClickHouse recreates a deleted table directory on the next insert, so a store removed
        # under a running process would take writes into a fresh, empty tree without an error.
        self._inode = _inode(url.path)
        try:
            self._session = chdb_session.Session(str(url.path))
        except Exception as exc:  # chDB raises plain exceptions for a held or foreign path
            raise StoreUnavailable(
                f"cannot open embedded store {url.path}: {_first_line(exc)} (the embedded store"
                " belongs to one process at a time; use a ClickHouse server for several)"
            ) from exc
        try:
            if create_database:
                self.command(f"CREATE DATABASE IF NOT EXISTS {url.database}")
            self.command(f"USE {url.database}")
            # Replacing tables would otherwise de-duplicate each inserted block by sorting it,
            # which triples insert cost; the writer already drops known keys and merges collapse
            # the rest.
            self.command("SET optimize_on_insert = 0")
        except StoreError:
            # chDB holds one data directory per process: a session left open here (a missing
            # database, say) would refuse every other store this process opens later.
            self._session.close()
            raise

    @property
    def journals(self) -> tuple[JournalLog, ...]:
        # New entries go to files beside the data; the table may still hold entries a crash
        # left before the store kept them there, and those are older.
        assert self._url.path is not None
        self._check_directory()  # the log would otherwise recreate a removed store's directory
        return TableLog(self), FileLog(self._url.path / JOURNAL / self.database)

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._run(sql, "CSV", params)

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        return self._run(sql, "ArrowTable", params)

    def query_bytes(self, sql: str, fmt: str, params: dict[str, Any] | None = None) -> bytes:
        result = self._run(sql, fmt, params)
        return bytes(result.bytes()) if result is not None else b""

    def read_only(self) -> None:
        # A session setting: it holds for every later query of this session and, once set,
        # ClickHouse refuses to change it back.
        self.command("SET readonly = 1")

    def insert_arrow(self, table: str, data: pa.Table, *, token: str | None = None) -> None:
        if data.num_rows == 0:
            return
        columns = ", ".join(f"`{name}`" for name in data.column_names)
        settings = (
            ""
            if token is None
            else " SETTINGS "
            + ", ".join(
                f"{name} = {value}" if value.isdigit() else f"{name} = '{value}'"
                for name, value in dedup_settings(token).items()
            )
        )
        data = declared_non_null(data)
        # chDB's Python() table function reads the Arrow table from this frame's locals.
        self._run(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM Python(data){settings}", "CSV"
        )

    def existing_keys(self, table: str, column: str, keys: pa.Array) -> pa.Array:
        if not len(keys):
            return pa.array([], pa.string())
        # Read by name from this frame by chDB's Python() table function.
        probe = pa.table({"k": keys})  # noqa: F841
        found = self._run(
            f"SELECT DISTINCT {column} FROM {table} "
            f"WHERE {column} IN (SELECT k FROM Python(probe))",
            "ArrowTable",
        )
        return found.column(0).combine_chunks().cast(pa.string())

    def key_hashes(self, keys: pa.Array) -> pa.Array:
        if not len(keys):
            return pa.array([], pa.uint64())
        # Read by chDB's Python() from this frame; the row number keeps the keys' order.
        probe = pa.table({"k": keys, "n": np.arange(len(keys))})  # noqa: F841
        found = self._run(f"SELECT {KEY_HASH}(k) AS h FROM Python(probe) ORDER BY n", "ArrowTable")
        return found.column(0).combine_chunks()

    def stored_values(self, table: str, key: str, column: str, keys: pa.Array) -> pa.Table:
        probe = pa.table({"k": keys})  # noqa: F841 - read by chDB's Python() from this frame
        return self._run(
            f"SELECT {key}, any({column}) AS {column} FROM {table} "
            f"WHERE {key} IN (SELECT k FROM Python(probe)) GROUP BY {key}",
            "ArrowTable",
        )

    def close(self) -> None:
        self._session.close()

    def _check_directory(self) -> None:
        assert self._url.path is not None
        if _inode(self._url.path) != self._inode:
            raise StoreError(
                f"the embedded store's directory {self._url.path} was removed or replaced"
            )

    def _run(self, sql: str, fmt: str, params: dict[str, Any] | None = None) -> Any:
        self._check_directory()
        try:
            if params:
                return self._session.query(sql, fmt, params=params)
            return self._session.query(sql, fmt)
        except Exception as exc:  # chDB raises ChdbError/RuntimeError with ClickHouse's message
            raise StoreError(_first_line(exc)) from exc


def declared_non_null(data: pa.Table) -> pa.Table:
    """The same table, with every column (and list item) that holds no null declared so.

    chDB's Python() table function reads a nullable Arrow field as ``Nullable(T)``, and an
    insert then converts each such column to its target's type; Arrow declares every field
    nullable unless told. Declared, 1,300 scores went into a table of the Null engine in 13 ms
    instead of 24. A column with a null keeps its flag and is converted as before (a
    non-Nullable target takes its default)."""
    fields, columns = [], []
    for field, column in zip(data.schema, data.columns, strict=True):
        if not column.null_count:
            kind = field.type
            # .values spans every chunk's whole child, so this may keep a flag, never drop one
            if pa.types.is_list(kind) and not any(c.values.null_count for c in column.chunks):
                kind = pa.list_(kind.value_field.with_nullable(False))
                column = column.cast(kind)
            field = pa.field(field.name, kind, nullable=False, metadata=field.metadata)
        fields.append(field)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=data.schema.metadata))


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
