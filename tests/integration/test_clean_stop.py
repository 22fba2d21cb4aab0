"""SIGTERM and SIGINT stop a real `riskctl run` process cleanly: the batch in hand is stored,
one line says so, the exit is 0 (SIGTERM) or 130 (SIGINT), and a rerun then leaves every table
and view equal to an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.jobs import run_files
from flows.model import ScoringModel
from flows.settings import Settings
from flows.store import StoreURL
from tests.store_compare import assert_same, fingerprint, journal_entries
from training.dataset import LendingClub
from training.replay import ReplayPlan, application_events

LOANS = 6_000
TIMEOUT_S = 120


@pytest.fixture
def events(lending_club: LendingClub, tmp_path: Path) -> Path:
    plan = ReplayPlan(
        max_events=LOANS, seed=3, corrupt_share=0.02, start=datetime(2024, 5, 1, tzinfo=UTC)
    )
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(e + b"\n" for e in application_events(lending_club, plan)))
    return path


def run_command(settings: Settings, store: StoreURL, events: Path) -> list[str]:
    return [
        sys.executable, "-m", "cli.main", "run", "--input", str(events),
        "--home", str(settings.home), "--store", store.reveal(), "--batch-size", "200",
        "--log-batches",
    ]  # fmt: skip


def stopped_run(command: list[str], sig: signal.Signals) -> tuple[int, int, str]:
    """Start the run, signal it after its first stored batch; exit code, events sent, stderr."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # every batch its own write (no linger), so a signal after the first lands mid-file
        env=dict(os.environ, RISKCTL_SINK_LINGER_MS="0"),
    )
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + TIMEOUT_S
    sent = 0
    try:
        for line in process.stdout:
            assert time.monotonic() < deadline, "the run did not start in time"
            if line.startswith("{"):
                sent = json.loads(line)["sent"]
                process.send_signal(sig)
                break
        for line in process.stdout:  # every batch it still wrote
            if line.startswith("{"):
                sent = json.loads(line)["sent"]
        process.wait(timeout=TIMEOUT_S)
        return process.returncode, sent, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_signal_stops_the_run_cleanly_and_a_rerun_completes_it(
    settings: Settings,
    model: ScoringModel,
    events: Path,
    tmp_path: Path,
    sig: signal.Signals,
    code: int,
) -> None:
    total = sum(1 for line in events.read_bytes().splitlines() if line.strip())
    run_files([events], settings, model)
    reference = fingerprint(settings.store)

    store = StoreURL.embedded_at(tmp_path / "stopped")
    exit_code, sent, stderr = stopped_run(run_command(settings, store, events), sig)
    assert exit_code == code
    assert stderr.strip().splitlines() == [
        f"stopped by {sig.name}: everything read was stored; run again to continue"
    ]
    assert 0 < sent < total  # it stopped mid-file
    assert journal_entries(store) == 0  # nothing left half written

    rerun = subprocess.run(
        [c for c in run_command(settings, store, events) if c != "--log-batches"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert_same(fingerprint(store), reference)
