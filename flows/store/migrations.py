"""Numbered SQL migrations (``clickhouse/NNNN_name.sql``), applied in order and recorded.

Applying is idempotent: recorded files are skipped, and a recorded file whose text changed since
is an error rather than a silent divergence between environments.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from flows.batches import TS_MS
from flows.clock import utc_now
from flows.resources import package_dir
from flows.store import journal
from flows.store.base import Store, StoreError

MIGRATIONS_DIR = package_dir("flows.sql")
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def statements(self) -> list[str]:
        """The file's statements; ``;`` at the end of a line ends a statement."""
        lines = [line for line in self.sql.splitlines() if not line.lstrip().startswith("--")]
        parts = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
        return [part.strip() for part in parts if part.strip()]


_CREATED = re.compile(
    r"^\s*CREATE\s+(?:TABLE|(?:MATERIALIZED\s+)?VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?`?(\w+)`?",
    re.IGNORECASE,
)
_DROPPED = re.compile(r"^\s*DROP\s+(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?`?(\w+)`?", re.IGNORECASE)


def expected_objects(migrations: list[Migration]) -> set[str]:
    """Tables and views that ``migrations``, applied in order, leave in the database."""
    objects: set[str] = set()
    for migration in migrations:
        for statement in migration.statements():
            if created := _CREATED.match(statement):
                objects.add(created.group(1))
            elif dropped := _DROPPED.match(statement):
                objects.discard(dropped.group(1))
    return objects


def missing_objects(store: Store, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Tables and views the applied migrations created that the database no longer has."""
    done = applied(store)
    expected = expected_objects([m for m in discover(directory) if m.version in done])
    present = store.query_arrow(
        "SELECT name FROM system.tables WHERE database = currentDatabase()"
    ).column(0)
    return sorted(expected - set(present.to_pylist()))


class SchemaDamaged(StoreError):
    """Applied migrations created tables or views that are gone: not up to date, not fixable by
    migrating again (the rows they held are lost)."""


def check_objects(store: Store, directory: Path = MIGRATIONS_DIR) -> None:
    missing = missing_objects(store, directory)
    if missing:
        raise SchemaDamaged(
            f"the schema in {store.description} lacks {', '.join(missing)}, which applied "
            "migrations created; restore the store (riskctl replay --from-s3) or use a new one"
        )


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    if not directory.is_dir():
        raise StoreError(f"migrations directory not found: {directory}")
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise StoreError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two migrations share a number in {directory}")
    return found


def applied(store: Store) -> dict[int, str]:
    """Recorded versions and their checksums."""
    store.command(_LEDGER)
    table = store.query_arrow("SELECT version, checksum FROM schema_migrations ORDER BY version")
    return dict(
        zip(table.column("version").to_pylist(), table.column("checksum").to_pylist(), strict=True)
    )


def _has_table(store: Store, name: str) -> bool:
    found = store.query_arrow(
        "SELECT count() AS n FROM system.tables WHERE database = currentDatabase()"
        " AND name = {name:String}",
        {"name": name},
    )
    return bool(found.column(0)[0].as_py())


def migrate(store: Store, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply every migration not yet recorded, in order; return the ones applied now.

    A write a crash left in the sink's journal is completed first, on the schema it was
    recorded for: a migration that rebuilds an aggregate from its source table would otherwise
    count those rows, and the replay after it would count them again."""
    done = applied(store)
    found = discover(directory)
    if any(m.version not in done for m in found) and _has_table(store, journal.JOURNAL):
        journal.complete_pending(store)
    newly = []
    for migration in found:
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise StoreError(
                    f"migration {migration.path.name} changed after it was applied; add a new "
                    "numbered migration instead of editing an applied one"
                )
            continue
        for statement in migration.statements():
            try:
                store.command(statement)
            except StoreError as exc:
                raise StoreError(f"{migration.path.name}: {exc}") from exc
        store.insert_arrow(
            "schema_migrations",
            pa.table(
                {
                    "version": pa.array([migration.version], pa.uint32()),
                    "name": [migration.name],
                    "checksum": [migration.checksum],
                    "applied_at": pa.array([utc_now()], TS_MS),
                }
            ),
        )
        newly.append(migration)
    check_objects(store, directory)
    return newly
