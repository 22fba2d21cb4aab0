"""A write cut short anywhere (between tables, or inside one table's insert with its views only
partly fed) is completed by the next writer, never skipped: every table and every view then
equals a store that took the same rows once without a failure. Real chDB stores throughout,
with the journal in each kind of log: the files an embedded store keeps it in, and the
``sink_journal`` table a server keeps it in.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest

from flows.batches import ApplicationBatch, RawBatch
from flows.model import ScoringModel
from flows.scoring import BatchScorer
from flows.settings import Settings
from flows.store import Store, StoreError, StoreURL, open_store
from flows.store.base import JournalLog
from flows.store.journal import Entry, record
from flows.store.journal_logs import TableLog
from flows.store.migrations import MIGRATIONS_DIR, migrate
from flows.writer import TARGETS, IdempotentWriter, RunStats
from tests.conftest import query_rows
from tests.store_compare import assert_same, fingerprint, journal_entries

# A write's changes: journal, stored_keys, raw_events, dead_letters, scored_events, the drop.
# A writer alone on an exclusive store exchanges no keys: no stored_keys insert.
CHANGES = {False: 6, True: 5}
CRASH_POINTS = [(alone, at) for alone, count in CHANGES.items() for at in range(count)]


class SimulatedCrash(BaseException):
    """The process dying: not an error any code path may catch and handle."""


class TableJournalStore:
    """The real embedded store keeping its journal where a server keeps it, in sink_journal."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @property
    def journals(self) -> tuple[JournalLog, ...]:
        return (TableLog(self._store),)


JOURNALS: dict[str, Callable[[Store], Store]] = {
    "files": lambda store: store,
    "table": lambda store: cast(Store, TableJournalStore(store)),
}


class CrashingLog:
    """A real journal log whose record and drop are changes of the crashing store."""

    def __init__(self, log: JournalLog, step: Callable[[], None]) -> None:
        self._log = log
        self._step = step

    def record(self, token: str, tables: Mapping[str, pa.Table]) -> None:
        self._step()
        self._log.record(token, tables)

    def entries(self) -> list[tuple[str, dict[str, pa.Table]]]:
        return self._log.entries()

    def drop(self, token: str) -> None:
        self._step()
        self._log.drop(token)


class CrashingStore:
    """A real store that dies before its ``crash_at``-th change (insert or command)."""

    def __init__(self, store: Store, crash_at: int) -> None:
        self._store = store
        self._left = crash_at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _step(self) -> None:
        if self._left == 0:
            raise SimulatedCrash
        self._left -= 1

    def insert_arrow(self, table: str, data: pa.Table, *, token: str | None = None) -> None:
        self._step()
        self._store.insert_arrow(table, data, token=token)

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._step()
        self._store.command(sql, params)

    @property
    def journals(self) -> tuple[JournalLog, ...]:
        return tuple(CrashingLog(log, self._step) for log in self._store.journals)


@pytest.fixture
def batch(
    settings: Settings, model: ScoringModel, events_file: Callable[..., Path]
) -> ApplicationBatch:
    lines = events_file(300, corrupt=0.1).read_bytes().splitlines()
    scored = BatchScorer(model, settings)(RawBatch([f"t:{i}" for i in range(len(lines))], lines))
    assert scored.raw.num_rows and scored.dead.num_rows and scored.scored.num_rows
    return scored


def migrated(url: StoreURL) -> StoreURL:
    db = open_store(url)
    try:
        migrate(db)
    finally:
        db.close()
    return url


def write_once(
    url: StoreURL,
    batch: ApplicationBatch,
    wrap: Callable[[Store], Store] = lambda s: s,
    *,
    alone: bool = False,
) -> None:
    writer = IdempotentWriter(lambda: wrap(open_store(url)), RunStats(), alone=alone)
    try:
        writer.write([batch])
    finally:
        writer.close()


@pytest.fixture
def reference(tmp_path: Path, batch: ApplicationBatch) -> dict[str, dict[str, Any]]:
    url = migrated(StoreURL.embedded_at(tmp_path / "reference"))
    write_once(url, batch)
    found = fingerprint(url)
    assert found["risk_segment_minute"]["sum_loans"] == batch.scored.num_rows
    assert found["dead_letters_minute"]["sum_dead_letters"] == batch.dead.num_rows
    return found


