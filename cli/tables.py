"""Rendering query results: tables for people (80 columns unless ``--wide``), CSV and JSON for
programs. Values arrive as ClickHouse rendered them (:mod:`cli.sql_results`), so every format
shows the same dates, maps and escaped bytes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, cast

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from cli.number_format import grouped, money, percent
from cli.sql_results import Result

_ColorSystem = Literal["auto", "standard", "256", "truecolor", "windows"]

# The terminal width tables are laid out for unless --wide is given.
NARROW_WIDTH = 80


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output: table, csv or json.")
]
WideOption = Annotated[
    bool, typer.Option("--wide", help="Full column names and values; wider than 80 columns.")
]


class Kind(StrEnum):
    """How a known column's values read: money in whole units, a probability as a percentage,
    or a flag as a mark."""

    money = "money"
    percent = "percent"
    # A flag: ``*`` when true, blank when false.
    mark = "mark"


@dataclass(frozen=True)
class Column:
    """How a known column is shown in a table (CSV and JSON keep names and values as they are)."""

    header: str
    kind: Kind | None = None
    # A list column shows its first item and how many more in narrow tables, all items in wide.
    first_only: bool = False
    # Shown only in wide tables (long texts that cannot fit 80 columns); CSV and JSON keep it.
    wide_only: bool = False


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return grouped(value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def cell(value: Any, column: Column | None = None, wide: bool = False) -> str:
    """One table cell."""
    kind = column.kind if column else None
    if isinstance(value, bool) and kind is Kind.mark:
        return "*" if value else ""
    if isinstance(value, int | float) and not isinstance(value, bool) and kind is not None:
        return money(value) if kind is Kind.money else percent(value)
    if isinstance(value, list):
        items = [_scalar(v) for v in value]
        if column is not None and column.first_only and not wide and len(items) > 1:
            return f"{items[0]} +{len(items) - 1}"
        return ", ".join(items)
    return _scalar(value)


def rich_table(
    result: Result,
    title: str | None = None,
    columns: Mapping[str, Column] | None = None,
    wide: bool = False,
) -> Table:
    """A table that fits 80 columns (text wraps inside its column, never cut) or, with ``wide``,
    full column names and every value on one line."""
    columns = columns or {}
    hidden = {n for n, c in columns.items() if c.wide_only and not wide}
    keep = [i for i, n in enumerate(result.names) if n not in hidden]
    table = Table(
        title=title,
        header_style="bold",
        box=box.SIMPLE_HEAD if not wide else box.HEAVY_HEAD,
        padding=(0, 0) if not wide else (0, 1),
        show_edge=wide,
    )
    for index in keep:
        name = result.names[index]
        known = columns.get(name)
        header = name if wide or known is None else known.header
        table.add_column(
            header,
            justify="right" if result.is_numeric(index) else "left",
            overflow="fold",
            no_wrap=wide,
        )
    for row in result.rows:
        table.add_row(*(cell(row[i], columns.get(result.names[i]), wide) for i in keep))
    return table


def print_table(console: Console, table: Table, wide: bool = False) -> None:
    """Print within 80 columns (or a narrower terminal), or at the table's own width with
    ``wide``."""
    if wide:
        natural = console.measure(table, options=console.options.update(width=10_000)).maximum
        # Console.print never goes past the console's own width: a console as wide as the table.
        Console(
            width=max(natural, console.width),
            file=console.file,
            # rich names its colour system with one of the names the constructor takes
            color_system=cast("_ColorSystem | None", console.color_system),
            force_terminal=console.is_terminal,
        ).print(table)
    else:
        console.print(table, width=min(console.width, NARROW_WIDTH))


def _csv_value(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def to_csv(result: Result) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.names)
    for row in result.rows:
        writer.writerow([_csv_value(v) for v in row])
    return buffer.getvalue()


def to_json(result: Result) -> str:
    return json.dumps(result.records(), ensure_ascii=False, allow_nan=False)


def emit(
    console: Console,
    result: Result,
    fmt: OutputFormat,
    title: str | None = None,
    columns: Mapping[str, Column] | None = None,
    wide: bool = False,
) -> None:
    """Print a result in the chosen format: the one output path of every command with rows."""
    if fmt is OutputFormat.csv:
        typer.echo(to_csv(result), nl=False)
    elif fmt is OutputFormat.json:
        typer.echo(to_json(result))
    elif not result.names:
        console.print("done (the statement returns no rows)")
    else:
        print_table(console, rich_table(result, title, columns, wide), wide)
