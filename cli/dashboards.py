"""The Grafana dashboards in ``grafana/dashboards/`` as data, and their SQL made runnable.

Grafana's ClickHouse plugin turns a panel's ``rawSql`` into a query with the
``$__conditionalAll(condition, $var)`` macro (``1=1`` when the variable selects everything),
template variables and the time macros (``$__timeFilter(col)``, ``$__timeInterval(col)`` ...).
:func:`expand` gives the same SQL for the dashboards' own text, with one difference in order:
macros expand first and variables last, each value bound as a quoted string literal, so a
value (``riskctl report --var``) is never read again as SQL or as a macro. Nothing here
touches the network or the store except :func:`run_panel` and :func:`variable_options`, which
take an open store.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from flows.errors import RiskctlError
from flows.resources import package_dir
from flows.store import Store
from flows.times import Window

DASHBOARDS_DIR = package_dir("cli.grafana") / "dashboards"
PLUGIN_TYPE = "grafana-clickhouse-datasource"
# Panel types the report can draw; a dashboard using another type fails validation rather than
# silently missing from the report.
PANEL_TYPES = ("timeseries", "barchart", "stat", "table")
# The plugin release the dashboards are written for, pinned in compose.yaml together with a
# Grafana it supports (its plugin.json: grafanaDependency >=11.6.0 since 4.15.0). A query
# without pluginVersion is read by the plugin as a v3 query and migrated on load.
PLUGIN_VERSION = "4.20.0"
PLUGIN_MIN_GRAFANA = (11, 6, 0)
FORMAT_TIME_SERIES = 0
FORMAT_TABLE = 1
# The plugin's QueryType values (src/types/queryBuilder.ts) for the two formats used here.
QUERY_TYPES = {FORMAT_TIME_SERIES: "timeseries", FORMAT_TABLE: "table"}
# Grafana divides the time range into about this many points when it picks $__interval.
DEFAULT_MAX_POINTS = 200
_NICE_INTERVALS_S = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    7 * 86400, 30 * 86400,
)  # fmt: skip


class DashboardError(RiskctlError):
    """A dashboard file is not a dashboard riskctl can serve, or its SQL cannot be expanded."""


@dataclass(frozen=True)
class Target:
    ref_id: str
    raw_sql: str
    format: int
    query_type: str


@dataclass(frozen=True)
class Panel:
    id: int
    title: str
    type: str
    description: str
    targets: tuple[Target, ...]
    width: int
    unit: str = ""
    stacking: str = "none"
    draw_style: str = "line"
    overrides_units: Mapping[str, str] = field(default_factory=dict)
    colors: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_time_series(self) -> bool:
        return self.type == "timeseries"


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str
    multi: bool
    include_all: bool


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    path: Path
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...]
    default_range: timedelta
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class Selection:
    """What a template variable selects: everything (Grafana's "All"), or some values."""

    values: tuple[str, ...] = ()
    all: bool = True

    @classmethod
    def of(cls, *values: str) -> Selection:
        return cls(values=tuple(values), all=False)


ALL = Selection()


def last_window(span: timedelta, now: datetime | None = None) -> Window:
    """The last ``span`` up to ``now``, as a dashboard's time picker means it."""
    moment = now or datetime.now(UTC)
    # Up to the next whole second: the time macros compare whole seconds, and rows written
    # earlier in the current second belong to "the last <span>".
    end = moment.replace(microsecond=0) + (
        timedelta(seconds=1) if moment.microsecond else timedelta(0)
    )
    return Window(end - span, end)


def auto_interval_s(window: Window, max_points: int = DEFAULT_MAX_POINTS) -> int:
    """The step Grafana would pick: the smallest nice interval giving at most max_points."""
    raw = (window.end - window.start).total_seconds() / max_points
    return next((step for step in _NICE_INTERVALS_S if step >= raw), _NICE_INTERVALS_S[-1])


# ---------------------------------------------------------------------------------------------
# Loading and validating
# ---------------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^now-(\d+)([smhdw])$")
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_span(text: str) -> timedelta:
    """``30m``, ``6h``, ``7d`` or Grafana's ``now-6h`` as a duration."""
    match = _RELATIVE.match(text) or re.match(r"^(\d+)([smhdw])$", text)
    if not match or int(match.group(1)) == 0:
        raise DashboardError(f"expected a duration such as 30m, 6h or 7d, got {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNITS_S[match.group(2)])


def _require(condition: bool, path: Path, message: str) -> None:
    if not condition:
        raise DashboardError(f"{path.name}: {message}")


def _check_datasource(ds: Any, path: Path, where: str) -> None:
    _require(
        isinstance(ds, dict) and ds.get("type") == PLUGIN_TYPE and bool(ds.get("uid")),
        path,
        f"{where} must use the {PLUGIN_TYPE} datasource",
    )


def _panel(raw: dict[str, Any], path: Path) -> Panel:
    title = raw.get("title")
    _require(isinstance(title, str) and bool(title), path, "every panel needs a title")
    where = f"panel {title!r}"
    kind = raw.get("type")
    _require(kind in PANEL_TYPES, path, f"{where} has type {kind!r}; use one of {PANEL_TYPES}")
    _require(isinstance(raw.get("id"), int), path, f"{where} needs an integer id")
    grid = raw.get("gridPos", {})
    _require(
        all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")) and 0 < grid["w"] <= 24,
        path,
        f"{where} needs gridPos x, y, w (1-24) and h",
    )
    _check_datasource(raw.get("datasource"), path, where)
    targets = raw.get("targets")
    _require(isinstance(targets, list) and bool(targets), path, f"{where} has no queries")
    parsed = []
    for target in targets:
        _check_datasource(target.get("datasource"), path, f"{where} query")
        fmt = target.get("format")
        sql = target.get("rawSql")
        _require(target.get("editorType") == "sql", path, f"{where}: editorType must be sql")
        _require(isinstance(sql, str) and bool(sql.strip()), path, f"{where} has empty SQL")
        _require(fmt in QUERY_TYPES, path, f"{where}: format must be 0 (time series) or 1")
        _require(
            target.get("queryType") == QUERY_TYPES[fmt],
            path,
            f"{where}: queryType must be {QUERY_TYPES[fmt]!r} for format {fmt}",
        )
        _require(
            target.get("pluginVersion") == PLUGIN_VERSION,
            path,
            f"{where}: pluginVersion must be {PLUGIN_VERSION!r}, the pinned plugin release",
        )
        want = FORMAT_TIME_SERIES if kind == "timeseries" else FORMAT_TABLE
        _require(fmt == want, path, f"{where}: a {kind} panel needs format {want}")
        parsed.append(Target(str(target.get("refId", "A")), sql, fmt, QUERY_TYPES[fmt]))
    defaults = raw.get("fieldConfig", {}).get("defaults", {})
    units: dict[str, str] = {}
    colors: dict[str, str] = {}
    for override in raw.get("fieldConfig", {}).get("overrides", []):
        matcher = override.get("matcher", {})
        if matcher.get("id") != "byName":
            continue
        for prop in override.get("properties", []):
            if prop.get("id") == "unit":
                units[str(matcher.get("options"))] = str(prop.get("value"))
            elif prop.get("id") == "color" and prop.get("value", {}).get("fixedColor"):
                colors[str(matcher.get("options"))] = str(prop["value"]["fixedColor"])
    return Panel(
        id=raw["id"],
        title=title,
        type=kind,
        description=str(raw.get("description", "")),
        targets=tuple(parsed),
        width=grid["w"],
        unit=str(defaults.get("unit", "")),
        stacking=str(defaults.get("custom", {}).get("stacking", {}).get("mode", "none")),
        draw_style=str(defaults.get("custom", {}).get("drawStyle", "line")),
        overrides_units=units,
        colors=colors,
    )


def _variable(raw: dict[str, Any], path: Path) -> Variable | None:
    kind = raw.get("type")
    name = raw.get("name")
    _require(isinstance(name, str) and name.isidentifier(), path, f"bad variable name {name!r}")
    if kind == "datasource":
        _require(raw.get("query") == PLUGIN_TYPE, path, f"variable {name} must list {PLUGIN_TYPE}")
        return None
    _require(kind == "query", path, f"variable {name} must be a query or datasource variable")
    _check_datasource(raw.get("datasource"), path, f"variable {name}")
    query = raw.get("query")
    if isinstance(query, dict):
        query = query.get("rawSql")
    _require(isinstance(query, str) and bool(query.strip()), path, f"variable {name} has no SQL")
    return Variable(
        name=name,
        label=str(raw.get("label") or name),
        query=query,
        multi=bool(raw.get("multi")),
        include_all=bool(raw.get("includeAll")),
    )


def load_dashboard(path: Path) -> Dashboard:
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise DashboardError(f"cannot read dashboard {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DashboardError(f"{path.name} is not valid JSON: {exc}") from exc
    _require(isinstance(raw, dict), path, "a dashboard is a JSON object")
    for key in ("uid", "title"):
        _require(isinstance(raw.get(key), str) and bool(raw[key]), path, f"{key} is missing")
    panels = raw.get("panels")
    _require(isinstance(panels, list) and bool(panels), path, "the dashboard has no panels")
    parsed = tuple(_panel(p, path) for p in panels if p.get("type") != "row")
    ids = [p.id for p in parsed]
    _require(len(set(ids)) == len(ids), path, "two panels share an id")
    variables = tuple(
        v
        for v in (_variable(t, path) for t in raw.get("templating", {}).get("list", []))
        if v is not None
    )
    names = {v.name for v in variables}
    for panel in parsed:
        for target in panel.targets:
            for name in referenced_variables(target.raw_sql):
                _require(
                    name in names, path, f"panel {panel.title!r} uses undefined variable ${name}"
                )
            for found in _VAR_BRACED.finditer(target.raw_sql):
                _require(
                    found.group(2) in BOUND_FORMATS,
                    path,
                    f"panel {panel.title!r}: {found.group(0)} would paste values into the SQL;"
                    " use ${name:singlequote}",
                )
    return Dashboard(
        uid=raw["uid"],
        title=raw["title"],
        path=path,
        panels=parsed,
        variables=variables,
        default_range=parse_span(str(raw.get("time", {}).get("from", "now-6h"))),
        raw=raw,
    )


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> list[Dashboard]:
    """Every ``*.json`` dashboard in ``directory``, in file-name order."""
    if not directory.is_dir():
        raise DashboardError(f"dashboards directory not found: {directory}")
    dashboards = [load_dashboard(p) for p in sorted(directory.glob("*.json"))]
    if not dashboards:
        raise DashboardError(f"no dashboards (*.json) in {directory}")
    uids = [d.uid for d in dashboards]
    if len(set(uids)) != len(uids):
        raise DashboardError(f"two dashboards in {directory} share a uid")
    return dashboards


# ---------------------------------------------------------------------------------------------
# Expanding macros and variables
# ---------------------------------------------------------------------------------------------

_VAR_BRACED = re.compile(r"\$\{(\w+)(?::(\w+))?\}")
_VAR_BARE = re.compile(r"\$(?!__)(\w+)")
_VAR_ANY = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)")
# Variable formats that bind values as quoted string literals (bare $var quotes too); formats
# that would paste a value into the SQL as it is (raw, csv ...) are refused.
BOUND_FORMATS = (None, "singlequote", "sqlstring")
_MACRO = re.compile(r"\$__(\w+)")


def referenced_variables(sql: str) -> set[str]:
    """Template variables a query uses (``$name`` or ``${name}``/``${name:format}``)."""
    return {m.group(1) for m in _VAR_BRACED.finditer(sql)} | {
        m.group(1) for m in _VAR_BARE.finditer(sql) if not m.group(1).startswith("__")
    }


def _macro_args(sql: str, open_paren: int) -> tuple[list[str], int]:
    """Comma-separated arguments of the call whose ``(`` is at ``open_paren``, and its end."""
    depth = 0
    args: list[str] = []
    start = open_paren + 1
    for i in range(open_paren, len(sql)):
        char = sql[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i].strip())
                return args, i + 1
        elif char == "," and depth == 1:
            args.append(sql[start:i].strip())
            start = i + 1
    raise DashboardError(f"unbalanced parentheses after {sql[open_paren - 20 : open_paren]!r}")


def _conditional_all(sql: str, selections: Mapping[str, Selection]) -> str:
    # Like the plugin: innermost-last, replace the whole call by the condition or by 1=1.
    marker = "$__conditionalAll("
    while (at := sql.rfind(marker)) != -1:
        args, end = _macro_args(sql, at + len(marker) - 1)
        if len(args) != 2:
            raise DashboardError("$__conditionalAll takes a condition and a $variable")
        found = re.search(r"\$\{?(\w+)", args[1])
        if not found:
            raise DashboardError(f"$__conditionalAll needs a $variable, got {args[1]!r}")
        selection = selections.get(found.group(1), ALL)
        phrase = "1=1" if selection.all or not selection.values else args[0]
        sql = sql[:at] + phrase + sql[end:]
    return sql


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _variables(
    sql: str,
    variables: Mapping[str, Variable],
    selections: Mapping[str, Selection],
    options: Mapping[str, list[str]],
) -> str:
    def values_of(name: str) -> list[str]:
        if name not in variables:
            raise DashboardError(f"undefined variable ${name}")
        selection = selections.get(name, ALL)
        # With "All" and no custom all-value Grafana substitutes every option of the variable.
        return list(options.get(name, [])) if selection.all else list(selection.values)

    def render(name: str, fmt: str | None) -> str:
        if fmt not in BOUND_FORMATS:
            raise DashboardError(f"unsupported variable format ${{{name}:{fmt}}}")
        # Always quoted literals: a value is data, never SQL. An empty list would leave
        # `IN ()`; '' matches nothing, as Grafana's output does.
        return ",".join(_quote(v) for v in values_of(name)) or "''"

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return render(match.group(1), match.group(2))
        return render(match.group(3), None)

    # One pass, so a substituted value is never read again as a variable.
    return _VAR_ANY.sub(replace, sql)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _macros(sql: str, time_range: Window, interval_s: int) -> str:
    start, end = time_range.start, time_range.end

    def between(column: str, low: str, high: str) -> str:
        return f"{column} >= {low} AND {column} <= {high}"

    def one(args: list[str], name: str) -> str:
        if len(args) != 1 or not args[0]:
            raise DashboardError(f"$__{name} takes one column")
        return args[0]

    calls = {
        "timeFilter": lambda a: between(
            one(a, "timeFilter"), f"toDateTime({_seconds(start)})", f"toDateTime({_seconds(end)})"
        ),
        "timeFilter_ms": lambda a: between(
            one(a, "timeFilter_ms"),
            f"fromUnixTimestamp64Milli({_millis(start)})",
            f"fromUnixTimestamp64Milli({_millis(end)})",
        ),
        "dateFilter": lambda a: between(
            one(a, "dateFilter"), f"toDate('{start:%Y-%m-%d}')", f"toDate('{end:%Y-%m-%d}')"
        ),
        "timeInterval": lambda a: (
            f"toStartOfInterval(toDateTime({one(a, 'timeInterval')}), INTERVAL {interval_s} second)"
        ),
        "timeInterval_ms": lambda a: (
            f"toStartOfInterval(toDateTime64({one(a, 'timeInterval_ms')}, 3), "
            f"INTERVAL {interval_s * 1000} millisecond)"
        ),
    }
    constants = {
        "fromTime": f"toDateTime({_seconds(start)})",
        "toTime": f"toDateTime({_seconds(end)})",
        "fromTime_ms": f"fromUnixTimestamp64Milli({_millis(start)})",
        "toTime_ms": f"fromUnixTimestamp64Milli({_millis(end)})",
        "interval_s": str(interval_s),
        # Grafana's global variables, substituted before the plugin sees the query.
        "from": str(_millis(start)),
        "to": str(_millis(end)),
    }
    out: list[str] = []
    pos = 0
    for match in _MACRO.finditer(sql):
        if match.start() < pos:
            continue
        name = match.group(1)
        out.append(sql[pos : match.start()])
        if name in calls and match.end() < len(sql) and sql[match.end()] == "(":
            args, pos = _macro_args(sql, match.end())
            out.append(calls[name](args))
        elif name in constants:
            out.append(constants[name])
            pos = match.end()
            if sql[pos : pos + 2] == "()":
                pos += 2
        else:
            raise DashboardError(f"unknown or malformed macro $__{name}")
    out.append(sql[pos:])
    return "".join(out)


def expand(
    sql: str,
    time_range: Window,
    *,
    variables: Mapping[str, Variable] | None = None,
    selections: Mapping[str, Selection] | None = None,
    options: Mapping[str, list[str]] | None = None,
    interval_s: int | None = None,
) -> str:
    """The SQL Grafana's ClickHouse plugin would send for this time range and selection."""
    variables = variables or {}
    selections = selections or {}
    step = interval_s or auto_interval_s(time_range)
    sql = _conditional_all(sql, selections)
    sql = _macros(sql, time_range, step)
    leftover = _VAR_ANY.sub("", sql)
    if "$" in leftover:
        raise DashboardError(
            f"unexpanded $ left in query: {leftover[leftover.index('$') :][:40]!r}"
        )
    # Last, in one pass: nothing in a substituted value is read again.
    sql = _variables(sql, variables, selections, options or {})
    return sql.strip().rstrip(";")


# ---------------------------------------------------------------------------------------------
# Running panels
# ---------------------------------------------------------------------------------------------


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
    from flows.store import StoreError

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
            table = table.set_column(index, name, seconds.cast(pa.timestamp("s", tz="UTC")))
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