@pytest.mark.parametrize("journal", JOURNALS)
@pytest.mark.parametrize(("alone", "crash_at"), CRASH_POINTS)
def test_a_crash_between_the_writes_of_a_batch_is_completed_by_the_rerun(
    tmp_path: Path,
    batch: ApplicationBatch,
    reference: dict[str, dict[str, Any]],
    alone: bool,
    crash_at: int,
    journal: str,
) -> None:
    url = migrated(StoreURL.embedded_at(tmp_path / "crashed"))
    kind = JOURNALS[journal]
    with pytest.raises(SimulatedCrash):
        write_once(url, batch, lambda store: CrashingStore(kind(store), crash_at), alone=alone)
    write_once(url, batch, kind, alone=alone)  # the rerun reads the same events again
    assert_same(fingerprint(url), reference)
    assert journal_entries(url) == 0


@pytest.mark.parametrize("journal", JOURNALS)
@pytest.mark.parametrize("alone", CHANGES)
def test_every_crash_point_is_tried(
    tmp_path: Path, batch: ApplicationBatch, alone: bool, journal: str
) -> None:
    """The crash points above are every change a write makes: one more finds no crash."""
    kind = JOURNALS[journal]
    url = migrated(StoreURL.embedded_at(tmp_path / "whole"))
    write_once(url, batch, lambda store: CrashingStore(kind(store), CHANGES[alone]), alone=alone)
    with pytest.raises(SimulatedCrash):
        other = migrated(StoreURL.embedded_at(tmp_path / "short"))
        write_once(
            other,
            batch,
            lambda store: CrashingStore(kind(store), CHANGES[alone] - 1),
            alone=alone,
        )


def test_an_entry_left_in_the_table_is_completed_by_a_store_that_keeps_files(
    tmp_path: Path, batch: ApplicationBatch, reference: dict[str, dict[str, Any]]
) -> None:
    """An embedded store kept its journal in sink_journal before it kept files: an entry a
    crash left there is still completed, before anything newer."""
    url = migrated(StoreURL.embedded_at(tmp_path / "crashed"))
    table = JOURNALS["table"]
    with pytest.raises(SimulatedCrash):
        write_once(url, batch, lambda store: CrashingStore(table(store), 2), alone=True)
    assert journal_entries(url) == 1
    write_once(url, batch, alone=True)
    assert_same(fingerprint(url), reference)
    assert journal_entries(url) == 0


def test_a_file_cut_short_is_no_entry(tmp_path: Path, batch: ApplicationBatch) -> None:
    """A crash while the entry's file is written leaves a partial file that is never read: the
    write was never recorded, and the rerun writes it whole. The next process to read the
    entries removes it; its own partial files, of records in flight, it leaves."""
    url = migrated(StoreURL.embedded_at(tmp_path / "store"))
    store = open_store(url)
    try:
        log = store.journals[-1]
        log.record("0" * 32, {"raw_events": batch.raw})
        (found,) = log.entries()
        assert found[0] == "0" * 32 and found[1]["raw_events"].equals(batch.raw)
        directory = tmp_path / "store" / "sink_journal" / store.database
        (kept,) = directory.glob("*.arrow")
        dead, alive = f"{'1' * 32}.{os.getpid() + 1}.partial", f"{'2' * 32}.{os.getpid()}.partial"
        shutil.copy(kept, directory / dead)
        kept.rename(directory / alive)
        assert log.entries() == []
        assert [p.name for p in directory.iterdir()] == [alive]
        log.drop("2" * 32)
        assert list(directory.iterdir()) == []
    finally:
        store.close()


def test_entries_are_completed_oldest_first(tmp_path: Path, batch: ApplicationBatch) -> None:
    url = migrated(StoreURL.embedded_at(tmp_path / "store"))
    store = open_store(url)
    try:
        entries = [Entry.new({"raw_events": batch.raw.slice(i, 1)}) for i in range(12)]
        for entry in entries:
            record(store, entry)
        assert [token for token, _ in store.journals[-1].entries()] == [e.token for e in entries]
    finally:
        store.close()


