"""The loan book's history step hashes a batch's loan ids in Python and the stored ones in
ClickHouse: the two must agree on every id, or a loan with history would be taken as new.
The real engine (chDB) computes the stored side, on a table of the two columns it reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.errors import RiskctlError
from flows.steps.loan_history import LoanHistory, loan_hashes, stored_loans_sql
from flows.store import Store, StoreUnavailable, StoreURL, open_store

BEFORE = datetime(2030, 1, 1, tzinfo=UTC)
ids = st.lists(st.text(max_size=40), min_size=1, max_size=40)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(loan_ids=ids)
def test_python_and_clickhouse_hash_every_loan_id_alike(store: Store, loan_ids: list[str]) -> None:
    store.command("DROP TABLE IF EXISTS raw_events")
    store.command(
        "CREATE TABLE raw_events (loan_id String, received_at DateTime64(6, 'UTC')) ENGINE = Memory"
    )
    received = pa.array(
        [datetime(2024, 1, 1, tzinfo=UTC)] * len(loan_ids), pa.timestamp("us", "UTC")
    )
    store.insert_arrow("raw_events", pa.table({"loan_id": loan_ids, "received_at": received}))
    stored = store.query_arrow(stored_loans_sql(BEFORE)).column(0).to_pylist()
    assert sorted(stored) == sorted(loan_hashes(loan_ids).tolist())


def test_only_loans_stored_before_the_run_are_hashed(store: Store) -> None:
    store.command("DROP TABLE raw_events")
    store.command(
        "CREATE TABLE raw_events (loan_id String, received_at DateTime64(6, 'UTC')) ENGINE = Memory"
    )
    times = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)]
    data = pa.table(
        {"loan_id": ["LC1", "LC2"], "received_at": pa.array(times, pa.timestamp("us", "UTC"))}
    )
    store.insert_arrow("raw_events", data)
    stored = store.query_arrow(stored_loans_sql(BEFORE)).column(0).to_pylist()
    assert stored == loan_hashes(["LC1"]).tolist()


def test_the_stored_loans_are_read_while_the_flow_starts(tmp_path: Path) -> None:
    url = StoreURL.embedded_at(tmp_path / "store")
    opened: list[int] = []

    def open_() -> Store:
        opened.append(1)
        return open_store(url)

    history = LoanHistory(open_, BEFORE)
    history.close()  # waits for the read begun at construction
    assert opened == [1]


def test_a_store_that_fails_the_early_read_is_reported_by_the_first_batch_that_needs_it() -> None:
    failures: list[RiskctlError] = []

    def unavailable() -> Store:
        raise StoreUnavailable("connection refused")

    history = LoanHistory(unavailable, BEFORE, failures.append)
    try:
        with pytest.raises(StoreUnavailable):
            history.holds_any()
    finally:
        history.close()
    assert [str(f) for f in failures] == ["connection refused"]
