"""Run a dataflow in this process with one or more workers, optionally with recovery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig
from bytewax.run import cli_main

from flows.errors import RiskctlError


class RecoveryError(RiskctlError):
    """The recovery directory is missing or not initialised."""


@dataclass(frozen=True)
class Recovery:
    directory: Path
    snapshot_interval: timedelta = timedelta(seconds=5)


def run(flow: Dataflow, workers: int = 1, recovery: Recovery | None = None) -> None:
    """Run ``flow`` to the end of its input; snapshots every interval when ``recovery`` is set."""
    if recovery is None:
        cli_main(flow, workers_per_process=workers)
        return
    if not any(recovery.directory.glob("part-*.sqlite3")):
        raise RecoveryError(
            f"recovery directory {recovery.directory} is not initialised; "
            "create it with `riskctl recovery init`"
        )
    cli_main(
        flow,
        workers_per_process=workers,
        epoch_interval=recovery.snapshot_interval,
        recovery_config=RecoveryConfig(str(recovery.directory)),
    )
