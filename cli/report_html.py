"""One self-contained HTML page from dashboard panel results: inline CSS and inline SVG charts
drawn here in Python, no scripts and no external resources, so the file opens anywhere offline.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from cli.number_format import compact_money, compact_number
from flows.dashboards import Dashboard, Panel, PanelResult, Selection, auto_interval_s, finite
from flows.times import Window

# Grafana's named colours, and its classic palette for series without a fixed colour.
NAMED_COLORS = {
    "green": "#73BF69",
    "yellow": "#FADE2A",
    "orange": "#FF9830",
    "red": "#F2495C",
    "blue": "#5794F2",
    "purple": "#B877D9",
}
PALETTE = (
    "#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42",
    "#1F78C1", "#BA43A9", "#705DA0", "#508642", "#CCA300",
)  # fmt: skip
CHART_WIDTH = 1200  # SVG units for a full-width (24 column) panel
CHART_HEIGHT = 260
TABLE_ROWS = 50
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 70, 16, 12, 28


@dataclass(frozen=True)
class Section:
    """One dashboard's panels as run for the report."""

    dashboard: Dashboard
    time_range: Window
    selections: Mapping[str, Selection]
    results: Sequence[PanelResult]
    notes: Sequence[str] = field(default_factory=tuple)


# ------------------------------------------------------------------------------ number formats


def format_value(value: Any, unit: str = "") -> str:
    """A cell or axis value as Grafana would show it for the field's unit."""
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    number = finite(value) if isinstance(value, int | float) else None
    if number is None:
        return str(value)
    if unit == "percentunit":
        return f"{number * 100:.2f}%" if abs(number) < 0.1 else f"{number * 100:.1f}%"
    if unit == "currencyUSD":
        return compact_money(number)
    if unit == "ms":
        return format_value(number / 1000, "s") if abs(number) >= 1000 else f"{number:.3g} ms"
    if unit == "s":
        for limit, name in ((86400, "d"), (3600, "h"), (60, "min")):
            if abs(number) >= limit:
                return f"{number / limit:.3g} {name}"
        return f"{number:.3g} s"
    if unit == "reqps":
        return f"{compact_number(number)}/s"
    return compact_number(number)


def _color(name: str, index: int, fixed: Mapping[str, str]) -> str:
    chosen = fixed.get(name)
    if chosen:
        return NAMED_COLORS.get(chosen, chosen)
    return PALETTE[index % len(PALETTE)]


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * step:
            step *= factor
            break
    # From the step at or below low to the first step at or above high, so every value fits.
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(k * step, 12) for k in range(first, max(last, first + 1) + 1)]


# ------------------------------------------------------------------------------ time series


@dataclass(frozen=True)
class Series:
    name: str
    points: dict[datetime, float | None]


def time_series(table: pa.Table) -> tuple[list[datetime], list[Series]]:
    """Times and series from a wide (time, a, b ...) or long (time, label, value) result."""
    times_col = table.column(0).to_pylist()
    labels = [
        n
        for n, k in zip(table.column_names[1:], table.schema.types[1:], strict=True)
        if pa.types.is_string(k) or pa.types.is_large_string(k)
    ]
    values = [n for n in table.column_names[1:] if n not in labels]
    series: dict[str, dict[datetime, float | None]] = {}
    label_values = [table.column(n).to_pylist() for n in labels]
    for value_name in values:
        column = table.column(value_name).to_pylist()
        for row, moment in enumerate(times_col):
            parts = [str(lv[row]) for lv in label_values]
            if not parts or len(values) > 1:
                parts.append(value_name)
            key = " ".join(parts)
            series.setdefault(key, {})[moment] = finite(column[row])
    times = sorted(set(times_col))
    return times, [Series(name, points) for name, points in series.items()]


def _time_label(moment: datetime, span: timedelta) -> str:
    moment = moment.astimezone(UTC)
    if span > timedelta(days=2):
        return moment.strftime("%m-%d %H:%M")
    return moment.strftime("%H:%M")


