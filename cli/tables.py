"""Rendering query results: rich tables for people, CSV and JSON for programs."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import pyarrow as pa
from rich.table import Table


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{value:,.0f}"
        return f"{value:,.6g}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def rich_table(result: pa.Table, title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold")
    for name, column_type in zip(result.column_names, result.schema.types, strict=True):
        numeric = pa.types.is_integer(column_type) or pa.types.is_floating(column_type)
        table.add_column(name, justify="right" if numeric else "left")
    for row in result.to_pylist():
        table.add_row(*(_cell(v) for v in row.values()))
    return table


def to_csv(result: pa.Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.column_names)
    for row in result.to_pylist():
        writer.writerow(
            [
                json.dumps(v, default=_json_default) if isinstance(v, list) else v
                for v in row.values()
            ]
        )
    return buffer.getvalue()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def to_json(result: pa.Table) -> str:
    rows = [{k: _finite(v) for k, v in row.items()} for row in result.to_pylist()]
    return json.dumps(rows, default=_json_default, allow_nan=False)
