"""``riskctl run``: stream events from files or Kafka through the dataflow into the store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import (
    BrokersOption,
    HomeOption,
    StoreOption,
    UsageError,
    check_directory,
    console,
    err_console,
    settings,
    user_errors,
)
from flows.errors import RiskctlError
from flows.settings import Settings

if TYPE_CHECKING:
    from flows.runner import Cluster
    from flows.writer import RunStats


class Source(StrEnum):
    file = "file"
    kafka = "kafka"


def count_lines(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with path.open("rb") as handle:
            total += sum(
                chunk.count(b"\n") for chunk in iter(partial(handle.read, 1 << 20), b"")
            )
    return total


def score_files(
    paths: list[Path],
    cfg: Settings,
    workers: int,
    label: str,
    on_write: Callable[[RunStats], None] = lambda _stats: None,
) -> RunStats:
    """Run the dataflow over ``paths`` with a progress bar; returns the run's counters."""
    from flows.jobs import RunOptions, run_files
    from flows.model import ChampionWatch, behaviour_watch, load_live_model, load_model
    from flows.shadow import ChallengerWatch, load_challenger

    model = load_model(cfg.models_dir, kind=cfg.model_kind)
    live_model = load_live_model(cfg.models_dir)
    shadow = load_challenger(cfg.models_dir, cfg.model_kind) if cfg.shadow else None
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

        def progressed(stats: RunStats) -> None:
            rate = stats.sent / stats.elapsed_s if stats.elapsed_s else 0.0
            progress.update(task, completed=stats.sent, rate=f"{rate:,.0f} ev/s")
            on_write(stats)

        options = RunOptions(
            workers=workers,
            on_write=progressed,
            live_model=live_model,
            on_store_failure=abort_run,
            # Models promoted while the flow runs score from the next micro-batch on; so does a
            # challenger registered (or stop shadowing, once promoted).
            shadow_watch=None
            if shadow is None
            else ChallengerWatch(cfg.models_dir, cfg.model_kind, shadow),
            watch=ChampionWatch(cfg.models_dir, model, kind=cfg.model_kind),
            live_watch=None if live_model is None else behaviour_watch(cfg.models_dir, live_model),
        )
        return run_files(paths, cfg, model, options)


def abort_run(error: RiskctlError) -> NoReturn:
    """End the process on a store failure: one line, exit 1, before Bytewax could record the
    epoch. Nothing unstored was acknowledged, so the next run reads it again; what a write left
    half done, the store's journal completes then."""
    os.write(2, f"error: {error}\n".encode(errors="replace"))
    os._exit(1)


