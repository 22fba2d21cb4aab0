"""``riskctl bench``: events/s of the embedded pipeline, end to end and per stage."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.common import BrokersOption, HomeOption, UsageError, console, settings, user_errors
from flows.errors import RiskctlError
from flows.settings import KafkaSettings, Settings
from flows.store import Store, StoreURL, open_store

if TYPE_CHECKING:
    from flows.batches import ApplicationBatch
    from flows.jobs import RunOptions
    from flows.model import ScoringModel
    from flows.writer import RunStats


def _rate(count: int, action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return count / (time.perf_counter() - began)


def bench(
    events: Annotated[int, typer.Option("--events", "-n", help="How many events.")] = 200_000,
    batch_size: Annotated[int | None, typer.Option(help="Events per micro-batch.")] = None,
    workers: Annotated[int, typer.Option(help="Bytewax workers for the end-to-end run.")] = 1,
    kafka: Annotated[
        bool, typer.Option("--kafka", help="Measure from a pre-filled Kafka topic instead.")
    ] = False,
    partitions: Annotated[int, typer.Option(help="Partitions of the --kafka bench topic.")] = 4,
    brokers: BrokersOption = None,
    api: Annotated[
        bool,
        typer.Option("--api", help="Drive a running `riskctl serve` at --url instead."),
    ] = False,
    url: Annotated[str, typer.Option(help="The decision service (--api).")] = (
        "http://127.0.0.1:8000"
    ),
    rate: Annotated[
        float, typer.Option(help="Single decisions (--api) or events (--latency) a second.")
    ] = 500.0,
    duration: Annotated[
        float,
        typer.Option("--duration", "--seconds", help="Seconds per --api or --latency measurement."),
    ] = 10.0,
    api_batch: Annotated[int, typer.Option(help="Applications per --api batch.")] = 1000,
    clients: Annotated[int, typer.Option(help="Concurrent batch clients (--api).")] = 2,
    latency: Annotated[
        bool,
        typer.Option(
            "--latency",
            help="Event time -> queryable percentiles at a steady --rate on Kafka for --seconds.",
        ),
    ] = False,
    probe: Annotated[
        bool,
        typer.Option(
            "--probe",
            help="Time store writes as --events fill a scratch store, with and without the"
            " writer's key prefilter.",
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Measure the pipeline on real replayed loans: file -> dataflow -> chDB, or from Kafka."""
    from flows.jobs import RunOptions, run_files
    from flows.model import load_model
    from training.dataset import load_lending_club
    from training.replay import ReplayPlan, application_events

    if api:
        _bench_api(url, rate, duration, api_batch, clients)
        return
    with user_errors():
        if events < 1000:
            raise UsageError("--events must be at least 1000 for a meaningful rate")
        if workers < 1 or partitions < 1:
            raise UsageError("--workers and --partitions must be at least 1")
        cfg = settings(home, brokers=brokers, batch_size=batch_size)
        model = load_model(cfg.models_dir, kind=cfg.model_kind)
        if kafka:
            _bench_kafka(cfg, model, events, workers, partitions)
            return
        if latency:
            _bench_latency(cfg, model, partitions, rate, duration)
            return
        if probe:
            _bench_probe(cfg, model, events)
            return
        with tempfile.TemporaryDirectory(prefix="riskctl-bench-") as scratch:
            workdir = Path(scratch)
            path = workdir / "events.jsonl"
            payloads = list(application_events(load_lending_club(), ReplayPlan(events)))
            path.write_bytes(b"\n".join(payloads) + b"\n")
            bench_cfg = replace(cfg, store_url=StoreURL.embedded_at(workdir / "store"))
            rows = _stage_rates(payloads, bench_cfg, model)
            e2e_cfg = replace(cfg, store_url=StoreURL.embedded_at(workdir / "e2e"))
            stats = run_files([path], e2e_cfg, model, RunOptions(workers=workers))
        _print_rates(f"riskctl bench: {events:,} events, batch {cfg.batch_size:,}", rows)
        _print_run("end-to-end", stats, workers, "file")
        live_model = _live_model(cfg)
        if live_model is not None:
            mixed = _bench_mixed(cfg, model, live_model, events, workers)
            _print_run("mixed end-to-end (applications + repayments)", mixed, workers, "file")


