"""``riskctl replay``: real LendingClub loans as timestamped application events."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from cli.common import (
    BrokersOption,
    UsageError,
    check_output_file,
    console,
    err_console,
    settings,
    user_errors,
)
from flows.settings import Settings
from flows.times import parse_instant


class Target(StrEnum):
    file = "file"
    kafka = "kafka"


def replay(
    max_events: Annotated[
        int, typer.Option("--max", help="How many valid events to emit.")
    ] = 10_000,
    out: Annotated[
        Path | None, typer.Option("--out", help="JSON-lines file to write; '-' for stdout.")
    ] = None,
    rate: Annotated[
        float,
        typer.Option(
            "--rate", help="Events per second of wall-clock time; 0 = as fast as possible."
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for loan order and broken events.")] = 7,
    start: Annotated[
        str | None,
        typer.Option(help="Event time of the first event (ISO-8601); default: ends about now."),
    ] = None,
    spacing_ms: Annotated[
        float, typer.Option(help="Event-time gap between events when --rate is 0.")
    ] = 100.0,
    corrupt: Annotated[
        float, typer.Option(help="Share of events followed by a deliberately broken copy (0-1).")
    ] = 0.0,
    to: Annotated[
        Target, typer.Option("--to", help="Write to a file (--out) or produce to Kafka.")
    ] = Target.file,
    brokers: BrokersOption = None,
    repayments: Annotated[
        bool,
        typer.Option(
            "--repayments",
            help="Also emit each loan's repayment history (derived from its real outcome), "
            "interleaved in event time; --max still counts applications.",
        ),
    ] = False,
    months: Annotated[int, typer.Option(help="Months of repayment history per loan.")] = 12,
    from_s3: Annotated[
        str | None,
        typer.Option(
            "--from-s3",
            help="Instead: replay an archive (s3://bucket/prefix) through the flow into the "
            "store (RISKCTL_STORE; S3 from RISKCTL_S3_*).",
        ),
    ] = None,
    rescore: Annotated[
        bool,
        typer.Option(
            "--rescore",
            help="With --from-s3: score every event with the current model instead of "
            "restoring the scores that were issued.",
        ),
    ] = False,
) -> None:
    """Turn real LendingClub loans into loan-application events (JSON lines), reproducibly."""
    from flows.kafka_admin import create_topics
    from training.dataset import load_lending_club
    from training.repayments import mixed_events
    from training.replay import ReplayPlan, application_events

    if from_s3 is not None:
        from cli.archive_cmd import replay_archive  # the S3 side lives with `riskctl archive`

        replay_archive(from_s3, rescore)
        return
    with user_errors():
        if max_events < 1:
            raise UsageError("--max must be at least 1")
        if rate < 0:
            raise UsageError("--rate must be 0 (as fast as possible) or positive")
        if not 0.0 <= corrupt <= 1.0:
            raise UsageError("--corrupt must be between 0 and 1")
        if not 0 < spacing_ms <= 86_400_000:
            raise UsageError("--spacing-ms must be positive and at most a day (86400000)")
        if to is Target.file and out is None:
            raise UsageError("--out FILE is required ('-' writes to stdout), or use --to kafka")
        # With a wall-clock rate the events are live: their event time is when they are sent.
        spacing = timedelta(seconds=1 / rate) if rate else timedelta(milliseconds=spacing_ms)
        # with a rate the events are live, so --start does not apply
        first = parse_instant(start, "--start") if start is not None and not rate else None
        plan = ReplayPlan(
            max_events=max_events,
            seed=seed,
            start=datetime.now(UTC) if rate else first,
            spacing=spacing,
            corrupt_share=corrupt,
        )
        if months < 1:
            raise UsageError("--months must be at least 1")
        if out is not None and str(out) != "-":
            check_output_file(out, "--out")
        if to is Target.kafka:
            cfg = settings(brokers=brokers)
            # Before the data loads: an unreachable broker is said within seconds.
            create_topics(cfg.kafka)
        data = load_lending_club()
        events = (
            mixed_events(data, plan, months=months)
            if repayments
            else application_events(data, plan)
        )
        total = None if repayments else max_events
        if to is Target.kafka:
            _produce(events, cfg, total, rate)
            return
        assert out is not None
        if str(out) == "-":
            _write(events, sys.stdout.buffer, total, rate, None)
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as sink, _progress() as progress:
            task = progress.add_task("replay", total=total)
            written = _write(events, sink, total, rate, (progress, task))
        console.print(f"wrote {written:,} events to {out}")


def _produce(events: Iterator[bytes], cfg: Settings, total: int | None, rate: float) -> None:
    """Send the events to their topics keyed by loan id; every delivery is checked."""
    from flows.kafka_admin import event_messages, produce

    kafka = cfg.kafka
    with _progress() as progress:
        task = progress.add_task("producing", total=total)

        def advance(sent: int) -> None:
            if sent % 500 == 0:
                progress.update(task, completed=sent if total is None else min(sent, total))

        sent = produce(kafka.brokers, event_messages(kafka, events), rate=rate, on_progress=advance)
    console.print(f"produced {sent:,} events to {kafka.brokers}")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _write(
    events: Iterator[bytes],
    sink: BinaryIO,
    total: int | None,
    rate: float,
    progress: tuple[Progress, TaskID] | None,
) -> int:
    written = 0
    began = time.monotonic()
    for event in events:
        if rate:
            due = began + written / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        sink.write(event + b"\n")
        written += 1
        if progress is not None and written % 1000 == 0:
            progress[0].update(
                progress[1], completed=written if total is None else min(written, total)
            )
    return written


def register(app: typer.Typer) -> None:
    app.command()(replay)
