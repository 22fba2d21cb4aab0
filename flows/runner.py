"""Run a dataflow in this process: one or more workers, optionally part of a cluster of
processes, optionally with recovery snapshots.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from flows.connectors.stoppable import StopRequest
from flows.errors import RiskctlError

# The store sink's thread makes many short calls that release the GIL (Arrow, chDB); with
# Python's default 5 ms switch interval each one can wait that long behind the scoring thread
# to get it back, which left the writer idle for a third of its time.
SWITCH_INTERVAL_S = 0.001


class ClusterError(RiskctlError):
    """The process/worker layout asked for cannot run."""


@dataclass(frozen=True)
class Recovery:
    """Bytewax recovery: state snapshots in ``directory`` at every epoch of ``interval``."""

    directory: Path
    interval: timedelta = timedelta(seconds=5)

    def prepare(self) -> RecoveryConfig:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not any(self.directory.glob("part-*.sqlite3")):
            init_db_dir(self.directory, 1)
        return RecoveryConfig(str(self.directory), backup_interval=timedelta(0))


@dataclass(frozen=True)
class Cluster:
    """This process's place among ``addresses`` (host:port of every process, in order)."""

    process_id: int
    addresses: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.process_id < len(self.addresses):
            raise ClusterError(
                f"process id {self.process_id} is not one of the {len(self.addresses)} addresses"
            )


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(stop: StopRequest) -> Iterator[None]:
    """SIGINT and SIGTERM request a clean stop (see :mod:`flows.connectors.stoppable`); a
    second one ends the process at once, which the store's journal also survives."""

    def handle(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.requested:
            os.write(2, f"error: {name} again: stopped without finishing\n".encode())
            os._exit(128 + signum)
        stop.request(name)

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals (tests run flows on other threads)
        return
    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(
    flow: Dataflow,
    workers: int = 1,
    recovery: Recovery | None = None,
    cluster: Cluster | None = None,
    stop: StopRequest | None = None,
) -> None:
    """Run ``flow`` until its inputs end (a file's end, or Kafka's end when not tailing), or
    until ``stop`` is requested: SIGINT and SIGTERM request it while the flow runs."""
    if workers < 1:
        raise ClusterError("at least one worker is needed")
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        with stop_on_signals(stop or StopRequest()):
            cli_main(
                flow,
                workers_per_process=workers,
                process_id=None if cluster is None else cluster.process_id,
                addresses=None if cluster is None else list(cluster.addresses),
                epoch_interval=None if recovery is None else recovery.interval,
                recovery_config=None if recovery is None else recovery.prepare(),
            )
    finally:
        sys.setswitchinterval(previous)
