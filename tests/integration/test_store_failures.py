"""Store and broker failures end a run with one error line and a non-zero exit within a
bounded time, never a Bytewax panic or a hang: a table dropped from a migrated store, the
store's directory deleted while a run writes to it, a Kafka broker that does not answer.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from flows.settings import Settings
from flows.store import open_store
from flows.store.migrations import migrate
from training.dataset import LendingClub
from training.replay import ReplayPlan, application_events

TIMEOUT_S = 120


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:"), stderr
    return lines[0]


@pytest.fixture
def events(lending_club: LendingClub, tmp_path: Path) -> Path:
    plan = ReplayPlan(max_events=6000, seed=4, start=datetime(2024, 6, 1, tzinfo=UTC))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(e + b"\n" for e in application_events(lending_club, plan)))
    return path


def riskctl(settings: Settings, *args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args, "--home", str(settings.home)]


def test_a_dropped_table_is_reported_by_status_migrate_and_run(
    settings: Settings, events: Path
) -> None:
    db = open_store(settings.store)
    try:
        migrate(db)
        db.command("DROP TABLE dead_letters")
    finally:
        db.close()
    runner = CliRunner()
    store = ["--home", str(settings.home), "--store", settings.store.reveal()]
    status = runner.invoke(app, ["db", "status", *store])
    assert status.exit_code == 1
    assert "tables or views missing: dead_letters" in status.output
    for args in (["db", "migrate"], ["run", "--input", str(events)]):
        result = subprocess.run(
            riskctl(settings, *args, "--store", settings.store.reveal()),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert result.returncode == 1, args
        assert "dead_letters" in one_error_line(result.stderr)


def test_a_store_directory_deleted_mid_run_ends_it_with_one_line(
    settings: Settings, events: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "doomed"
    command = riskctl(
        settings, "run", "--input", str(events), "--store", f"chdb://{directory}",
        "--batch-size", "200", "--log-batches",
    )  # fmt: skip
    # every batch its own write (no linger), so the run is still writing when the store goes
    env = dict(os.environ, RISKCTL_SINK_LINGER_MS="0")
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if line.startswith("{"):
                # Moved away in one step (the run keeps writing files into it), then deleted.
                directory.rename(tmp_path / "deleted")
                shutil.rmtree(tmp_path / "deleted", ignore_errors=True)
                break
        deleted_at = time.monotonic()
        _out, err = process.communicate(timeout=TIMEOUT_S)
        assert time.monotonic() - deleted_at < 60
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1
    one_error_line(err)
    assert not directory.exists()  # nothing, the journal included, recreated the store


def test_a_dead_broker_fails_the_run_with_one_line(settings: Settings) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    began = time.monotonic()
    result = subprocess.run(
        riskctl(
            settings,
            "run",
            "--source",
            "kafka",
            "--until-end",
            "--brokers",
            f"127.0.0.1:{port}",
            "--store",
            settings.store.reveal(),
        ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "Kafka at" in line and "did not answer" in line
    assert time.monotonic() - began < TIMEOUT_S


# The disk filling up mid-run, on a small tmpfs in a mount namespace of the test's own (no root
# needed where unprivileged user namespaces are allowed; CI runs as root): the first run ends
# with one line and exit 1; after the disk grows, a rerun stores every event exactly once.
DISK_FULL = """
set -u
mount -t tmpfs -o size=4m tmpfs "$DISK"
"$@" --store "chdb://$DISK/store" 2>"$OUT/first.err" >/dev/null
echo "$?" >"$OUT/first.rc"
mount -o remount,size=256m "$DISK"
"$@" --store "chdb://$DISK/store" >/dev/null 2>"$OUT/second.err"
echo "$?" >"$OUT/second.rc"
"$PY" -m cli.main sql "SELECT (SELECT count() FROM scored_events) AS scored,
  (SELECT uniqExact(event_id) FROM scored_events) AS ids,
  (SELECT sum(loans) FROM risk_band_minute) AS in_view" --format csv \
  --home "$HOME_DIR" --store "chdb://$DISK/store" >"$OUT/counts.csv"
"""


def test_a_full_disk_ends_the_run_with_one_line_and_a_rerun_completes(
    settings: Settings, lending_club: LendingClub, tmp_path: Path
) -> None:
    plan = ReplayPlan(max_events=20_000, seed=3, start=datetime(2024, 6, 1, tzinfo=UTC))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(e + b"\n" for e in application_events(lending_club, plan)))
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    env = {
        "DISK": str(disk), "OUT": str(out), "PY": sys.executable,
        "HOME_DIR": str(settings.home), "PATH": "/usr/bin:/bin",
    }  # fmt: skip
    command = riskctl(settings, "run", "--input", str(path))
    namespace = ["unshare", "--user", "--map-root-user", "--mount"]
    done = subprocess.run(
        [*namespace, "sh", "-c", DISK_FULL, "disk-full", *command],
        env=env, capture_output=True, text=True, timeout=4 * TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "first.rc").read_text().strip() == "1"
    one_error_line((out / "first.err").read_text())
    assert (out / "second.rc").read_text().strip() == "0", (out / "second.err").read_text()
    header, values = (out / "counts.csv").read_text().splitlines()
    assert header == "scored,ids,in_view"
    assert values == "20000,20000,20000"
