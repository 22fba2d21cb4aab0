"""The embedded store's inserts declare the columns that hold no null as such (cheaper for
chDB's Python() table function), and store exactly what an insert without that declaration
stores, nulls included, on a real chDB store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.store import Store, StoreURL, open_store
from flows.store.embedded import declared_non_null

COLUMNS = {
    "s": ("String", pa.string(), st.text(max_size=5)),
    "ns": ("Nullable(String)", pa.string(), st.text(max_size=5)),
    "f": ("Float64", pa.float64(), st.floats(allow_nan=False)),
    "nf": ("Nullable(Float64)", pa.float64(), st.floats(allow_nan=False)),
    "l": ("Array(String)", pa.list_(pa.string()), st.lists(st.text(max_size=3), max_size=3)),
    "nl": (
        "Array(Nullable(String))",
        pa.list_(pa.string()),
        st.lists(st.none() | st.text(max_size=3), max_size=3),
    ),
}
ORDER = ", ".join(COLUMNS)


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[Store]:
    db = open_store(StoreURL.embedded_at(tmp_path / "store"))
    try:
        for table in ("declared", "as_given"):
            schema = ", ".join(f"{name} {kind}" for name, (kind, _, _) in COLUMNS.items())
            db.command(f"CREATE TABLE {table} (i UInt32, {schema}) ENGINE = MergeTree ORDER BY i")
        yield db
    finally:
        db.close()


def column(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | values


rows = st.lists(
    st.fixed_dictionaries({name: column(values) for name, (_, _, values) in COLUMNS.items()}),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=rows)
def test_an_insert_stores_what_it_stored_without_the_declaration(
    bare: Store, rows: list[dict[str, Any]]
) -> None:
    data = pa.table(
        {
            "i": pa.array(range(len(rows)), pa.uint32()),
            **{n: pa.array([r[n] for r in rows], t) for n, (_, t, _) in COLUMNS.items()},
        }
    )
    for table in ("declared", "as_given"):
        bare.command(f"TRUNCATE TABLE {table}")
    bare.insert_arrow("declared", data)
    as_given = data  # noqa: F841 - read by chDB's Python() table function
    bare.command("INSERT INTO as_given SELECT * FROM Python(as_given)")
    found = {
        table: bare.query_arrow(f"SELECT {ORDER} FROM {table} ORDER BY i").to_pylist()
        for table in ("declared", "as_given")
    }
    assert found["declared"] == found["as_given"]
    assert len(found["declared"]) == len(rows)


def test_only_columns_and_items_without_a_null_are_declared() -> None:
    data = pa.table(
        {
            "full": pa.array(["a", "b"]),
            "gap": pa.array(["a", None]),
            "items": pa.array([["a"], []], pa.list_(pa.string())),
            "item_gap": pa.array([["a", None], []], pa.list_(pa.string())),
            "list_gap": pa.array([["a"], None], pa.list_(pa.string())),
        }
    )
    declared = declared_non_null(data)
    nullable = {f.name: f.nullable for f in declared.schema}
    assert nullable == {
        "full": False,
        "gap": True,
        "items": False,
        "item_gap": False,
        "list_gap": True,
    }
    assert not declared.schema.field("items").type.value_field.nullable
    assert declared.schema.field("item_gap").type.value_field.nullable
    assert declared.to_pylist() == data.to_pylist()
