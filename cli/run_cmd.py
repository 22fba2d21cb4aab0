"""``riskctl run``: stream JSON-lines files through the dataflow into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import (
    HomeOption,
    StoreOption,
    UsageError,
    console,
    err_console,
    settings,
    user_errors,
)
from flows.jobs import RunOptions, run_files
from flows.model import load_model
from flows.settings import Settings
from flows.writer import RunStats


def count_lines(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with path.open("rb") as handle:
            total += sum(
                chunk.count(b"\n") for chunk in iter(lambda h=handle: h.read(1 << 20), b"")
            )
    return total


def score_files(paths: list[Path], cfg: Settings, workers: int, label: str) -> RunStats:
    """Run the dataflow over ``paths`` with a progress bar; returns the run's counters."""
    model = load_model(cfg.models_dir)
    total = count_lines(paths)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total, rate="")

        def on_write(stats: RunStats) -> None:
            rate = stats.sent / stats.elapsed_s if stats.elapsed_s else 0.0
            progress.update(task, completed=stats.sent, rate=f"{rate:,.0f} ev/s")

        return run_files(paths, cfg, model, RunOptions(workers=workers, on_write=on_write))


def summary_table(stats: RunStats) -> Table:
    table = Table(title="Run summary", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    rate = stats.sent / stats.elapsed_s if stats.elapsed_s else 0.0
    for name, value in (
        ("events read", f"{stats.sent:,}"),
        ("scored", f"{stats.scored:,}"),
        ("dead-lettered", f"{stats.dead_lettered:,}"),
        ("already stored (skipped)", f"{stats.duplicates:,}"),
        ("seconds", f"{stats.elapsed_s:,.2f}"),
        ("events/s", f"{rate:,.0f}"),
    ):
        table.add_row(name, value)
    return table


def run(
    inputs: Annotated[
        list[Path], typer.Option("--input", "-i", help="JSON-lines file(s) of events.")
    ],
    workers: Annotated[int, typer.Option(help="Bytewax workers in this process.")] = 1,
    batch_size: Annotated[
        int | None, typer.Option(help="Events per micro-batch [env: RISKCTL_BATCH_SIZE].")
    ] = None,
    home: HomeOption = None,
    store: StoreOption = None,
) -> None:
    """Run the dataflow to the end of the input files and print a summary."""
    with user_errors():
        missing = [str(p) for p in inputs if not p.is_file()]
        if missing:
            raise UsageError(f"input file not found: {', '.join(missing)}")
        if workers < 1:
            raise UsageError("--workers must be at least 1")
        cfg = settings(home, store, batch_size=batch_size)
        stats = score_files(inputs, cfg, workers, "scoring")
        console.print(summary_table(stats))


def register(app: typer.Typer) -> None:
    app.command()(run)
