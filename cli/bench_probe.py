"""``riskctl bench --probe``: what a store write costs as the store fills, with the writer's
in-memory key prefilter and without it (asking the store about every key).

Real replayed loans (a new loan id each pass over the data set, so every event id is new) are
scored and written batch by batch into a scratch store by a writer with the prefilter. At each
sample point the key check of the next batch is timed (best of three, writing nothing) with
the key set and asking about every key; then that batch is written by a second writer on the
same store that asks about every key, and the one after by the first writer: both real writes
of new events, timed whole (key check, journal, tables and views). Last, a new writer connects
to the filled store: how long its load takes and how much memory its key sets hold.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from rich.table import Table

from cli.common import console
from flows.batches import ApplicationBatch, RawBatch
from flows.jobs import ensure_schema
from flows.model import ScoringModel
from flows.scoring import BatchScorer
from flows.settings import Settings
from flows.store import Store, StoreURL, open_store
from flows.writer import IdempotentWriter, RunStats
from training.dataset import load_lending_club
from training.replay import ReplayPlan, application_events


@dataclass(frozen=True)
class ProbeSample:
    stored: int
    check_prefilter_ms: float  # the key check alone, best of three
    check_every_key_ms: float
    write_prefilter_ms: float  # one whole write
    write_every_key_ms: float


@dataclass(frozen=True)
class ProbeReport:
    batch_size: int
    samples: list[ProbeSample]
    stored: int
    load_s: float
    keys: int
    memory_bytes: int


def _timed_ms(writer: IdempotentWriter, batch: ApplicationBatch) -> float:
    began = time.perf_counter()
    result = writer.write([batch])
    elapsed = (time.perf_counter() - began) * 1000
    if result.scored != batch.scored.num_rows:
        raise AssertionError("a new event was not written")  # the bench would time nothing
    return elapsed


def _check_ms(writer: IdempotentWriter, batch: ApplicationBatch) -> float:
    """The key check of a write of ``batch``, best of three (the machine is shared)."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        fresh = writer.fresh_rows([batch])
        best = min(best, (time.perf_counter() - began) * 1000)
    if fresh.get("scored_events", 0) != batch.scored.num_rows:
        raise AssertionError("a new event was found stored")
    return best


def _batches(cfg: Settings, model: ScoringModel, events: int) -> Iterator[ApplicationBatch]:
    scorer = BatchScorer(model, cfg)
    payloads = application_events(load_lending_club(), ReplayPlan(events))
    number = 0
    while chunk := list(islice(payloads, cfg.batch_size)):
        yield scorer(RawBatch([f"probe:{number}:{i}" for i in range(len(chunk))], chunk))
        number += 1


def probe_costs(
    cfg: Settings, model: ScoringModel, events: int, samples: int, scratch: Path
) -> ProbeReport:
    """Fill a scratch store with ``events``; time writes at ``samples`` evenly spaced points."""
    url = StoreURL.embedded_at(scratch / "store")

    def open_() -> Store:
        return open_store(url)

    ensure_schema(open_)
    batches = -(-events // cfg.batch_size)
    every = max(2, batches // max(1, samples - 1))
    filtered = IdempotentWriter(open_, RunStats())
    every_key = IdempotentWriter(open_, RunStats(), prefilter=False)
    found: list[ProbeSample] = []
    stored = 0
    pending: tuple[int, float, float, float] | None = None  # the sample's first half
    try:
        filtered.connect()
        for number, batch in enumerate(_batches(cfg, model, events)):
            if number % every == 0 and number + 1 < batches:
                checks = (_check_ms(filtered, batch), _check_ms(every_key, batch))
                pending = (stored, *checks, _timed_ms(every_key, batch))
            elif pending is not None:
                at, check_filtered, check_every, write_every = pending
                write_filtered = _timed_ms(filtered, batch)
                found.append(
                    ProbeSample(at, check_filtered, check_every, write_filtered, write_every)
                )
                pending = None
            else:
                filtered.write([batch])
            stored += batch.raw.num_rows
    finally:
        filtered.close()
        every_key.close()
    reader = IdempotentWriter(open_, RunStats())
    try:
        began = time.perf_counter()
        reader.connect()
        load_s = time.perf_counter() - began
        seen = reader.seen
        assert seen is not None
        keys, memory = seen.keys, seen.nbytes
    finally:
        reader.close()
    return ProbeReport(cfg.batch_size, found, stored, load_s, keys, memory)


def print_probe_costs(report: ProbeReport) -> None:
    title = f"riskctl bench --probe: {report.batch_size:,} new events, ms"
    table = Table(title=title)
    table.add_column("rows stored", justify="right")
    table.add_column("key check, key set", justify="right")
    table.add_column("key check, every key", justify="right")
    table.add_column("write, key set", justify="right")
    table.add_column("write, every key", justify="right")
    for s in report.samples:
        table.add_row(
            f"{s.stored:,}",
            f"{s.check_prefilter_ms:,.1f}",
            f"{s.check_every_key_ms:,.1f}",
            f"{s.write_prefilter_ms:,.0f}",
            f"{s.write_every_key_ms:,.0f}",
        )
    console.print(table)
    console.print(
        f"key set load at {report.stored:,} rows: {report.load_s:.2f} s, {report.keys:,} key"
        f" hashes in {report.memory_bytes / 2**20:,.1f} MiB",
        highlight=False,
    )
