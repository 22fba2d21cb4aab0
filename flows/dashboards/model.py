"""What a dashboard is, as riskctl reads it: its panels, queries and variables, a time range
and a variable's selection, and the Grafana plugin release the JSON is written for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flows.clock import utc_now
from flows.errors import UsageError
from flows.times import Window, parse_duration

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


class DashboardError(UsageError):
    """A dashboard file is not a dashboard riskctl can serve, or its SQL cannot be expanded: the
    user's input (the dashboards, --var, the time range), so exit code 2."""


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
    moment = now or utc_now()
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


def parse_span(text: str) -> timedelta:
    """``30m``, ``6h``, ``7d`` or Grafana's ``now-6h`` as a duration: Grafana's relative form
    is the plain duration behind ``now-``, read by the one duration parser."""
    return parse_duration(text.strip().removeprefix("now-"))
