"""Numbered migrations: applied in order, recorded, idempotent, and guarded against edits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flows.features import FEATURE_NAMES
from flows.store import Store, StoreError, StoreURL, open_store
from flows.store.migrations import MIGRATIONS_DIR, applied, discover, migrate


def test_migrations_apply_once_and_record(tmp_path: Path) -> None:
    db = open_store(StoreURL.embedded_at(tmp_path / "store", "mig"))
    try:
        first = migrate(db)
        second = migrate(db)
        assert [m.version for m in first] == [m.version for m in discover()]
        assert second == []
        assert sorted(applied(db)) == [m.version for m in discover()]
        tables = set(db.query_arrow("SHOW TABLES").column(0).to_pylist())
        assert {"raw_events", "scored_events", "dead_letters", "watchlist"} <= tables
    finally:
        db.close()


def test_migrations_survive_reopening_the_store(tmp_path: Path) -> None:
    url = StoreURL.embedded_at(tmp_path / "store")
    for expected_new in (len(discover()), 0):
        db = open_store(url)
        try:
            assert len(migrate(db)) == expected_new
        finally:
            db.close()


def test_an_edited_applied_migration_is_refused(tmp_path: Path, store: Store) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    first = sorted(copy.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(StoreError, match="changed after it was applied"):
        migrate(store, copy)


def test_badly_named_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "create.sql").write_text("SELECT 1;")
    with pytest.raises(StoreError, match=r"NNNN_name\.sql"):
        discover(tmp_path)


def test_scored_table_has_a_column_for_every_feature(store: Store) -> None:
    columns = (
        store.query_arrow(
            "SELECT name FROM system.columns WHERE database = currentDatabase()"
            " AND table = 'scored_events'"
        )
        .column(0)
        .to_pylist()
    )
    assert set(FEATURE_NAMES) <= set(columns)
    named = {"event_time", "processed_at", "model_version", "pd_lifetime", "pd_12m", "band"}
    assert named | {"reason_codes"} <= set(columns)


def test_a_large_batch_is_written_as_one_compact_part(store: Store) -> None:
    """ClickHouse's default would write this 20 MB insert as a wide part (two files a column)."""
    n = 20_000
    ids = pa.array([f"e{i}" for i in range(n)])
    moment = pa.array(np.full(n, 1_700_000_000_000, dtype=np.int64), pa.timestamp("ms", "UTC"))
    store.insert_arrow(
        "raw_events",
        pa.table(
            {
                "event_id": ids,
                "loan_id": ids,
                "event_type": pa.array(["loan_application"] * n),
                "event_time": moment,
                "received_at": moment.cast(pa.timestamp("us", "UTC")),
                "origin": ids,
                "payload": pa.array(["x" * 1000] * n),
            }
        ),
    )
    parts = store.query_arrow(
        "SELECT part_type, rows FROM system.parts WHERE database = currentDatabase()"
        " AND table = 'raw_events' AND active"
    ).to_pylist()
    assert parts == [{"part_type": "Compact", "rows": n}]


def test_no_stored_table_keeps_an_array_of_low_cardinality(store: Store) -> None:
    """Such a column builds a dictionary per part on every insert and rebuilds it on every
    merge: it made writing scores with their views half as slow again."""
    tables = store.query_arrow(
        "SELECT name FROM system.tables WHERE database = currentDatabase()"
        " AND engine LIKE '%MergeTree'"
    )
    checked = set(tables.column(0).to_pylist())
    assert {"scored_events", "loan_latest_score", "repayment_scores", "decisions"} <= checked
    columns = store.query_arrow(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase()"
    ).to_pylist()
    arrays = [c for c in columns if c["table"] in checked and c["type"].startswith("Array(")]
    assert {(c["table"], c["name"]) for c in arrays} >= {
        ("scored_events", "reason_codes"),
        ("decisions", "rules_fired"),
    }
    assert [c for c in arrays if "LowCardinality" in c["type"]] == []
