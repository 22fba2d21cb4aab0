"""Panels run against a store, as Grafana would run them, and their results checked against
what the panel type can draw."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from flows.batches import TS_S
from flows.dashboards.macros import expand
from flows.dashboards.model import Dashboard, Panel, Selection, Variable
from flows.store import Store, StoreError
from flows.times import Window


def variable_options(store: Store, variable: Variable) -> list[str]:
    """The values Grafana would offer for a query variable (its query's first column)."""
    table = store.query_arrow(variable.query)
    if table.num_columns == 0:
        return []
    return [str(v) for v in table.column(0).to_pylist() if v is not None]


@dataclass(frozen=True)
class PanelResult:
    panel: Panel
    sql: tuple[str, ...]
    tables: tuple[pa.Table, ...] = ()
    error: str | None = None


def dashboard_options(store: Store, dashboard: Dashboard) -> dict[str, list[str]]:
    return {v.name: variable_options(store, v) for v in dashboard.variables}


def run_panel(
    store: Store,
    dashboard: Dashboard,
    panel: Panel,
    time_range: Window,
    selections: Mapping[str, Selection] | None = None,
    options: Mapping[str, list[str]] | None = None,
) -> PanelResult:
    """Expand and run every query of a panel; a failing query becomes the result's error."""
    by_name = {v.name: v for v in dashboard.variables}
    sqls = tuple(
        expand(t.raw_sql, time_range, variables=by_name, selections=selections, options=options)
        for t in panel.targets
    )
    try:
        tables = tuple(_with_times(store, sql, store.query_arrow(sql)) for sql in sqls)
    except StoreError as exc:
        return PanelResult(panel, sqls, error=str(exc))
    return PanelResult(panel, sqls, tables)


def _with_times(store: Store, sql: str, table: pa.Table) -> pa.Table:
    """ClickHouse sends DateTime columns to Arrow as plain UInt32 seconds; make them timestamps
    again (asking ClickHouse for the result's types), as Grafana's plugin sees them."""
    if not any(pa.types.is_unsigned_integer(kind) for kind in table.schema.types):
        return table
    described = store.query_arrow(f"DESCRIBE TABLE ({sql})")
    kinds = dict(zip(described.column(0).to_pylist(), described.column(1).to_pylist(), strict=True))
    for index, name in enumerate(table.column_names):
        kind = kinds.get(name, "").removeprefix("Nullable(")
        if kind.startswith("DateTime") and not kind.startswith("DateTime64"):
            seconds = table.column(index).cast(pa.int64())
            table = table.set_column(index, name, seconds.cast(TS_S))
    return table


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _textual(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def shape_problems(panel: Panel, table: pa.Table) -> list[str]:
    """Why a result cannot feed this panel, if it cannot (an empty list when it can)."""
    names, kinds = table.column_names, table.schema.types
    if panel.type == "timeseries":
        if not names or names[0] != "time" or not pa.types.is_timestamp(kinds[0]):
            return ["a time series needs a first column named time holding timestamps"]
        values = [k for k in kinds[1:] if _numeric(k)]
        if not values:
            return ["a time series needs at least one numeric column after time"]
        if any(not (_numeric(k) or _textual(k)) for k in kinds[1:]):
            return ["time series columns must be numbers, or strings that label the series"]
        times = table.column(0).to_pylist()
        if times != sorted(times):
            return ["a time series must be ordered by time"]
        return []
    if panel.type == "barchart":
        if len(names) < 2 or not _textual(kinds[0]):
            return ["a bar chart needs a first column of category names"]
        if not all(_numeric(k) for k in kinds[1:]):
            return ["a bar chart's columns after the category must be numbers"]
        return []
    if panel.type == "stat":
        if table.num_rows != 1:
            return [f"a stat panel needs exactly one row, got {table.num_rows}"]
        if not names or not all(_numeric(k) for k in kinds):
            return ["a stat panel's columns must be numbers"]
        return []
    return [] if names else ["a table needs at least one column"]


def finite(value: Any) -> float | None:
    """A number fit to plot, or None for NULL, NaN and infinities."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
