"""``riskctl drift``: PSI of the live population against the current model's training reference.

Exit codes: 0 when nothing is in alert (``watch`` included), 3 when any feature, the PD or the
band mix is in alert, so a scheduler can act on it; 1 for errors and 2 for bad options, as
everywhere else.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import JustifyMethod
from rich.table import Table

from cli.common import (
    HomeOption,
    StoreOption,
    UsageError,
    check_directory,
    console,
    settings,
    user_errors,
)
from flows.settings import Settings
from flows.store import open_store
from flows.times import resolve_window

if TYPE_CHECKING:
    from flows.drift import DriftResult

ALERT_EXIT_CODE = 3
_STYLE = {"ok": "green", "watch": "yellow", "alert": "bold red"}


def report_dir(cfg: Settings) -> Path:
    """Where drift reports go by default, and where ``riskctl archive`` looks for them."""
    return cfg.home / "reports" / "drift"


SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Window back from --to (default now): 90s, 15m, 1h, 2d, 1w."),
]
FromOption = Annotated[
    str | None, typer.Option("--from", help="Window start, ISO-8601 (UTC if no zone).")
]
ToOption = Annotated[
    str | None, typer.Option("--to", help="Window end, ISO-8601 (UTC if no zone); default now.")
]


def _card(cfg: Settings, version: str | None) -> dict:
    from flows.model_cards import ModelError, current_version, read_card

    chosen = version or current_version(cfg.models_dir, cfg.model_kind)
    if chosen is None:
        raise ModelError(f"no model in {cfg.models_dir}; run `riskctl train` first")
    model_dir = cfg.models_dir / chosen
    if not model_dir.is_dir():
        raise ModelError(f"model version {chosen!r} not found in {cfg.models_dir}")
    return read_card(model_dir)


def result_table(result: DriftResult) -> Table:
    table = Table(
        title=f"PSI vs training reference of {result.model_version}",
        header_style="bold",
    )
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("quantity", "left"),
        ("kind", "left"),
        ("PSI", "right"),
        ("status", "left"),
        ("live rows", "right"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for row in sorted(result.rows, key=lambda r: -r.psi):
        table.add_row(
            row.name,
            row.kind,
            f"{row.psi:.4f}",
            f"[{_STYLE[row.status]}]{row.status}[/]",
            f"{row.live_rows:,}",
        )
    return table


def drift(
    since: SinceOption = None,
    start: FromOption = None,
    end: ToOption = None,
    watch: Annotated[
        float | None,
        typer.Option(help="PSI from which a quantity is 'watch' (env RISKCTL_DRIFT_WATCH; 0.1)."),
    ] = None,
    alert: Annotated[
        float | None,
        typer.Option(help="PSI from which a quantity is 'alert' (env RISKCTL_DRIFT_ALERT; 0.25)."),
    ] = None,
    min_rows: Annotated[
        int | None,
        typer.Option(
            "--min-rows",
            help="Fewest live rows worth comparing (env RISKCTL_DRIFT_MIN_ROWS; 500).",
        ),
    ] = None,
    model_version: Annotated[
        str | None, typer.Option("--model", help="Model version whose card is the reference.")
    ] = None,
    reports: Annotated[
        Path | None,
        typer.Option(
            "--report-dir", help="Where the JSON and HTML reports go (default HOME/reports/drift)."
        ),
    ] = None,
    save: Annotated[
        bool, typer.Option("--record/--no-record", help="Append the result to drift_psi.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    home: HomeOption = None,
    store: StoreOption = None,
) -> None:
    """Population stability of live scored events against the model's training reference."""
    from flows.drift import measure, record
    from flows.drift_report import write_report
    from flows.store.migrations import migrate

    with user_errors():
        check_directory(reports, "--report-dir")
        cfg = settings(home, store)
        try:
            window = resolve_window(since, start, end)
            given: dict[str, Any] = {
                k: v
                for k, v in (("watch", watch), ("alert", alert), ("min_rows", min_rows))
                if v is not None
            }
            thresholds = replace(cfg.drift, **given)
        except ValueError as exc:  # a TimeInputError among them
            raise UsageError(str(exc)) from exc
        card = _card(cfg, model_version)
        db = open_store(cfg.store)
        try:
            if save:
                migrate(db)  # drift_psi arrives with migration 0005
            result = measure(db, card, window, thresholds)
            if save:
                record(db, result)
        finally:
            db.close()
        json_path, html_path = write_report(result, reports or report_dir(cfg))
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        console.print(result_table(result))
        for note in result.skipped:
            console.print(f"not compared: {note}", highlight=False)
        console.print(f"report: {html_path} (and {json_path.name})", highlight=False)
        alerts = ", ".join(r.name for r in result.alerts)
        console.print(
            f"[{_STYLE[result.status]}]{result.status}[/]: {result.live_rows:,} scored events, "
            f"{len(result.rows)} quantities, watch ≥ {thresholds.watch:g}, alert ≥ "
            f"{thresholds.alert:g}" + (f"; in alert: {alerts}" if alerts else ""),
            highlight=False,
        )
    if result.alerts:
        raise typer.Exit(ALERT_EXIT_CODE)


def register(app: typer.Typer) -> None:
    app.command()(drift)