def line_chart(panel: Panel, table: pa.Table, time_range: Window) -> tuple[str, list[str]]:
    """An SVG chart of a time-series result, and the legend's series names in drawing order."""
    times, series = time_series(table)
    width = round(CHART_WIDTH * panel.width / 24)
    plot_w = width - _PAD_LEFT - _PAD_RIGHT
    plot_h = CHART_HEIGHT - _PAD_TOP - _PAD_BOTTOM
    start, end = time_range.start.timestamp(), time_range.end.timestamp()

    def x_of(moment: datetime) -> float:
        return _PAD_LEFT + (moment.timestamp() - start) / (end - start) * plot_w

    stacked = panel.stacking in ("normal", "percent")
    layers: list[list[tuple[float, float]]] = []  # (low, high) per time, per series
    base = [0.0] * len(times)
    totals = [sum((s.points.get(t) or 0.0) for s in series) for t in times]
    for s in series:
        layer = []
        for i, moment in enumerate(times):
            value = s.points.get(moment)
            if stacked:
                value = value or 0.0
                if panel.stacking == "percent":
                    value = value / totals[i] if totals[i] else 0.0
                layer.append((base[i], base[i] + value))
                base[i] += value
            else:
                layer.append((math.nan, value if value is not None else math.nan))
        layers.append(layer)
    highs = [h for layer in layers for _, h in layer if not math.isnan(h)]
    lows = [lo for layer in layers for lo, _ in layer if not math.isnan(lo)] + highs
    ticks = _nice_ticks(min([0.0, *lows]), max([0.0, *highs]) or 1.0)
    y_low, y_high = ticks[0], ticks[-1]

    def y_of(value: float) -> float:
        return _PAD_TOP + plot_h - (value - y_low) / (y_high - y_low) * plot_h

    unit = "percentunit" if panel.stacking == "percent" else panel.unit
    parts = [_frame(width, ticks, y_of, unit)]
    span = time_range.end - time_range.start
    for k in range(6):
        moment = time_range.start + span * k / 5
        x = x_of(moment)
        parts.append(
            f'<text x="{x:.1f}" y="{CHART_HEIGHT - 8}" text-anchor="middle" class="tick">'
            f"{_time_label(moment, span)}</text>"
        )
    # One time point cannot make an area, so stacked series draw as bars then too.
    bars = panel.draw_style == "bars" or (stacked and len(times) == 1)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    step_s = min(gaps) if gaps else auto_interval_s(time_range)
    bar_w = max(2.0, step_s / (end - start) * plot_w * 0.8)
    names = []
    for index, (s, layer) in enumerate(zip(series, layers, strict=True)):
        color = _color(s.name, index, panel.colors)
        names.append(s.name)
        if bars:
            # Stacked bars share a slot; unstacked ones stand side by side within it.
            each = bar_w if stacked else bar_w / len(series)
            offset = 0.0 if stacked else index * each
            for moment, (low, high) in zip(times, layer, strict=True):
                if math.isnan(high):
                    continue
                low = 0.0 if math.isnan(low) else low
                top, bottom = y_of(max(low, high)), y_of(min(low, high))
                parts.append(
                    f'<rect class="mark" x="{x_of(moment) - bar_w / 2 + offset:.1f}" '
                    f'y="{top:.1f}" width="{each:.1f}" height="{max(bottom - top, 0.5):.1f}" '
                    f'fill="{color}"><title>{html.escape(s.name)}</title></rect>'
                )
            continue
        if stacked:
            upper = [f"{x_of(t):.1f},{y_of(h):.1f}" for t, (_, h) in zip(times, layer, strict=True)]
            lower = [
                f"{x_of(t):.1f},{y_of(lo):.1f}"
                for t, (lo, _) in reversed(list(zip(times, layer, strict=True)))
            ]
            parts.append(
                f'<polygon class="mark" points="{" ".join(upper + lower)}" fill="{color}" '
                f'fill-opacity="0.75" stroke="{color}" stroke-width="1"><title>'
                f"{html.escape(s.name)}</title></polygon>"
            )
            continue
        # Gaps (NULL or missing points) split the line, as Grafana draws them with spanNulls off.
        run: list[str] = []
        runs: list[list[str]] = []
        for moment, (_, value) in zip(times, layer, strict=True):
            if math.isnan(value):
                if run:
                    runs.append(run)
                run = []
            else:
                run.append(f"{x_of(moment):.1f},{y_of(value):.1f}")
        if run:
            runs.append(run)
        for points in runs:
            if len(points) == 1:
                cx, cy = points[0].split(",")
                parts.append(f'<circle class="mark" cx="{cx}" cy="{cy}" r="4" fill="{color}"/>')
            else:
                parts.append(
                    f'<polyline class="mark" points="{" ".join(points)}" fill="none" '
                    f'stroke="{color}" stroke-width="2"/>'
                )
    return _svg(width, panel.title, "".join(parts)), names