@pytest.mark.parametrize("journal", JOURNALS)
@pytest.mark.parametrize("table", ["raw_events", "dead_letters", "scored_events"])
def test_an_insert_whose_views_were_only_partly_fed_is_completed_by_the_rerun(
    tmp_path: Path,
    batch: ApplicationBatch,
    reference: dict[str, dict[str, Any]],
    table: str,
    journal: str,
) -> None:
    """A view that fails mid-insert leaves the table's part committed while some views have
    theirs and others not: what a kill -9 inside one INSERT leaves behind."""
    url = migrated(StoreURL.embedded_at(tmp_path / "crashed"))
    db = open_store(url)
    try:
        db.command("CREATE TABLE boom (x UInt8) ENGINE = MergeTree ORDER BY x")
        db.command(
            f"CREATE MATERIALIZED VIEW boom_mv TO boom AS SELECT throwIf(1) AS x FROM {table}"
        )
    finally:
        db.close()
    kind = JOURNALS[journal]
    with pytest.raises(StoreError):
        write_once(url, batch, kind)
    partial = fingerprint(url)
    assert partial != reference  # the failure left views short
    db = open_store(url)
    try:
        db.command("DROP TABLE boom_mv")
        db.command("DROP TABLE boom")
    finally:
        db.close()
    write_once(url, batch, kind)
    assert_same(fingerprint(url), reference)
    assert journal_entries(url) == 0
    write_once(url, batch, kind)  # and once complete, another rerun adds nothing
    assert_same(fingerprint(url), reference)


def test_every_view_target_and_written_table_keeps_insert_tokens(tmp_path: Path) -> None:
    """A view target without the deduplication window would count a replayed block twice."""
    url = migrated(StoreURL.embedded_at(tmp_path / "store"))
    tables = query_rows(
        url,
        "SELECT name, engine, create_table_query AS q FROM system.tables"
        " WHERE database = currentDatabase()",
    )
    targets = {table for table, _key in TARGETS}  # every table the writer inserts into
    for view in (t for t in tables if t["engine"] == "MaterializedView"):
        found = re.search(r"\bTO\s+[`\w]+\.`?(\w+)`?", view["q"])
        assert found, view["name"]
        targets.add(found.group(1))
    settings = {t["name"]: t["q"] for t in tables}
    assert len(targets) > 4
    for name in sorted(targets):
        assert "non_replicated_deduplication_window = 1000" in settings[name], name


def test_a_write_makes_one_part_in_each_table_it_feeds_and_no_more(
    tmp_path: Path, batch: ApplicationBatch
) -> None:
    """A part is a directory of about ten files whatever its rows, and a steady stream's
    latency is mostly the parts its writes make: one in each written table and in each target
    of their materialized views. A new view on a written table has to be added here, on
    purpose; coarser aggregates are plain views over risk_segment_minute instead."""
    url = migrated(StoreURL.embedded_at(tmp_path / "store"))
    write_once(url, batch, alone=True)
    parts = query_rows(
        url,
        "SELECT table, count() AS parts FROM system.parts WHERE database = currentDatabase()"
        " AND active AND table != 'schema_migrations' GROUP BY table ORDER BY table",
    )
    assert {row["table"]: row["parts"] for row in parts} == {
        "raw_events": 1,
        "dead_letters": 1,
        "dead_letters_minute": 1,
        "scored_events": 1,
        "loan_latest_score": 1,
        "risk_segment_minute": 1,
    }


def test_a_write_left_in_the_journal_is_completed_before_a_migration_rebuilds_an_aggregate(
    tmp_path: Path, batch: ApplicationBatch, reference: dict[str, dict[str, Any]]
) -> None:
    """Migration 0350 rebuilds risk_segment_minute from scored_events. A write that crashed
    after its scores but before its journal entry was dropped would be counted by that rebuild
    and again by the replay that feeds the new table's view: migrating completes the journal
    first, on the schema the entry was written for."""
    before = tmp_path / "migrations_before_0350"
    before.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if int(path.name[:4]) < 350:
            shutil.copy(path, before / path.name)
    url = StoreURL.embedded_at(tmp_path / "store")
    db = open_store(url)
    try:
        migrate(db, before)
    finally:
        db.close()
    crash_before_the_drop = CHANGES[True] - 1
    with pytest.raises(SimulatedCrash):
        write_once(
            url, batch, lambda store: CrashingStore(store, crash_before_the_drop), alone=True
        )
    assert journal_entries(url) > 0
    migrated(url)
    write_once(url, batch, alone=True)
    assert_same(fingerprint(url), reference)
