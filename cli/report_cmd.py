"""``riskctl report``: the Grafana dashboards' panels as one self-contained HTML page.

The panels' SQL comes from the same dashboard JSON Grafana loads, expanded the way Grafana's
ClickHouse plugin expands it, so users of the embedded store see the dashboards without a
Grafana server, and what the page shows is what Grafana would show.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import (
    DashboardsOption,
    HomeOption,
    StoreOption,
    UsageError,
    check_output_file,
    console,
    settings,
    user_errors,
)
from flows.clock import utc_now
from flows.errors import RiskctlError
from flows.store import open_store
from flows.times import Window, parse_instant

if TYPE_CHECKING:
    from flows.dashboards import Dashboard, Selection


class ReportError(RiskctlError):
    """Some panel queries failed; the report was written with the errors in place."""


def parse_vars(pairs: list[str], dashboards: list[Dashboard]) -> dict[str, Selection]:
    """``name=a,b`` options as selections; ``name=All`` selects everything."""
    from flows.dashboards import ALL, Selection

    known = {v.name for d in dashboards for v in d.variables}
    selections: dict[str, Selection] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise UsageError(f"--var takes name=value[,value...], got {pair!r}")
        if name not in known:
            names = ", ".join(sorted(known)) or "none"
            raise UsageError(f"no dashboard variable {name!r} (variables: {names})")
        values = tuple(v.strip() for v in value.split(",") if v.strip())
        selections[name] = ALL if values == ("All",) else Selection.of(*values)
    return selections


def time_range_for(
    dashboard: Dashboard, last: str | None, start: str | None, end: str | None
) -> Window:
    from flows.dashboards import last_window, parse_span

    if last is not None and (start or end):
        raise UsageError("give either --last or --from/--to, not both")
    if start or end:
        if not start:
            raise UsageError("--to needs --from")
        finish = parse_instant(end, "--to") if end else utc_now()
        return Window(parse_instant(start, "--from"), finish)
    span = parse_span(last) if last is not None else dashboard.default_range
    return last_window(span)


def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path(
        "report.html"
    ),
    last: Annotated[
        str | None,
        typer.Option(
            "--last",
            help="Time range ending now: 30m, 6h, 7d ... [default: each dashboard's own]",
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Start of the time range (ISO-8601).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="End of the time range (ISO-8601; default now).")
    ] = None,
    variables: Annotated[
        list[str] | None,
        typer.Option(
            "--var",
            help="Dashboard variable as name=value[,value...], e.g. --var band=high,very_high.",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--dashboard", help="Dashboard uid to include (repeatable; default all)."),
    ] = None,
    dashboards_dir: DashboardsOption = None,
    home: HomeOption = None,
    store: StoreOption = None,
) -> None:
    """Render the Grafana dashboards' panels from the store into one offline HTML page."""
    from cli.report_html import Section, render
    from flows.dashboards import DASHBOARDS_DIR, dashboard_options, load_dashboards, run_panel

    with user_errors():
        check_output_file(out, "--out")
        dashboards = load_dashboards(dashboards_dir or DASHBOARDS_DIR)
        if only:
            unknown = sorted(set(only) - {d.uid for d in dashboards})
            if unknown:
                uids = ", ".join(d.uid for d in dashboards)
                raise UsageError(f"no dashboard {', '.join(unknown)} (dashboards: {uids})")
            dashboards = [d for d in dashboards if d.uid in only]
        selections = parse_vars(variables or [], dashboards)
        try:
            ranges = [time_range_for(d, last, start, end) for d in dashboards]
        except OverflowError:
            raise UsageError("the time range reaches outside the calendar (years 1-9999)") from None
        cfg = settings(home, store)
        # Reading needs no DDL: a read-only user (the analyst) can produce the report.
        db = open_store(cfg.store, create_database=False)
        try:
            sections = []
            for dashboard, time_range in zip(dashboards, ranges, strict=True):
                options = dashboard_options(db, dashboard)
                results = [
                    run_panel(db, dashboard, panel, time_range, selections, options)
                    for panel in dashboard.panels
                ]
                sections.append(Section(dashboard, time_range, selections, results))
            source = db.description
        finally:
            db.close()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(sections, utc_now(), source))
        results = [r for s in sections for r in s.results]
        failed = [r for r in results if r.error is not None]
        with_data = sum(1 for r in results if r.error is None and r.tables[0].num_rows > 0)
        console.print(
            f"wrote {out}: {len(sections)} dashboard(s), {len(results)} panels, "
            f"{with_data} with data",
            soft_wrap=True,
        )
        if failed:
            raise ReportError(
                f"{len(failed)} of {len(results)} panel queries failed (first: "
                f"{failed[0].panel.title}: {failed[0].error}); the report shows each error"
            )


def register(app: typer.Typer) -> None:
    app.command()(report)
