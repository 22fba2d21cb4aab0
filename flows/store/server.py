"""A ClickHouse server over HTTP(S) through clickhouse-connect: Arrow inserts, LZ4 compression,
bounded timeouts. Connection failures surface as :class:`StoreUnavailable` so callers can retry.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import clickhouse_connect
import pyarrow as pa
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from flows.store.base import (
    KEY_HASH,
    JournalLog,
    StoreError,
    StoreUnavailable,
    dedup_settings,
)
from flows.store.journal_logs import TableLog
from flows.store.url import StoreURL, URLNamed

# clickhouse-connect logs each failed request before raising it; the caller reports the raised
# error, so without logging configured by the application the log line is only a duplicate.
logging.getLogger("clickhouse_connect").addHandler(logging.NullHandler())


class ServerStore(URLNamed):
    def __init__(
        self,
        url: StoreURL,
        *,
        create_database: bool = True,
        connect_timeout: float = 5.0,
        send_receive_timeout: float = 60.0,
    ) -> None:
        self._url = url

        def client(database: str | None = None) -> Any:
            return clickhouse_connect.get_client(
                host=url.host,
                port=url.port,
                username=url.username,
                password=url.password.reveal(),
                secure=url.scheme == "https",
                connect_timeout=connect_timeout,
                send_receive_timeout=send_receive_timeout,
                compress="lz4",
                database=database,
            )

        try:
            admin = client()
            # Ask first: the writer and analyst users may not run CREATE DATABASE at all, even
            # with IF NOT EXISTS, since ClickHouse checks the grant before existence.
            if create_database and not admin.command(f"EXISTS DATABASE {url.database}"):
                admin.command(f"CREATE DATABASE IF NOT EXISTS {url.database}")
            admin.close()
            self._client = client(database=url.database)
            # A read-only user (the analyst) may change no settings and writes nothing, so the
            # insert setting is asked for only where the server lets this user change it.
            if _changeable(self._client, "optimize_on_insert"):
                self._client.set_client_setting("optimize_on_insert", 0)
        except OperationalError as exc:
            raise StoreUnavailable(f"cannot reach {url.redacted()}: {_reason(exc)}") from exc
        except (DatabaseError, ProgrammingError) as exc:
            raise StoreError(f"{url.redacted()}: {exc}") from exc

    @property
    def journals(self) -> tuple[JournalLog, ...]:
        # Writers on other machines complete each other's entries: they live in the store.
        return (TableLog(self),)

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._call(self._client.command, sql, parameters=params)

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        return self._call(self._client.query_arrow, sql, parameters=params)

    def query_bytes(self, sql: str, fmt: str, params: dict[str, Any] | None = None) -> bytes:
        return bytes(self._call(self._client.raw_query, sql, parameters=params, fmt=fmt))

    def read_only(self) -> None:
        # Sent with every request of this client; a user whose profile is already read-only
        # cannot change the setting, and needs no change.
        setting = self._client.server_settings.get("readonly")
        if setting is not None and not setting.readonly:
            self._client.set_client_setting("readonly", 1)
        elif setting is None or setting.value == "0":
            raise StoreError(f"{self._url.redacted()}: cannot make the connection read-only")

    def insert_arrow(self, table: str, data: pa.Table, *, token: str | None = None) -> None:
        if not data.num_rows:
            return
        if token is None:
            self._call(self._client.insert_arrow, table, data)
            return
        self._call(self._client.insert_arrow, table, data, settings=dedup_settings(token))

    def existing_keys(self, table: str, column: str, keys: pa.Array) -> pa.Array:
        if not len(keys):
            return pa.array([], pa.string())
        found = self.query_arrow(
            f"SELECT DISTINCT {column} FROM {table} WHERE {column} IN {{keys:Array(String)}}",
            {"keys": keys.to_pylist()},
        )
        return found.column(0).combine_chunks().cast(pa.string())

    def key_hashes(self, keys: pa.Array) -> pa.Array:
        if not len(keys):
            return pa.array([], pa.uint64())
        # One array in, one array out: its order is the keys' by definition.
        found = self.query_arrow(
            f"SELECT arrayMap(k -> {KEY_HASH}(k), {{keys:Array(String)}}) AS h",
            {"keys": keys.to_pylist()},
        )
        return found.column(0).combine_chunks().flatten().cast(pa.uint64())

    def stored_values(self, table: str, key: str, column: str, keys: pa.Array) -> pa.Table:
        return self.query_arrow(
            f"SELECT {key}, any({column}) AS {column} FROM {table} "
            f"WHERE {key} IN {{keys:Array(String)}} GROUP BY {key}",
            {"keys": keys.to_pylist()},
        )

    def close(self) -> None:
        self._client.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            raise StoreUnavailable(f"{self._url.redacted()}: {_reason(exc)}") from exc
        except (DatabaseError, ProgrammingError) as exc:
            raise StoreError(str(exc).strip().splitlines()[0]) from exc


def _reason(exc: Exception) -> str:
    """The operating system's reason inside urllib3's nested wrapping, else the first line."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return found.group(1).strip() if found else text.strip().splitlines()[0][:300]


def _changeable(client: Any, name: str) -> bool:
    setting = client.server_settings.get(name)
    return setting is not None and not setting.readonly
