"""Dashboard JSON files read and checked: a file riskctl cannot serve is an error naming it,
never a panel silently missing from the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flows.dashboards.macros import referenced_variables, unbound_references
from flows.dashboards.model import (
    FORMAT_TABLE,
    FORMAT_TIME_SERIES,
    PANEL_TYPES,
    PLUGIN_TYPE,
    PLUGIN_VERSION,
    QUERY_TYPES,
    Dashboard,
    DashboardError,
    Panel,
    Target,
    Variable,
    parse_span,
)
from flows.resources import package_dir

DASHBOARDS_DIR = package_dir("flows.grafana") / "dashboards"


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
    # JSON values are Any until checked: _require raises where they are not what is used
    title: Any = raw.get("title")
    _require(isinstance(title, str) and bool(title), path, "every panel needs a title")
    where = f"panel {title!r}"
    kind: Any = raw.get("type")
    _require(kind in PANEL_TYPES, path, f"{where} has type {kind!r}; use one of {PANEL_TYPES}")
    _require(isinstance(raw.get("id"), int), path, f"{where} needs an integer id")
    grid = raw.get("gridPos", {})
    _require(
        all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")) and 0 < grid["w"] <= 24,
        path,
        f"{where} needs gridPos x, y, w (1-24) and h",
    )
    _check_datasource(raw.get("datasource"), path, where)
    targets: Any = raw.get("targets")
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
    # JSON values are Any until checked: _require raises where they are not what is used
    kind = raw.get("type")
    name: Any = raw.get("name")
    _require(isinstance(name, str) and name.isidentifier(), path, f"bad variable name {name!r}")
    if kind == "datasource":
        _require(raw.get("query") == PLUGIN_TYPE, path, f"variable {name} must list {PLUGIN_TYPE}")
        return None
    _require(kind == "query", path, f"variable {name} must be a query or datasource variable")
    _check_datasource(raw.get("datasource"), path, f"variable {name}")
    query: Any = raw.get("query")
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
            for found in unbound_references(target.raw_sql):
                raise DashboardError(
                    f"{path.name}: panel {panel.title!r}: {found} would paste values into the"
                    " SQL; use ${name:singlequote}"
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
