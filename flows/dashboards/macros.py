"""Grafana's ClickHouse plugin macros and template variables, expanded the way the plugin does.

The plugin turns a panel's ``rawSql`` into a query with the ``$__conditionalAll(condition,
$var)`` macro (``1=1`` when the variable selects everything), template variables and the time
macros (``$__timeFilter(col)``, ``$__timeInterval(col)`` ...). :func:`expand` gives the same SQL
for the dashboards' own text, with one difference in order: macros expand first and variables
last, each value bound as a quoted string literal, so a value (``riskctl report --var``) is
never read again as SQL or as a macro. Pure text: nothing here touches the store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from flows.dashboards.model import (
    ALL,
    DashboardError,
    Selection,
    Variable,
    auto_interval_s,
)
from flows.times import Window

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


def unbound_references(sql: str) -> list[str]:
    """The ``${name:format}`` references whose format would paste values into the SQL."""
    return [m.group(0) for m in _VAR_BRACED.finditer(sql) if m.group(2) not in BOUND_FORMATS]


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
