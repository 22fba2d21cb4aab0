"""Whole runs assembled from the pieces: JSON-lines files through the dataflow into a store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flows.connectors.file_source import JsonLinesSource
from flows.connectors.store_sink import StoreSink
from flows.dataflow import build_flow
from flows.model import ScoringModel
from flows.runner import Recovery, run
from flows.scoring import BatchScorer
from flows.settings import Settings
from flows.store import open_store
from flows.store.migrations import migrate
from flows.writer import RetryPolicy, RunStats


def ensure_schema(store_url: str) -> int:
    """Apply pending migrations; returns how many were applied."""
    store = open_store(store_url)
    try:
        return len(migrate(store))
    finally:
        store.close()


def run_files(
    paths: list[Path],
    settings: Settings,
    model: ScoringModel,
    *,
    workers: int = 1,
    recovery: Recovery | None = None,
    retry: RetryPolicy | None = None,
    on_write: Callable[[RunStats], None] = lambda _stats: None,
) -> RunStats:
    """Score every event in ``paths`` into the settings' store; returns this run's counters."""
    ensure_schema(settings.store)
    stats = RunStats()
    flow = build_flow(
        JsonLinesSource(paths, settings.batch_size),
        StoreSink(settings.store, stats, retry, on_write),
        BatchScorer(model, settings),
    )
    run(flow, workers=workers, recovery=recovery)
    return stats
