"""An embedded store that fails to open releases chDB's data directory, so the process can open
another store afterwards (chDB serves one directory per process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.store import StoreError, StoreURL, open_store


def test_a_failed_open_leaves_the_process_free_to_open_another_store(tmp_path: Path) -> None:
    # No database yet, and not allowed to create it: USE fails after chDB has started.
    with pytest.raises(StoreError):
        open_store(StoreURL.embedded_at(tmp_path / "empty"), create_database=False)
    other = open_store(StoreURL.embedded_at(tmp_path / "other"))
    try:
        assert other.query_arrow("SELECT 1 AS x").to_pylist() == [{"x": 1}]
    finally:
        other.close()
