"""Whole runs assembled from the pieces: files or Kafka through the dataflow into a store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bytewax.connectors.kafka import KafkaSink
from bytewax.inputs import FixedPartitionedSource

from flows.connectors.file_source import JsonLinesSource
from flows.connectors.kafka_input import check_brokers, kafka_batches
from flows.connectors.loan_history import LoanHistory
from flows.connectors.stoppable import StoppableSource, StopRequest
from flows.connectors.store_sink import StoreSink
from flows.dataflow import Inputs, build_flow, source_input
from flows.errors import RiskctlError
from flows.live_scoring import LiveScorer
from flows.model import ChampionWatch, ScoringModel
from flows.runner import Cluster, Recovery, run
from flows.scoring import BatchScorer, RawBatch
from flows.settings import Settings
from flows.store import Store, open_store, parse_store_url
from flows.store.migrations import migrate
from flows.writer import RetryPolicy, RunStats

# How long a Kafka run waits for the brokers to answer before it fails.
KAFKA_CONNECT_TIMEOUT_S = 15.0


class LayoutError(RiskctlError):
    """The run's layout does not fit its store."""


@dataclass(frozen=True)
class RunOptions:
    workers: int = 1
    recovery: Recovery | None = None
    cluster: Cluster | None = None
    retry: RetryPolicy | None = None
    on_write: Callable[[RunStats], None] = lambda _stats: None
    store_factory: Callable[[str], Store] = open_store
    # The behavioural model: with it, repayments move per-loan state and get a live PD.
    live_model: ScoringModel | None = None
    # Called with a store failure that ends the run, before it is raised into Bytewax.
    on_store_failure: Callable[[RiskctlError], None] = lambda _error: None
    # Hot reload: score each batch with the champion this watch names at the batch's start.
    watch: ChampionWatch | None = None


def ensure_schema(store_url: str) -> int:
    """Apply pending migrations; returns how many were applied."""
    store = open_store(store_url)
    try:
        return len(migrate(store))
    finally:
        store.close()


def _run(
    inputs: Callable[[StopRequest], Inputs],
    settings: Settings,
    model: ScoringModel,
    options: RunOptions,
    *,
    kafka_out: bool,
    flow_id: str = "riskctl",
) -> RunStats:
    if options.cluster is not None and parse_store_url(settings.store).embedded:
        raise LayoutError(
            "the embedded chDB store belongs to one process; several processes need a "
            "ClickHouse server (--store http://user:password@host:8123/db), or use --workers "
            "for several workers in this process"
        )
    if options.cluster is None or options.cluster.process_id == 0:
        ensure_schema(settings.store)
    stats = RunStats()
    stop = StopRequest()
    kafka = settings.kafka
    # Loans this run meets first are brought up to date from what earlier runs stored.
    history = (
        None
        if options.live_model is None
        else LoanHistory(
            lambda: options.store_factory(settings.store),
            datetime.now(UTC),
            options.on_store_failure,
        )
    )
    flow = build_flow(
        inputs(stop),
        StoreSink(
            settings.store,
            stats,
            partitions=options.workers
            * (1 if options.cluster is None else len(options.cluster.addresses)),
            retry=options.retry or RetryPolicy(deadline_s=settings.store_deadline_s),
            kafka_brokers=kafka.brokers if kafka_out else None,
            on_write=options.on_write,
            store_factory=options.store_factory,
            flow_id=flow_id,
            on_failure=options.on_store_failure,
        ),
        BatchScorer(
            model, settings, track_loans=options.live_model is not None, watch=options.watch
        ),
        live=None if options.live_model is None else LiveScorer(options.live_model, settings),
        dead_letter_sink=KafkaSink(kafka.brokers.split(","), kafka.dead_letter_topic)
        if kafka_out
        else None,
        flow_id=flow_id,
        history=history,
    )
    try:
        run(
            flow,
            workers=options.workers,
            recovery=options.recovery,
            cluster=options.cluster,
            stop=stop,
        )
    finally:
        if history is not None:
            history.close()
    stats.stopped_by = stop.reason
    return stats


def run_source(
    source: FixedPartitionedSource[RawBatch, Any],
    settings: Settings,
    model: ScoringModel,
    options: RunOptions | None = None,
    *,
    flow_id: str = "riskctl",
) -> RunStats:
    """Score everything a raw-batch source yields into the settings' store."""

    def inputs(stop: StopRequest) -> Inputs:
        return source_input(StoppableSource(source, stop))

    return _run(inputs, settings, model, options or RunOptions(), kafka_out=False, flow_id=flow_id)


def run_files(
    paths: list[Path],
    settings: Settings,
    model: ScoringModel,
    options: RunOptions | None = None,
) -> RunStats:
    """Score every event in ``paths`` into the settings' store; returns this run's counters."""
    options = options or RunOptions()
    if options.recovery is not None:
        options = replace(options, recovery=files_recovery(options.recovery, paths))
    source = JsonLinesSource(paths, settings.batch_size, max_bytes=settings.max_payload_bytes)
    return run_source(source, settings, model, options)


def files_recovery(recovery: Recovery, paths: list[Path]) -> Recovery:
    """The recovery snapshots of one set of input files, apart from other sets' snapshots.

    Bytewax resumes a source only with every partition (file name) it snapshotted, so a run
    over other files could not use the same directory; loan state made by runs over other files
    reaches this one through the store (see flows.connectors.loan_history)."""
    names = "\0".join(sorted(path.name for path in paths))
    digest = hashlib.sha256(names.encode()).hexdigest()[:16]
    return replace(recovery, directory=recovery.directory / f"files-{digest}")


def run_kafka(
    settings: Settings,
    model: ScoringModel,
    options: RunOptions | None = None,
    *,
    until_end: bool = False,
) -> RunStats:
    """Consume the applications topic into the store; dead letters also go to their topic.

    With ``until_end`` the run stops once every partition has been read to its end.
    """
    kafka = settings.kafka
    options = options or RunOptions()
    topics = [kafka.applications_topic]
    if options.live_model is not None:
        topics.append(kafka.repayments_topic)
    check_brokers(kafka.brokers, topics, KAFKA_CONNECT_TIMEOUT_S)

    def inputs(stop: StopRequest) -> Inputs:
        return lambda flow: kafka_batches(flow, kafka, topics, tail=not until_end, stop=stop)

    return _run(inputs, settings, model, options, kafka_out=True)