def summary_table(stats: RunStats) -> Table:
    table = Table(title="Run summary", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    rate = stats.sent / stats.elapsed_s if stats.elapsed_s else 0.0
    for name, value in (
        # Waiting repayments were read but not yet stored; applied later, they count negative.
        ("events read", f"{stats.sent + stats.pending_repayments:,}"),
        ("scored", f"{stats.scored:,}"),
        ("dead-lettered", f"{stats.dead_lettered:,}"),
        ("already stored (skipped)", f"{stats.duplicates:,}"),
        # a rerun's scores for repayments an earlier run stored but died before scoring
        ("live scores restored from stored history", f"{stats.restored:,}"),
        ("repayments waiting for their application", f"{stats.pending_repayments:,}"),
        ("store retries", f"{stats.store_retries:,}"),
        ("seconds", f"{stats.elapsed_s:,.2f}"),
        ("events/s", f"{rate:,.0f}"),
    ):
        table.add_row(name, value)
    return table


def _log_batch(stats: RunStats) -> None:
    # One JSON line per written batch, flushed, for supervisors and tests that follow a run.
    totals = {
        "sent": stats.sent,
        "scored": stats.scored,
        "dead_lettered": stats.dead_lettered,
        "duplicates": stats.duplicates,
    }
    print(json.dumps(totals), flush=True)


def _cluster(
    processes: int, process_id: int | None, addresses: str | None
) -> tuple[Cluster | None, list[list[str]]]:
    """This process's cluster place, and the argument lists of local peers to start."""
    from flows.runner import Cluster

    if addresses:
        listed = tuple(a.strip() for a in addresses.split(",") if a.strip())
        if process_id is None:
            raise UsageError("--addresses needs --process-id (this process's index in the list)")
        return Cluster(process_id, listed), []
    if processes == 1:
        return None, []
    listed = tuple(f"127.0.0.1:{port}" for port in _free_ports(processes))
    joined = ",".join(listed)
    peers = [
        [*sys.argv[1:], "--process-id", str(i), "--addresses", joined] for i in range(1, processes)
    ]
    return Cluster(0, listed), peers


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run(
    inputs: Annotated[
        list[Path] | None,
        typer.Option("--input", "-i", help="JSON-lines file(s) of events (--source file)."),
    ] = None,
    source: Annotated[Source, typer.Option(help="Where events come from.")] = Source.file,
    brokers: BrokersOption = None,
    until_end: Annotated[
        bool, typer.Option(help="Kafka: stop once every partition is read to its end.")
    ] = False,
    workers: Annotated[int, typer.Option(help="Bytewax workers per process.")] = 1,
    processes: Annotated[
        int, typer.Option(help="Local processes to start (each with --workers workers).")
    ] = 1,
    process_id: Annotated[
        int | None, typer.Option(help="This process's index in --addresses.")
    ] = None,
    addresses: Annotated[
        str | None,
        typer.Option(help="host:port of every process in the cluster, comma-separated, in order."),
    ] = None,
    recovery_dir: Annotated[
        Path | None,
        typer.Option(help="Keep Bytewax recovery snapshots here and resume from them."),
    ] = None,
    snapshot_interval: Annotated[
        float, typer.Option(help="Seconds between recovery snapshots (the epoch length).")
    ] = 5.0,
    batch_size: Annotated[
        int | None, typer.Option(help="Events per micro-batch (env: RISKCTL_BATCH_SIZE).")
    ] = None,
    log_batches: Annotated[
        bool, typer.Option(help="Print one JSON line of running totals per written batch.")
    ] = False,
    home: HomeOption = None,
    store: StoreOption = None,
) -> None:
    """Run the dataflow: to the end of the input files, or on Kafka (until stopped)."""
    from flows.jobs import RunOptions, run_files, run_kafka
    from flows.kafka_admin import list_topics
    from flows.model import ChampionWatch, behaviour_watch, load_live_model, load_model
    from flows.runner import Recovery
    from flows.shadow import ChallengerWatch, load_challenger

    with user_errors():
        if workers < 1 or processes < 1:
            raise UsageError("--workers and --processes must be at least 1")
        if snapshot_interval <= 0:
            raise UsageError("--snapshot-interval must be positive")
        check_directory(recovery_dir, "--recovery-dir")
        cfg = settings(home, store, brokers=brokers, batch_size=batch_size)
        if source is Source.file:
            if not inputs:
                raise UsageError("--input FILE is required with --source file")
            missing = [str(p) for p in inputs if not p.is_file()]
            if missing:
                raise UsageError(f"input file not found: {', '.join(missing)}")
            # An event's origin (its place for resuming and de-duplication) is file name and
            # line, so two inputs with one name would be read as the same file.
            names = [p.name for p in inputs]
            clashing = sorted({str(p) for p in inputs if names.count(p.name) > 1})
            if clashing:
                raise UsageError(
                    f"input files need distinct file names: {', '.join(clashing)} "
                    "(rename or copy one of them)"
                )
        elif inputs:
            raise UsageError("--input is for --source file; Kafka runs read the topics")
        if processes > 1 or addresses:
            cfg.store.check_shared()
        if source is Source.kafka:
            # Bytewax's Kafka source would wait on an absent broker, logging every retry.
            list_topics(cfg.kafka.brokers)
        if source is Source.file and not (recovery_dir or processes > 1 or addresses):
            log = _log_batch if log_batches else lambda _stats: None
            stats = score_files(inputs or [], cfg, workers, "scoring", on_write=log)
            console.print(summary_table(stats))
            _end_of_stop(stats)
            return
        cluster, peers = _cluster(processes, process_id, addresses)
        children = [subprocess.Popen([sys.argv[0], *args]) for args in peers]
        options = RunOptions(
            workers=workers,
            recovery=Recovery(recovery_dir, timedelta(seconds=snapshot_interval))
            if recovery_dir
            else None,
            cluster=cluster,
            on_write=_log_batch if log_batches else lambda _stats: None,
            live_model=load_live_model(cfg.models_dir),
            on_store_failure=abort_run,
        )
        shadow = load_challenger(cfg.models_dir, cfg.model_kind) if cfg.shadow else None
        model = load_model(cfg.models_dir, kind=cfg.model_kind)
        # A model promoted while the flow runs scores from the next micro-batch on.
        live_model = options.live_model
        options = replace(
            options,
            watch=ChampionWatch(cfg.models_dir, model, kind=cfg.model_kind),
            live_watch=None if live_model is None else behaviour_watch(cfg.models_dir, live_model),
            shadow_watch=None
            if shadow is None
            else ChallengerWatch(cfg.models_dir, cfg.model_kind, shadow),
        )
        try:
            if source is Source.kafka:
                stats = run_kafka(cfg, model, options, until_end=until_end)
            else:
                stats = run_files(inputs or [], cfg, model, options)
        finally:
            for child in children:
                child.wait()
        console.print(summary_table(stats))
        _end_of_stop(stats)


def _end_of_stop(stats: RunStats) -> None:
    """After a signal stopped the run: one line, and the exit a shell expects (0 for SIGTERM,
    the service managers' stop; 130 for SIGINT, as for Ctrl-C)."""
    if stats.stopped_by is None:
        return
    err_console.print(
        f"stopped by {stats.stopped_by}: everything read was stored; run again to continue",
        highlight=False,
        soft_wrap=True,
    )
    if stats.stopped_by == "SIGINT":
        raise typer.Exit(130)


def register(app: typer.Typer) -> None:
    app.command()(run)