def _frame(width: int, ticks: list[float], y_of: Any, unit: str) -> str:
    parts = []
    for tick in ticks:
        y = y_of(tick)
        parts.append(
            f'<line x1="{_PAD_LEFT}" x2="{width - _PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'class="grid"/><text x="{_PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'class="tick">{html.escape(format_value(tick, unit))}</text>'
        )
    return "".join(parts)


def _svg(width: int, title: str, body: str, height: float = CHART_HEIGHT) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{html.escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


# ------------------------------------------------------------------------------ bars, stats, tables


def bar_chart(panel: Panel, table: pa.Table) -> tuple[str, list[str]]:
    """Horizontal bars, one group per category, one bar per numeric column."""
    categories = [str(c) for c in table.column(0).to_pylist()]
    measures = table.column_names[1:]
    values = {m: [finite(v) or 0.0 for v in table.column(m).to_pylist()] for m in measures}
    width = round(CHART_WIDTH * panel.width / 24)
    label_w = 110
    row_h = max(14, min(34, (CHART_HEIGHT * 1.6) // max(len(categories), 1)))
    height = _PAD_TOP + row_h * len(categories) + _PAD_BOTTOM
    plot_w = width - label_w - _PAD_RIGHT - 60
    high = max([0.0, *(v for vs in values.values() for v in vs)]) or 1.0
    unit = panel.overrides_units.get(measures[0], panel.unit)
    bar_h = (row_h - 4) / len(measures)
    parts = []
    for row, category in enumerate(categories):
        y = _PAD_TOP + row * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end" '
            f'class="tick">{html.escape(category)}</text>'
        )
        for index, measure in enumerate(measures):
            value = values[measure][row]
            length = max(value, 0.0) / high * plot_w
            color = (
                _color(category, index, panel.colors)
                if len(measures) == 1
                else _color(measure, index, panel.colors)
            )
            top = y + 2 + index * bar_h
            parts.append(
                f'<rect class="mark" x="{label_w}" y="{top:.1f}" width="{length:.1f}" '
                f'height="{bar_h:.1f}" fill="{color}"><title>{html.escape(category)}: '
                f"{html.escape(format_value(value, unit))}</title></rect>"
                f'<text x="{label_w + length + 4:.1f}" y="{top + bar_h / 2 + 4:.1f}" '
                f'class="tick">{html.escape(format_value(value, unit))}</text>'
            )
    return _svg(width, panel.title, "".join(parts), height), list(measures)


def stat_block(panel: Panel, table: pa.Table) -> str:
    row = table.to_pylist()[0] if table.num_rows else {}
    cells = []
    for name in table.column_names:
        unit = panel.overrides_units.get(name, panel.unit)
        cells.append(
            f'<div class="stat"><div class="value">{html.escape(format_value(row.get(name), unit))}'
            f'</div><div class="label">{html.escape(name.replace("_", " "))}</div></div>'
        )
    return f'<div class="stats">{"".join(cells)}</div>'


def table_html(panel: Panel, table: pa.Table) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in table.column_names)
    rows = []
    for record in table.slice(0, TABLE_ROWS).to_pylist():
        cells = "".join(
            f"<td>{html.escape(format_value(v, panel.overrides_units.get(k, '')))}</td>"
            for k, v in record.items()
        )
        rows.append(f"<tr>{cells}</tr>")
    more = (
        f'<p class="note">first {TABLE_ROWS} of {table.num_rows} rows</p>'
        if table.num_rows > TABLE_ROWS
        else ""
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
        f"</tbody></table></div>{more}"
    )


def _legend(panel: Panel, names: list[str]) -> str:
    if len(names) < 2 or panel.type == "barchart":
        return ""
    items = "".join(
        f'<span><i style="background:{_color(n, i, panel.colors)}"></i>{html.escape(n)}</span>'
        for i, n in enumerate(names)
    )
    return f'<div class="legend">{items}</div>'


def panel_body(result: PanelResult, time_range: Window) -> str:
    panel = result.panel
    if result.error is not None:
        return f'<p class="error">query failed: {html.escape(result.error)}</p>'
    table = result.tables[0]
    if table.num_rows == 0:
        return '<p class="empty">No data in this time range.</p>'
    if panel.type == "timeseries":
        svg, names = line_chart(panel, table, time_range)
        return svg + _legend(panel, names)
    if panel.type == "barchart":
        return bar_chart(panel, table)[0]
    if panel.type == "stat":
        return stat_block(panel, table)
    return table_html(panel, table)


# ------------------------------------------------------------------------------ the page

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
background:#f4f5f5;color:#24292e}
header{background:#181b1f;color:#e0e0e0;padding:14px 24px}
header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#aaa}
main{padding:8px 24px 32px}h2{margin:24px 0 4px}.meta{color:#555;margin:0 0 10px}
.grid{display:grid;grid-template-columns:repeat(24,minmax(0,1fr));gap:10px}
.panel{background:#fff;border:1px solid #dcdee0;border-radius:4px;padding:10px 12px;
min-width:0}.panel h3{margin:0 0 2px;font-size:15px}
.panel .desc{color:#666;margin:0 0 6px;font-size:12px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:#e3e3e3;stroke-width:1}svg .tick{font-size:11px;fill:#555}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin-top:4px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
.stats{display:flex;gap:18px;flex-wrap:wrap}.stat .value{font-size:30px;font-weight:600;
color:#1f60c4}.stat .label{color:#666;font-size:12px}
.scroll{overflow:auto;max-height:460px}table{border-collapse:collapse;font-size:12px;width:100%}
th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;white-space:nowrap}
th{background:#f7f7f7}.error{color:#c4162a}.empty,.note{color:#777}
details{margin-top:6px}summary{cursor:pointer;color:#777;font-size:12px}
pre{white-space:pre-wrap;font-size:11px;background:#f7f7f7;padding:6px;margin:4px 0 0}
"""


def _selection_text(section: Section) -> str:
    parts = []
    for variable in section.dashboard.variables:
        selection = section.selections.get(variable.name, Selection())
        shown = "All" if selection.all else ", ".join(selection.values)
        parts.append(f"{variable.label}: {shown}")
    return " · ".join(parts)


def render(sections: Sequence[Section], generated_at: datetime, source: str) -> str:
    """The whole report page."""
    body = []
    for section in sections:
        rng = section.time_range
        meta = f"{rng.start:%Y-%m-%d %H:%M} to {rng.end:%Y-%m-%d %H:%M} UTC" + (
            f" · {_selection_text(section)}" if section.dashboard.variables else ""
        )
        cards = []
        for result in section.results:
            panel = result.panel
            sql = "\n\n".join(result.sql)
            cards.append(
                f'<section class="panel" style="grid-column:span {panel.width}" '
                f'data-panel-type="{panel.type}"><h3>{html.escape(panel.title)}</h3>'
                f'<p class="desc">{html.escape(panel.description)}</p>'
                f"{panel_body(result, rng)}"
                f"<details><summary>SQL</summary><pre>{html.escape(sql)}</pre></details>"
                "</section>"
            )
        notes = "".join(f'<p class="meta">{html.escape(n)}</p>' for n in section.notes)
        body.append(
            f"<h2>{html.escape(section.dashboard.title)}</h2>"
            f'<p class="meta">{html.escape(meta)}</p>{notes}'
            f'<div class="grid">{"".join(cards)}</div>'
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>riskctl report</title><style>{_CSS}</style></head><body>"
        f"<header><h1>riskctl report</h1><p>{html.escape(source)} · generated "
        f"{generated_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC</p></header>"
        f"<main>{''.join(body)}</main></body></html>\n"
    )