def _bench_probe(cfg: Settings, model: ScoringModel, events: int) -> None:
    from cli.bench_probe import print_probe_costs, probe_costs

    with tempfile.TemporaryDirectory(prefix="riskctl-bench-") as scratch:
        report = probe_costs(cfg, model, events, samples=6, scratch=Path(scratch))
    print_probe_costs(report)


def _bench_latency(
    cfg: Settings, model: ScoringModel, partitions: int, rate: float, seconds: float
) -> None:
    from cli.bench_latency import measure_latency, print_latency

    if rate <= 0 or seconds <= 0:
        raise UsageError("--rate and --seconds must be positive")
    topics = _fresh_topics(cfg, partitions, "latency")
    print_latency(measure_latency(cfg, model, topics, rate, seconds), seconds)


def _bench_api(url: str, rate: float, duration: float, batch: int, clients: int) -> None:
    """Single decisions at ``rate`` and batches as fast as they come, from real loans."""
    import os

    from cli.api_bench import run_all
    from training.dataset import load_lending_club
    from training.replay import ReplayPlan, application_events

    with user_errors():
        token = os.environ.get("RISKCTL_API_TOKEN", "")
        if not token:
            raise UsageError("set RISKCTL_API_TOKEN to the service's token for --api")
        if rate <= 0 or duration <= 0 or batch < 1 or clients < 1:
            raise UsageError("--rate, --duration, --api-batch and --clients must be positive")
        _reachable(url)
        payloads = list(application_events(load_lending_club(), ReplayPlan(max(batch * 4, 5000))))
        runs = run_all(url.rstrip("/"), token, payloads, rate=rate, duration_s=duration,
                       batch_size=batch, clients=clients)  # fmt: skip
    console.print(f"riskctl bench --api: {url}, {duration:g} s each, real loans")
    for run in runs:
        console.print(
            f"{run.label}: {run.requests_per_s:,.0f} requests/s, {run.decisions_per_s:,.0f} "
            f"decisions/s; latency p50 {run.percentile_ms(50):.2f} ms, p95 "
            f"{run.percentile_ms(95):.2f} ms, p99 {run.percentile_ms(99):.2f} ms; "
            f"{run.errors:,} errors of {run.requests:,} requests",
            highlight=False,
        )
    if any(run.errors for run in runs):
        raise typer.Exit(1)


def _reachable(url: str) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/healthz", timeout=5):
            pass
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RiskctlError(f"no decision service answers at {url}: {exc}") from None


def _print_rates(title: str, rows: list[tuple[str, float]]) -> None:
    table = Table(title=title)
    table.add_column("stage")
    table.add_column("events/s", justify="right")
    for name, rate in rows:
        table.add_row(name, f"{rate:,.0f}")
    console.print(table)


def _print_run(label: str, stats: RunStats, workers: int, source: str) -> None:
    console.print(
        f"{label}: {stats.sent / stats.elapsed_s:,.0f} events/s ({stats.sent:,} events in "
        f"{stats.elapsed_s:.2f} s, {workers} worker(s), {source} -> dataflow -> chDB)"
    )


def _live_model(cfg: Settings) -> ScoringModel | None:
    """The behavioural model for the mixed run, or ``None`` (said) when none is trained."""
    from flows.model import load_live_model

    live_model = load_live_model(cfg.models_dir)
    if live_model is None:
        console.print("mixed run skipped: no behavioural model (`riskctl train-behaviour`)")
    return live_model


