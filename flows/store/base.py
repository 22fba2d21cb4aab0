"""The store interface every backend implements, and its errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from flows.errors import RiskctlError

if TYPE_CHECKING:  # the settings import the store's URL, and the CLI's help must not load Arrow
    import pyarrow as pa


# The one hash of a key, computed by ClickHouse both for what a table holds and for the keys a
# writer is about to insert (``Store.key_hashes``): two implementations could disagree.
KEY_HASH = "cityHash64"


class StoreError(RiskctlError):
    """A statement failed in ClickHouse (bad SQL, missing table ...); retrying will not help."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or is locked; the same call may succeed later."""


def dedup_settings(token: str) -> dict[str, str]:
    """Insert settings that make ``token`` identify the insert, for the table and its views."""
    if not token.replace(":", "").replace("_", "").isalnum():
        raise StoreError(f"insert token {token!r} must be letters, digits, ':' and '_'")
    return {
        "insert_deduplicate": "1",
        "insert_deduplication_token": token,
        "deduplicate_blocks_in_dependent_materialized_views": "1",
    }


class JournalLog(Protocol):
    """Where a store keeps the sink's journal entries (:mod:`flows.store.journal_logs`)."""

    def record(self, token: str, tables: Mapping[str, pa.Table]) -> None:
        """Keep every table of the entry, in one step: afterwards all are kept, or none."""
        ...

    def entries(self) -> list[tuple[str, dict[str, pa.Table]]]:
        """Every entry kept and not dropped, oldest first: its token and tables."""
        ...

    def drop(self, token: str) -> None:
        """Forget the entry (nothing happens if it is not kept)."""
        ...


class Store(Protocol):
    """A ClickHouse database: the embedded chDB engine or a server over HTTP."""

    @property
    def description(self) -> str:
        """Where this store is, with any password redacted."""
        ...

    @property
    def database(self) -> str: ...

    @property
    def exclusive(self) -> bool:
        """Whether no other process can write the store while this one has it open."""
        ...

    @property
    def journals(self) -> tuple[JournalLog, ...]:
        """Where the sink's journal entries may be kept, in the order left entries are
        completed; new entries go to the last (:mod:`flows.store.journal`)."""
        ...

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        """Run a statement that returns nothing."""
        ...

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run a query and return its result as an Arrow table."""
        ...

    def query_bytes(self, sql: str, fmt: str, params: dict[str, Any] | None = None) -> bytes:
        """Run a statement and return its output in ClickHouse's output format ``fmt``."""
        ...

    def read_only(self) -> None:
        """Refuse every later write, DDL or file access on this connection (``readonly=1``)."""
        ...

    def insert_arrow(self, table: str, data: pa.Table, *, token: str | None = None) -> None:
        """Insert an Arrow table whose column names match the target table's.

        With ``token``, a second insert under the same token is skipped by the table and by
        each materialized view fed from it, separately (see :mod:`flows.store.journal`).
        """
        ...

    def existing_keys(self, table: str, column: str, keys: pa.Array) -> pa.Array:
        """The distinct ``keys`` (strings) already present in ``table.column``."""
        ...

    def key_hashes(self, keys: pa.Array) -> pa.Array:
        """``KEY_HASH`` of each of ``keys`` (strings), as UInt64 in the same order."""
        ...

    def stored_values(self, table: str, key: str, column: str, keys: pa.Array) -> pa.Table:
        """``key`` and any one stored ``column`` value for each of ``keys`` in ``table``."""
        ...

    def close(self) -> None: ...
