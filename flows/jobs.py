"""Whole runs assembled from the pieces: files or Kafka through the dataflow into a store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bytewax.connectors.kafka import KafkaSink
from bytewax.inputs import FixedPartitionedSource

from flows.batches import RawBatch
from flows.clock import utc_now
from flows.connectors.file_source import JsonLinesSource
from flows.connectors.kafka_input import check_brokers, kafka_batches
from flows.connectors.stoppable import StoppableSource, StopRequest
from flows.connectors.store_sink import Linger, StoreSink
from flows.dataflow import Inputs, build_flow, source_input
from flows.errors import RiskctlError
from flows.lag import ConsumerLag, LagProbe
from flows.live_scoring import LiveScorer
from flows.model import ChampionWatch, ScoringModel
from flows.ops import OpsRecorder
from flows.runner import Cluster, Recovery, run
from flows.scoring import BatchScorer
from flows.settings import Settings
from flows.shadow import ChallengerWatch
from flows.steps.loan_history import LoanHistory
from flows.store import Opener, Store, StoreURL, open_store
from flows.store.migrations import migrate
from flows.writer import RetryPolicy, RunStats

if TYPE_CHECKING:
    from flows.archive.layout import Location
    from flows.archive.s3 import S3Client

# How long a Kafka run waits for the brokers to answer before it fails.
KAFKA_CONNECT_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class RunOptions:
    workers: int = 1
    recovery: Recovery | None = None
    cluster: Cluster | None = None
    retry: RetryPolicy | None = None
    on_write: Callable[[RunStats], None] = lambda _stats: None
    # Opens the run's store; a test puts a store that fails here.
    store_factory: Callable[[StoreURL], Store] = open_store
    # The behavioural model: with it, repayments move per-loan state and get a live PD.
    live_model: ScoringModel | None = None
    # Called with a store failure that ends the run, before it is raised into Bytewax.
    on_store_failure: Callable[[RiskctlError], None] = lambda _error: None
    # Hot reload: score each batch with the champion this watch names at the batch's start.
    watch: ChampionWatch | None = None
    # Hot reload of the behavioural model: live PDs from the champion this watch names.
    live_watch: ChampionWatch | None = None
    # Shadow scoring: a challenger scores every application too, into shadow_scores.
    shadow: ScoringModel | None = None
    # Hot reload of the challenger: each batch is shadowed by the one this watch names.
    shadow_watch: ChallengerWatch | None = None
    # Ends a tailing run when requested from another thread (signals request it too).
    stop: StopRequest | None = None


def ensure_schema(open_: Opener) -> int:
    """Apply pending migrations; returns how many were applied."""
    store = open_()
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
    if options.cluster is not None:
        settings.store.check_shared()

    def open_() -> Store:
        return options.store_factory(settings.store)

    if options.cluster is None or options.cluster.process_id == 0:
        ensure_schema(open_)
    stats = RunStats()
    stop = options.stop or StopRequest()
    kafka = settings.kafka
    # Loans this run meets first are brought up to date from what earlier runs stored.
    history = (
        None
        if options.live_model is None
        else LoanHistory(
            open_,
            utc_now(),
            options.on_store_failure,
        )
    )
    flow = build_flow(
        inputs(stop),
        StoreSink(
            open_,
            stats,
            partitions=options.workers
            * (1 if options.cluster is None else len(options.cluster.addresses)),
            retry=options.retry or RetryPolicy(deadline_s=settings.store_deadline_s),
            linger=Linger(settings.sink_linger_ms / 1000, settings.sink_linger_events),
            observe=lambda worker: OpsRecorder(
                flow_id,
                worker,
                ConsumerLag(flow_id, LagProbe(kafka.brokers)) if kafka_out else None,
            ),
            on_write=options.on_write,
            on_failure=options.on_store_failure,
            snapshots=options.recovery is not None,
        ),
        BatchScorer(
            model,
            settings,
            track_loans=options.live_model is not None,
            watch=options.watch,
            shadow=options.shadow,
            shadow_watch=options.shadow_watch,
        ),
        live=None
        if options.live_model is None
        else LiveScorer(options.live_model, settings, watch=options.live_watch),
        dead_letter_sink=KafkaSink(kafka.brokers.split(","), kafka.dead_letter_topic)
        if kafka_out
        else None,
        flow_id=flow_id,
        history=history,
        snapshots=options.recovery is not None,
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
    reaches this one through the store (see flows.steps.loan_history)."""
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


@dataclass(frozen=True)
class Rebuilt:
    stats: RunStats
    # issued rows restored as archived, per table (empty with rescore)
    restored: dict[str, int]


def run_archive(
    settings: Settings,
    model: ScoringModel,
    location: Location,
    client_factory: Callable[[], S3Client],
    on_write: Callable[[RunStats], None] = lambda _stats: None,
    *,
    rescore: bool = False,
) -> Rebuilt:
    """Rebuild the settings' store from the archive under ``location``, e.g. a lost store.

    The issued scores and decisions are restored first, as they were issued (model version,
    PD, processed_at); then the events and dead letters are replayed through the flow, whose
    score rows for events already restored are skipped by the writer's key check, so only
    events with no archived score are scored, by ``model``. With ``rescore`` nothing is
    restored and ``model`` scores every event.
    """
    # Imported here: the archive package loads boto3, which every other run would pay for
    # (about 0.4 s of each `riskctl run`).
    from flows.archive.issued import restore_issued
    from flows.archive.layout import ArchiveError
    from flows.archive.read import list_archive
    from flows.connectors.archive_source import ArchiveSource

    files = list_archive(client_factory(), location)
    if not files:
        raise ArchiveError(f"no archived events under {location.uri()}")
    options = RunOptions(on_write=on_write)
    restored: dict[str, int] = {}
    if not rescore:
        store = options.store_factory(settings.store)
        try:
            migrate(store)
            restored = restore_issued(store, client_factory(), location)
        finally:
            store.close()
    source = ArchiveSource(files, location, client_factory, settings.batch_size)
    stats = run_source(source, settings, model, options, flow_id="riskctl-rebuild")
    return Rebuilt(stats, restored)
