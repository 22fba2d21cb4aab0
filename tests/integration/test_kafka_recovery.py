"""Crash recovery: kill -9 the flow process mid-stream twice, restart it from its Bytewax
snapshots, and the store must hold exactly what an uninterrupted run produces — applications,
dead letters, and repayments scored from per-loan state that must survive the crashes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from flows.jobs import RunOptions, run_kafka
from flows.model import ScoringModel, load_live_model
from flows.settings import Settings
from flows.store import StoreURL
from tests.conftest import query_rows
from tests.kafka_fixtures import produce_file
from training.dataset import LendingClub
from training.repayments import mixed_events
from training.replay import ReplayPlan

LOANS = 2_000
RUN_TIMEOUT_S = 120


def flow_process(settings: Settings, store_url: StoreURL, recovery: Path) -> subprocess.Popen[str]:
    kafka = settings.kafka
    env = {
        **os.environ,
        "RISKCTL_TOPIC_APPLICATIONS": kafka.applications_topic,
        "RISKCTL_TOPIC_REPAYMENTS": kafka.repayments_topic,
        "RISKCTL_TOPIC_DEAD_LETTERS": kafka.dead_letter_topic,
        # Small reads make many batches, so a kill lands between snapshots mid-stream.
        "RISKCTL_KAFKA_BATCH_SIZE": "100",
    }
    command = [
        sys.executable, "-m", "cli.main", "run", "--source", "kafka", "--until-end",
        "--brokers", kafka.brokers, "--home", str(settings.home), "--store", store_url.reveal(),
        "--recovery-dir", str(recovery), "--snapshot-interval", "0.5", "--log-batches",
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )


def committed_epoch(recovery: Path) -> int:
    """The latest epoch whose snapshots the recovery store holds (0 before any)."""
    path = recovery / "part-0.sqlite3"
    if not path.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            [epoch] = db.execute("SELECT coalesce(max(commit_epoch), 0) FROM commits").fetchone()
    except sqlite3.OperationalError:  # the flow has not created its tables yet
        return 0
    return int(epoch)


def run_until(process: subprocess.Popen[str], recovery: Path, kill_after_sent: int | None) -> int:
    """Follow the process's batch log; SIGKILL it once it has sent enough and committed a
    snapshot of its own (so the kill lands between snapshots, not before the first one).
    Returns how many events it sent."""
    assert process.stdout is not None
    deadline = time.monotonic() + RUN_TIMEOUT_S
    resumed_at = committed_epoch(recovery)
    sent = 0
    try:
        for line in process.stdout:
            if time.monotonic() > deadline:
                raise TimeoutError("flow process did not finish in time")
            if line.startswith("{"):
                sent = json.loads(line)["sent"]
                if (
                    kill_after_sent is not None
                    and sent >= kill_after_sent
                    and committed_epoch(recovery) > resumed_at
                ):
                    process.send_signal(signal.SIGKILL)
                    break
        process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return sent


COMPARE = {
    "scored": "SELECT event_id, pd_lifetime, band, exposure, expected_loss_lifetime"
    " FROM scored_events FINAL ORDER BY event_id",
    "counts": "SELECT count() AS rows, uniqExact(event_id) AS ids FROM scored_events",
    "dead": "SELECT dead_letter_id, reason FROM dead_letters FINAL ORDER BY dead_letter_id",
    "dead_rows": "SELECT count() AS rows FROM dead_letters",
    "bands": "SELECT minute, band, sum(loans) AS loans, round(sum(exposure), 2) AS exposure,"
    " round(sum(expected_loss_lifetime), 4) AS el FROM risk_band_minute GROUP BY minute, band"
    " ORDER BY minute, band",
    "grades": "SELECT day, sub_grade, band, sum(loans) AS loans,"
    " round(sum(expected_loss_lifetime), 4) AS el"
    " FROM risk_by_grade_day GROUP BY day, sub_grade, band ORDER BY day, sub_grade, band",
    "states": "SELECT day, addr_state, band, sum(loans) AS loans FROM risk_by_state_day"
    " GROUP BY day, addr_state, band ORDER BY day, addr_state, band",
    "watchlist": "SELECT loan_id, pd_12m, band FROM watchlist ORDER BY loan_id",
    "repayments": "SELECT event_id, pd_12m, origination_pd_lifetime, days_past_due,"
    " worst_days_past_due, missed_last_6, on_time_ratio, outstanding_balance,"
    " expected_loss_12m, dpd_bucket"
    " FROM repayment_scores FINAL ORDER BY event_id",
    "delinquency": "SELECT month, dpd_bucket, loans, round(balance, 2) AS balance,"
    " round(expected_loss_12m, 4) AS el FROM delinquency_monthly ORDER BY month, dpd_bucket",
    "dead_by_reason": "SELECT reason, sum(dead_letters) AS n FROM dead_letters_minute"
    " GROUP BY reason ORDER BY reason",
}


@pytest.mark.slow
def test_kill_9_twice_and_restart_equals_an_uninterrupted_run(
    kafka_settings: Settings,
    model: ScoringModel,
    behaviour_model_home: Path,
    lending_club: LendingClub,
    tmp_path: Path,
) -> None:
    plan = ReplayPlan(max_events=LOANS, seed=9, corrupt_share=0.02)
    events = tmp_path / "mixed.jsonl"
    events.write_bytes(b"".join(e + b"\n" for e in mixed_events(lending_club, plan, months=6)))
    sent = produce_file(kafka_settings.kafka, events)

    live_model = load_live_model(behaviour_model_home / "models")
    assert live_model is not None
    reference = run_kafka(kafka_settings, model, RunOptions(live_model=live_model), until_end=True)
    assert reference.sent == sent and reference.pending_repayments == 0

    crashed_store = StoreURL.embedded_at(tmp_path / "crashed-store")
    recovery = tmp_path / "recovery"
    first = run_until(flow_process(kafka_settings, crashed_store, recovery), recovery, sent // 3)
    second = run_until(flow_process(kafka_settings, crashed_store, recovery), recovery, sent // 3)
    last = flow_process(kafka_settings, crashed_store, recovery)
    third = run_until(last, recovery, None)
    print(f"sent per process: {first}, {second}, {third} of {sent}")
    assert last.returncode == 0
    # Both kills landed mid-stream: neither process had read everything.
    assert sent // 3 <= first < sent and sent // 3 <= second < sent
    # Each restart resumed from its snapshot instead of re-reading the topic from the start.
    assert first + second + third < 2 * sent
    assert third < sent - sent // 3

    for name, sql in COMPARE.items():
        assert query_rows(crashed_store, sql) == query_rows(kafka_settings.store, sql), name
    assert query_rows(crashed_store, COMPARE["counts"]) == [{"rows": LOANS, "ids": LOANS}]
    [row] = query_rows(crashed_store, "SELECT count() AS n FROM repayment_scores")
    assert row["n"] > 5 * LOANS