def _mixed_payloads(events: int) -> list[bytes]:
    """Applications interleaved with their repayment histories, ``events`` in all."""
    from training.dataset import load_lending_club
    from training.repayments import mixed_events
    from training.replay import ReplayPlan

    # About 11 repayments per loan over 12 months: replay enough loans to reach ``events``.
    plan = ReplayPlan(max_events=max(events // 12, 100))
    return list(islice(mixed_events(load_lending_club(), plan), events))


def _bench_mixed(
    cfg: Settings, model: ScoringModel, live_model: ScoringModel, events: int, workers: int
) -> RunStats:
    """Applications interleaved with their repayment histories, ``events`` in all."""
    from flows.jobs import RunOptions, run_files

    payloads = _mixed_payloads(events)
    with tempfile.TemporaryDirectory(prefix="riskctl-bench-") as scratch:
        path = Path(scratch) / "mixed.jsonl"
        path.write_bytes(b"\n".join(payloads) + b"\n")
        run_cfg = replace(cfg, store_url=StoreURL.embedded_at(Path(scratch) / "store"))
        options = RunOptions(workers=workers, live_model=live_model)
        return run_files([path], run_cfg, model, options)


def _fresh_topics(cfg: Settings, partitions: int, name: str) -> KafkaSettings:
    from flows.kafka_admin import create_topics

    # unique per run: two benches started in the same second on one broker must not share topics
    tag = f"{name}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
    kafka = replace(
        cfg.kafka,
        applications_topic=f"bench-applications-{tag}",
        repayments_topic=f"bench-repayments-{tag}",
        dead_letter_topic=f"bench-dead-letters-{tag}",
        partitions=partitions,
    )
    create_topics(kafka)
    return kafka


def _kafka_end_to_end(
    cfg: Settings, model: ScoringModel, kafka: KafkaSettings, options: RunOptions
) -> RunStats:
    from flows.jobs import ensure_schema, run_kafka

    with tempfile.TemporaryDirectory(prefix="riskctl-bench-") as scratch:
        run_cfg = replace(cfg, kafka=kafka, store_url=StoreURL.embedded_at(Path(scratch) / "store"))
        ensure_schema(lambda: open_store(run_cfg.store))
        return run_kafka(run_cfg, model, options, until_end=True)


def _bench_kafka(
    cfg: Settings, model: ScoringModel, events: int, workers: int, partitions: int
) -> None:
    from flows.jobs import RunOptions
    from flows.kafka_admin import event_messages, produce
    from training.dataset import load_lending_club
    from training.replay import ReplayPlan, application_events

    data = load_lending_club()
    kafka = _fresh_topics(cfg, partitions, "apps")
    began = time.perf_counter()
    produce(kafka.brokers, event_messages(kafka, application_events(data, ReplayPlan(events))))
    produce_rate = events / (time.perf_counter() - began)
    consume_rate = _bare_consumer_rate(kafka.brokers, kafka.applications_topic, partitions, events)
    stats = _kafka_end_to_end(cfg, model, kafka, RunOptions(workers=workers))
    _print_rates(
        f"riskctl bench --kafka: {events:,} events, {partitions} partitions",
        [
            ("produce (acks=all, delivery checked)", produce_rate),
            ("bare confluent-kafka consumer", consume_rate),
        ],
    )
    _print_run("end-to-end", stats, workers, "Kafka")
    live_model = _live_model(cfg)
    if live_model is None:
        return
    mixed_topics = _fresh_topics(cfg, partitions, "mixed")
    produce(mixed_topics.brokers, event_messages(mixed_topics, _mixed_payloads(events)))
    options = RunOptions(workers=workers, live_model=live_model)
    mixed = _kafka_end_to_end(cfg, model, mixed_topics, options)
    _print_run("mixed end-to-end (applications + repayments)", mixed, workers, "Kafka")


def _bare_consumer_rate(brokers: str, topic: str, partitions: int, expected: int) -> float:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": "riskctl-bench",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = 0
    began = time.perf_counter()
    deadline = time.monotonic() + 300
    try:
        while seen < expected and time.monotonic() < deadline:
            seen += sum(1 for m in consumer.consume(5000, 0.5) if m.error() is None)
    finally:
        consumer.close()
    return seen / (time.perf_counter() - began)


def _stage_rates(
    payloads: list[bytes], cfg: Settings, model: ScoringModel
) -> list[tuple[str, float]]:
    import msgspec

    from flows.batches import RawBatch
    from flows.events import LoanApplication
    from flows.jobs import ensure_schema
    from flows.scoring import BatchScorer, feature_matrix
    from flows.validation import decode_application, decode_events
    from flows.writer import IdempotentWriter, RunStats

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
            "parse + validate (batches)",
            _rate(n, lambda: [decode_events(c, limit) for c in chunks]),
        ),
        (
            "parse + validate (event by event)",
            _rate(n, lambda: [decode_application(p, "b", limit) for p in payloads]),
        ),
        ("features", _rate(n, lambda: feature_matrix(apps))),
        ("ONNX PD (batched)", _rate(n, lambda: model.predict_pd(matrix))),
        ("reason codes", _rate(n, lambda: model.reason_codes(matrix, cfg.reason_codes))),
    ]
    scored: list[ApplicationBatch] = []
    rows.append(
        ("batch scoring, all steps", _rate(n, lambda: scored.extend(scorer(b) for b in batches)))
    )

    def open_() -> Store:
        return open_store(cfg.store)

    ensure_schema(open_)
    writer = IdempotentWriter(open_, RunStats())
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
