"""Drift reports: one JSON and one readable HTML page (per-feature histograms, live against
the training reference) per window and model version."""

from __future__ import annotations

import html
import json
from datetime import UTC
from pathlib import Path

from flows.drift import DriftResult, DriftRow
from flows.times import iso_utc


def report_stem(result: DriftResult) -> str:
    """File name without suffix: one per window end and model, so a re-run overwrites it."""
    end = result.window.end.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"drift-{end}-{result.model_version}"


def write_report(result: DriftResult, directory: Path) -> tuple[Path, Path]:
    """The JSON and HTML reports, written under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = report_stem(result)
    json_path = directory / f"{stem}.json"
    html_path = directory / f"{stem}.html"
    json_path.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    html_path.write_text(render_html(result))
    return json_path, html_path


_COLOURS = {"ok": "#2e7d32", "watch": "#ef8f00", "alert": "#c62828"}
_REF_FILL = "#9e9e9e"
_LIVE_FILL = "#1565c0"


def _histogram_svg(row: DriftRow) -> str:
    """Reference (grey) and live (blue) share per bin, side by side."""
    width, height, top, bottom, left = 440, 180, 10, 66, 56
    plot_h = height - top - bottom
    n = len(row.labels)
    slot = (width - left - 6) / n
    bar = max(slot * 0.38, 1.0)
    peak = max([*row.reference_shares, *row.live_shares, 1e-9])
    parts = [
        f'<svg width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(row.name)}: reference and live shares per bin">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width}" y2="{top + plot_h}" stroke="#555"/>',
        f'<text x="2" y="{top + 8}" font-size="9">{peak:.0%}</text>',
    ]
    for i, (label, ref, live) in enumerate(
        zip(row.labels, row.reference_shares, row.live_shares, strict=True)
    ):
        x = left + i * slot + slot * 0.1
        for offset, share, fill, who in (
            (0.0, ref, _REF_FILL, "reference"),
            (bar, live, _LIVE_FILL, "live"),
        ):
            h = plot_h * share / peak
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{fill}"><title>{html.escape(label)} {who}: '
                f"{share:.2%}</title></rect>"
            )
        lx = x + bar
        ly = top + plot_h + 10
        parts.append(
            f'<text x="{lx:.1f}" y="{ly}" font-size="9" text-anchor="end" '
            f'transform="rotate(-40 {lx:.1f} {ly})">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(result: DriftResult) -> str:
    """A self-contained page: the summary table, then each quantity's histogram."""
    esc = html.escape
    rows = sorted(result.rows, key=lambda r: -r.psi)
    summary = "".join(
        f'<tr><td><a href="#{esc(r.name)}">{esc(r.name)}</a></td><td>{esc(r.kind)}</td>'
        f'<td class="num">{r.psi:.4f}</td>'
        f'<td style="color:{_COLOURS[r.status]};font-weight:bold">{r.status}</td>'
        f'<td class="num">{r.live_rows:,}</td></tr>'
        for r in rows
    )
    sections = "".join(
        f'<section id="{esc(r.name)}"><h3>{esc(r.name)} — PSI {r.psi:.4f} '
        f'<span style="color:{_COLOURS[r.status]}">{r.status}</span></h3>'
        f"{_histogram_svg(r)}</section>"
        for r in rows
    )
    skipped = "".join(f"<li>{esc(s)}</li>" for s in result.skipped)
    t = result.thresholds
    start, end, computed = (
        esc(iso_utc(m, "milliseconds"))
        for m in (result.window.start, result.window.end, result.computed_at)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Drift {esc(result.model_version)} {end}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: 2px 10px; border-bottom: 1px solid #ddd; }}
.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
section {{ display: inline-block; vertical-align: top; margin: 0 1.5em 1.5em 0; }}
h3 {{ font-size: 1em; margin: 0.2em 0; }}
</style></head><body>
<h1>Population stability: live vs training reference</h1>
<p>Model <b>{esc(result.model_version)}</b>; live window {start} to
{end} (event time), {result.live_rows:,} scored events; computed
{computed}. Thresholds: watch ≥ {t.watch:g}, alert ≥ {t.alert:g}.
Overall status: <b style="color:{_COLOURS[result.status]}">{result.status}</b>.</p>
<p><span style="color:{_REF_FILL}">■</span> training reference
<span style="color:{_LIVE_FILL}">■</span> live window</p>
<table><tr><th>quantity</th><th>kind</th><th>PSI</th><th>status</th><th>live rows</th></tr>
{summary}</table>
{f"<p>Not compared:</p><ul>{skipped}</ul>" if skipped else ""}
<h2>Histograms</h2>
{sections}
</body></html>
"""
