"""``riskctl bench --probe``: what the writer's de-duplication probe costs as the store fills.

Real replayed loans are scored and written batch by batch into a scratch store; before each
write the probe the writer makes (conflicts in raw_events, then repeats in scored_events, by
event time through event_keys) is timed, next to the probe by id alone that it replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from rich.table import Table

from cli.common import console
from flows.batches import ApplicationBatch, RawBatch
from flows.duplicates import event_span_ms, split_conflicts
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
    by_time_ms: float
    by_id_ms: float


def _ms(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return (time.perf_counter() - began) * 1000


def by_time(store: Store, scored: ApplicationBatch) -> None:
    """The writer's probe: conflicts in raw_events, repeats in scored_events, by event time."""
    split_conflicts(store, scored.raw)
    keys = scored.scored.column("event_id").combine_chunks()
    store.keys_in_time("scored_events", keys, *event_span_ms(scored.scored))


def by_id(store: Store, scored: ApplicationBatch) -> None:
    """The probe before event_keys: every stored id of both tables is read."""
    for table in ("raw_events", "scored_events"):
        store.existing_keys(table, "event_id", scored.raw.column("event_id").combine_chunks())


def _sample(open_: Callable[[], Store], stored: int, scored: ApplicationBatch) -> ProbeSample:
    """Both probes for the next batch, the best of three each (the machine is shared)."""
    store = open_()
    try:
        return ProbeSample(
            stored,
            min(_ms(lambda: by_time(store, scored)) for _ in range(3)),
            min(_ms(lambda: by_id(store, scored)) for _ in range(3)),
        )
    finally:
        store.close()


def probe_costs(
    cfg: Settings, model: ScoringModel, events: int, samples: int, scratch: Path
) -> list[ProbeSample]:
    """The probe's cost before ``samples`` evenly spaced writes of ``events`` in all."""
    url = StoreURL.embedded_at(scratch / "store")

    def open_() -> Store:
        return open_store(url)

    ensure_schema(open_)
    scorer = BatchScorer(model, cfg)
    size = cfg.batch_size
    batches = -(-events // size)
    every = max(1, batches // max(1, samples - 1))
    payloads = application_events(load_lending_club(), ReplayPlan(events))
    writer = IdempotentWriter(open_, RunStats())
    found: list[ProbeSample] = []
    stored = 0
    try:
        for number in range(batches):
            chunk = list(islice(payloads, size))
            batch = RawBatch([f"probe:{stored + i}" for i in range(len(chunk))], chunk)
            scored = scorer(batch)
            if number % every == 0 or number == batches - 1:
                writer.close()  # the writer holds the embedded store; measure on our own handle
                found.append(_sample(open_, stored, scored))
            writer.write([scored])
            stored += len(chunk)
    finally:
        writer.close()
    return found


def print_probe_costs(found: list[ProbeSample], batch_size: int) -> None:
    title = f"riskctl bench --probe: de-duplication probe per {batch_size:,}-event batch"
    table = Table(title=title)
    table.add_column("rows stored", justify="right")
    table.add_column("by event time, ms", justify="right")
    table.add_column("by id alone, ms", justify="right")
    for sample in found:
        table.add_row(f"{sample.stored:,}", f"{sample.by_time_ms:.1f}", f"{sample.by_id_ms:.1f}")
    console.print(table)
