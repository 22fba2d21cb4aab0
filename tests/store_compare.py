"""Comparing whole stores: every table's rows and numeric sums (materialized views' targets
included), for tests and the chaos run that check a disturbed run against an undisturbed one.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from flows.seen_keys import STORED_KEYS
from flows.store import StoreURL, open_store
from flows.store.journal import JOURNAL
from tests.conftest import query_rows

# Tables whose rows differ between equal runs by nature (write times, ledgers, the random ids
# of writers in stored_keys) or stay empty.
NOT_COMPARED = {
    "schema_migrations",
    JOURNAL,
    STORED_KEYS,
    "ops_batches",
    "ops_consumer_lag",
    "drift_psi",
}


def fingerprint(url: StoreURL) -> dict[str, dict[str, Any]]:
    """Every table's row count and the sum of each numeric column (views' targets included)."""
    db = open_store(url)
    try:
        columns = db.query_arrow(
            "SELECT c.table AS t, c.name AS name, c.type AS type, s.engine AS engine"
            " FROM system.columns AS c"
            " INNER JOIN system.tables AS s ON s.database = c.database AND s.name = c.table"
            " WHERE c.database = currentDatabase() AND s.engine LIKE '%MergeTree'"
            " ORDER BY t, c.position"
        ).to_pylist()
        tables: dict[str, list[str]] = {}
        # An aggregating table's row count depends on how its inserts fell into parts: only
        # its sums are the same for equal contents.
        aggregating = {c["t"] for c in columns if c["engine"] == "AggregatingMergeTree"}
        replacing = {c["t"] for c in columns if c["engine"] == "ReplacingMergeTree"}
        for col in columns:
            if col["t"] in NOT_COMPARED:
                continue
            numeric = re.search(r"(U?Int\d+|Float\d+)", col["type"]) is not None
            aggregate_state = col["type"].startswith("AggregateFunction")
            names = tables.setdefault(col["t"], [])
            if numeric and not aggregate_state:
                names.append(col["name"])
        result = {}
        for table, names in tables.items():
            # NaN marks a missing optional feature: counted apart, so sums stay comparable
            sums = "".join(
                f", sum(if(isFinite(`{n}`), `{n}`, 0)) AS `sum_{n}`"
                f", countIf(isNaN(`{n}`)) AS `nan_{n}`"
                for n in names
            )
            rows = "0" if table in aggregating else "count()"
            # Replacing tables read FINAL: when background merges collapse replaced rows is up
            # to ClickHouse (duplicate keys are checked apart, by duplicate_keys()).
            final = " FINAL" if table in replacing else ""
            [row] = db.query_arrow(f"SELECT {rows} AS rows{sums} FROM {table}{final}").to_pylist()
            result[table] = row
        return result
    finally:
        db.close()


def same_sums(found: dict[str, Any] | None, want: dict[str, Any], rel: float = 1e-9) -> bool:
    """One table's fingerprint equal to another's, up to float summation order."""
    return found is not None and found == pytest.approx(want, rel=rel)


def assert_same(found: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    assert found.keys() == want.keys()
    for table, row in want.items():
        assert found[table] == pytest.approx(row, rel=1e-12), table


def journal_entries(url: StoreURL) -> int:
    """Entries left in every log the store keeps its journal in."""
    store = open_store(url)
    try:
        return sum(len(log.entries()) for log in store.journals)
    finally:
        store.close()


KEYS = {
    "raw_events": "event_id",
    "scored_events": "event_id",
    "repayment_scores": "event_id",
    "dead_letters": "dead_letter_id",
}


def duplicate_keys(url: StoreURL) -> dict[str, int]:
    """Rows beyond one per key in each table the writer fills (0 everywhere when exact)."""
    sql = " UNION ALL ".join(
        f"SELECT '{table}' AS t, count() - uniqExact({key}) AS extra FROM {table}"
        for table, key in KEYS.items()
    )
    return {row["t"]: row["extra"] for row in query_rows(url, sql)}
