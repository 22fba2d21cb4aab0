"""``riskctl bench``: events/s of the embedded pipeline, end to end and per stage."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.table import Table

from cli.common import HomeOption, UsageError, console, settings, user_errors
from flows.events import LoanApplication
from flows.jobs import RunOptions, ensure_schema, run_files
from flows.model import ScoringModel, load_model
from flows.scoring import BatchScorer, RawBatch, ScoredBatch, feature_matrix
from flows.settings import Settings
from flows.store import open_store
from flows.validation import decode_application
from flows.writer import IdempotentWriter, RunStats
from training.dataset import load_lending_club
from training.replay import ReplayPlan, application_events


def _rate(count: int, action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return count / (time.perf_counter() - began)


def bench(
    events: Annotated[int, typer.Option("--events", "-n", help="How many events.")] = 200_000,
    batch_size: Annotated[int | None, typer.Option(help="Events per micro-batch.")] = None,
    workers: Annotated[int, typer.Option(help="Bytewax workers for the end-to-end run.")] = 1,
    home: HomeOption = None,
) -> None:
    """Measure the embedded pipeline (file -> dataflow -> chDB) on real replayed loans."""
    with user_errors():
        if events < 1000:
            raise UsageError("--events must be at least 1000 for a meaningful rate")
        cfg = settings(home, batch_size=batch_size)
        model = load_model(cfg.models_dir)
        with tempfile.TemporaryDirectory(prefix="riskctl-bench-") as scratch:
            workdir = Path(scratch)
            path = workdir / "events.jsonl"
            payloads = list(application_events(load_lending_club(), ReplayPlan(events)))
            path.write_bytes(b"\n".join(payloads) + b"\n")
            bench_cfg = replace(cfg, store_url=f"chdb://{workdir / 'store'}")
            rows = _stage_rates(payloads, bench_cfg, model)
            e2e_cfg = replace(cfg, store_url=f"chdb://{workdir / 'e2e'}")
            stats = run_files([path], e2e_cfg, model, RunOptions(workers=workers))
        end_to_end = stats.sent / stats.elapsed_s
        table = Table(title=f"riskctl bench: {events:,} events, batch {cfg.batch_size:,}")
        table.add_column("stage")
        table.add_column("events/s", justify="right")
        for name, rate in rows:
            table.add_row(name, f"{rate:,.0f}")
        console.print(table)
        console.print(
            f"end-to-end: {end_to_end:,.0f} events/s ({stats.sent:,} events in "
            f"{stats.elapsed_s:.2f} s, {workers} worker(s), file -> dataflow -> chDB)"
        )


def _stage_rates(
    payloads: list[bytes], cfg: Settings, model: ScoringModel
) -> list[tuple[str, float]]:
    n = len(payloads)
    size = cfg.batch_size
    chunks = [payloads[i : i + size] for i in range(0, n, size)]
    batches = [RawBatch([f"bench:{i}" for i in range(len(c))], c) for c in chunks]
    untyped = msgspec.json.Decoder()
    limit = cfg.max_payload_bytes
    decoded = [decode_application(p, "bench", cfg.max_payload_bytes) for p in payloads]
    apps = [a for a in decoded if isinstance(a, LoanApplication)]
    matrix = feature_matrix(apps)
    scorer = BatchScorer(model, cfg)
    rows = [
        ("raw JSON decode (untyped)", _rate(n, lambda: [untyped.decode(p) for p in payloads])),
        (
            "parse + validate",
            _rate(n, lambda: [decode_application(p, "b", limit) for p in payloads]),
        ),
        ("features", _rate(n, lambda: feature_matrix(apps))),
        ("ONNX PD (batched)", _rate(n, lambda: model.predict_pd(matrix))),
        ("reason codes", _rate(n, lambda: model.reason_codes(matrix, cfg.reason_codes))),
    ]
    scored: list[ScoredBatch] = []
    rows.append(
        ("batch scoring, all steps", _rate(n, lambda: scored.extend(scorer(b) for b in batches)))
    )
    ensure_schema(cfg.store)
    writer = IdempotentWriter(lambda: open_store(cfg.store), RunStats())
    try:
        rows.append(
            (
                "store write (3 tables + views)",
                _rate(n, lambda: [writer.write([s]) for s in scored]),
            )
        )
    finally:
        writer.close()
    return rows


def register(app: typer.Typer) -> None:
    app.command()(bench)
