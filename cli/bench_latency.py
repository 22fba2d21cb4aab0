"""``riskctl bench --latency``: event time -> queryable while a steady rate flows through Kafka.

Real replayed loans are produced at ``rate`` events a second, each stamped with the moment it
is due to be sent, while a tailing flow consumes them into a scratch store. The percentiles
come from the flow's own ``ops_batches`` rows (event time to the return of the write), so the
bench reports what the ops dashboard shows. A warm-up batch first lets the flow start before
the measured stretch.

The measured stretch is produced by a process of its own, as producers are: on a thread of
the flow's process its per-message Python work contended for the interpreter lock with the
flow's and the writer's threads, which made it fall up to 0.8 s behind its schedule and
slowed the flow it measured.
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

from cli.common import console
from flows.connectors.stoppable import StopRequest
from flows.errors import RiskctlError
from flows.jobs import RunOptions, ensure_schema, run_kafka
from flows.kafka_admin import event_messages, produce
from flows.model import ScoringModel
from flows.settings import KafkaSettings, Settings
from flows.store import StoreURL, open_store
from flows.writer import RunStats
from training.dataset import load_lending_club
from training.replay import ReplayPlan, application_events

WARM_UP_EVENTS = 200
# How long the flow may take to start, or to catch up after the last event, before giving up
SETTLE_S = 120.0


@dataclass(frozen=True)
class Latency:
    offered_rate: float
    events: int
    writes: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


class _Driver:
    """Produces the warm-up, then the measured stretch, then stops the flow once it wrote all."""

    def __init__(
        self, kafka: KafkaSettings, rate: float, seconds: float, stop: StopRequest
    ) -> None:
        self._kafka = kafka
        self._rate = rate
        self._seconds = seconds
        self._stop = stop
        self._sent = 0
        self._written = 0
        self._changed = threading.Condition()
        self.measured_from: datetime | None = None
        self.error: BaseException | None = None

    def on_write(self, stats: RunStats) -> None:
        with self._changed:
            self._written = stats.sent
            self._changed.notify_all()

    def run(self) -> None:
        try:
            data = load_lending_club()
            warm_up = application_events(data, ReplayPlan(WARM_UP_EVENTS, seed=1))
            self._sent += produce(
                self._kafka.brokers,
                event_messages(self._kafka, (_renamed(e, "warm-up-") for e in warm_up)),
            )
            self._wait_written()
            self.measured_from, sent = _in_own_process(self._kafka, self._rate, self._seconds)
            self._sent += sent
            self._wait_written()
        except BaseException as exc:  # reported by the command after the flow stopped
            self.error = exc
        finally:
            self._stop.request("bench done")

    def _wait_written(self) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._written >= self._sent, SETTLE_S):
                raise BenchError(
                    f"the flow wrote {self._written:,} of {self._sent:,} events"
                    f" within {SETTLE_S:.0f} s of the last one sent"
                )


def _in_own_process(kafka: KafkaSettings, rate: float, seconds: float) -> tuple[datetime, int]:
    """Produce the measured stretch from a process of its own: when it began, how many sent."""
    # spawn, not fork: this process runs the flow's and librdkafka's threads
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_produce_steadily, args=(kafka, rate, seconds, send), name="bench-producer"
    )
    process.start()
    send.close()
    try:
        # the parent's end sees EOF should the child die without a word
        outcome = receive.recv()
    except EOFError:
        process.join()
        outcome = ("error", f"the producer process ended with exit code {process.exitcode}")
    finally:
        process.join()
        receive.close()
    if outcome[0] == "error":
        raise BenchError(f"producing the measured events failed: {outcome[1]}")
    _done, began_ms, sent = outcome
    return datetime.fromtimestamp(began_ms / 1000, UTC), sent


def _produce_steadily(kafka: KafkaSettings, rate: float, seconds: float, out: Connection) -> None:
    """The producer process: ``rate`` events a second for ``seconds``, each stamped with the
    moment it is due, so a producer falling behind its schedule counts in the latency."""
    try:
        data = load_lending_club()
        began = datetime.now(UTC)
        count = max(1, round(rate * seconds))
        plan = ReplayPlan(count, seed=2, start=began, spacing=timedelta(seconds=1 / rate))
        sent = produce(
            kafka.brokers, event_messages(kafka, application_events(data, plan)), rate=rate
        )
        out.send(("done", int(began.timestamp() * 1000), sent))
    except Exception as exc:  # sent to the parent, which reports it as one line
        out.send(("error", str(exc)))
    finally:
        out.close()


def _renamed(event: bytes, prefix: str) -> bytes:
    """The event under an id of its own: the measured events reuse the replay's ids."""
    record = json.loads(event)
    return json.dumps({**record, "event_id": prefix + record["event_id"]}).encode()


class BenchError(RiskctlError):
    """The latency bench could not complete its measurement."""


# Weighted by each write's scores; a write's percentile stands for its rows, so the figures
# are those of the ops dashboard, not of every event pooled.
_FROM_OPS = """
SELECT count() AS writes, sum(scored) AS events,
    quantileExactWeighted(0.5)(latency_p50_ms, scored) AS p50,
    quantileExactWeighted(0.95)(latency_p95_ms, scored) AS p95,
    quantileExactWeighted(0.99)(latency_p99_ms, scored) AS p99
FROM ops_batches
WHERE scored > 0 AND written_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
"""


def measure_latency(
    cfg: Settings, model: ScoringModel, kafka: KafkaSettings, rate: float, seconds: float
) -> Latency:
    """Drive ``rate`` events a second for ``seconds`` through a flow into a scratch store."""
    with tempfile.TemporaryDirectory(prefix="riskctl-bench-") as scratch:
        run_cfg = replace(cfg, kafka=kafka, store_url=StoreURL.embedded_at(Path(scratch) / "s"))
        ensure_schema(lambda: open_store(run_cfg.store))
        stop = StopRequest()
        driver = _Driver(kafka, rate, seconds, stop)
        producer = threading.Thread(target=driver.run, name="bench-producer", daemon=True)
        producer.start()
        try:
            options = RunOptions(on_write=driver.on_write, stop=stop)
            run_kafka(run_cfg, model, options, until_end=False)
        finally:
            stop.request("bench ended")
            producer.join(seconds + 2 * SETTLE_S)
        if driver.error is not None:
            raise BenchError(f"latency bench failed: {driver.error}") from driver.error
        assert driver.measured_from is not None
        since = int(driver.measured_from.timestamp() * 1000)
        store = open_store(run_cfg.store)
        try:
            [row] = store.query_arrow(_FROM_OPS, {"since": since}).to_pylist()
        finally:
            store.close()
    return Latency(rate, row["events"], row["writes"], row["p50"], row["p95"], row["p99"])


def print_latency(found: Latency, seconds: float) -> None:
    console.print(
        f"riskctl bench --latency: {found.offered_rate:,.0f} events/s offered for {seconds:g} s"
        f" on Kafka, {found.events:,} events in {found.writes:,} writes; event -> queryable"
        f" p50 {found.p50_ms:,.0f} ms, p95 {found.p95_ms:,.0f} ms, p99 {found.p99_ms:,.0f} ms"
    )
