"""Chaos run: the mixed stream (applications and their repayments) through `riskctl run`
processes that are killed with SIGKILL at three random points and stopped with SIGTERM once,
then run to the end; every table, every view and each loan's month states must equal an
undisturbed run's. On Kafka the restarts resume from a recovery directory; on files there is
none, and each restart reads the file again from the start.

    python -m tests.chaos --source kafka --loans 15000 --brokers 127.0.0.1:9092 --home .riskctl
    python -m tests.chaos --source file --loans 15000 --home .riskctl

The home needs an origination and a behavioural model (`riskctl train`, `riskctl
train-behaviour`). tests/integration/test_chaos.py runs the same at a size that fits the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.kafka_admin import create_topics, event_messages, produce
from flows.settings import KafkaSettings
from flows.store import StoreURL
from tests.conftest import query_rows
from tests.store_compare import duplicate_keys, fingerprint, journal_entries, same_sums
from training.dataset import load_lending_club
from training.repayments import mixed_events
from training.replay import ReplayPlan

TIMEOUT_S = 900
START = datetime(2024, 1, 8, tzinfo=UTC)

# Row-level comparisons beyond the per-table sums: every view and each loan's month states.
COMPARE = {
    "scored": "SELECT event_id, pd_lifetime, pd_12m, band, expected_loss_lifetime"
    " FROM scored_events FINAL ORDER BY event_id",
    "dead_letters": "SELECT dead_letter_id, reason FROM dead_letters FINAL ORDER BY ALL",
    "repayment_scores": "SELECT event_id, pd_12m, days_past_due, worst_days_past_due,"
    " outstanding_balance, expected_loss_12m, dpd_bucket FROM repayment_scores FINAL"
    " ORDER BY event_id",
    "loan_month_end": "SELECT month, loan_id, dpd_bucket, days_past_due, balance,"
    " round(expected_loss_12m, 6) AS el FROM loan_month_end ORDER BY month, loan_id",
    "watchlist": "SELECT loan_id, pd_12m, band, event_time FROM watchlist ORDER BY loan_id",
    "delinquency_monthly": "SELECT month, dpd_bucket, loans, round(balance, 2) AS balance,"
    " round(expected_loss_12m, 4) AS el FROM delinquency_monthly ORDER BY ALL",
    "roll_rates": "SELECT month, from_bucket, to_bucket, loans FROM roll_rates ORDER BY ALL",
    "expected_loss_current": "SELECT band, grade, addr_state, loans, round(exposure, 2) AS e,"
    " round(expected_loss_12m, 4) AS el FROM expected_loss_current ORDER BY ALL",
    "risk_band_minute": "SELECT minute, band, sum(loans) AS n, round(sum(exposure), 2) AS e,"
    " round(sum(expected_loss_lifetime), 4) AS el FROM risk_band_minute GROUP BY ALL ORDER BY ALL",
    "risk_segment_minute": "SELECT minute, band, grade, addr_state, sum(loans) AS n"
    " FROM risk_segment_minute GROUP BY ALL ORDER BY ALL",
    "risk_by_grade_day": "SELECT day, sub_grade, band, sum(loans) AS n,"
    " round(sum(expected_loss_lifetime), 4) AS el FROM risk_by_grade_day GROUP BY ALL ORDER BY ALL",
    "risk_by_state_day": "SELECT day, addr_state, band, sum(loans) AS n FROM risk_by_state_day"
    " GROUP BY ALL ORDER BY ALL",
    # keyed by receive minute, which differs between runs by nature: compared by reason
    "dead_letters_minute": "SELECT reason, sum(dead_letters) AS n FROM dead_letters_minute"
    " GROUP BY reason ORDER BY reason",
}


@dataclass
class Disturbance:
    signal: str
    after_batches: int
    exit_code: int | None = None
    batches_seen: int = 0
    landed: bool = False


@dataclass
class ChaosReport:
    source: str
    events: int
    disturbances: list[Disturbance] = field(default_factory=list)
    compared: dict[str, int] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.mismatches and all(d.landed for d in self.disturbances)


def write_events(path: Path, loans: int, seed: int) -> int:
    plan = ReplayPlan(max_events=loans, seed=seed, corrupt_share=0.01, start=START)
    lines = list(mixed_events(load_lending_club(), plan, months=12))
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return len(lines)


def plan_disturbances(rng: random.Random, max_batches: int) -> list[Disturbance]:
    kinds = ["SIGKILL", "SIGKILL", "SIGKILL", "SIGTERM"]
    rng.shuffle(kinds)
    return [Disturbance(kind, rng.randint(1, max_batches)) for kind in kinds]


def follow(command: list[str], env: dict[str, str], disturbance: Disturbance | None) -> int:
    """Run one process; signal it after its n-th written batch. Returns how many it wrote."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + TIMEOUT_S
    seen = 0
    try:
        for line in process.stdout:
            if time.monotonic() > deadline:
                raise TimeoutError("a chaos process did not finish in time")
            if not line.startswith("{"):
                continue
            seen += 1
            if disturbance is not None and seen == disturbance.after_batches:
                process.send_signal(getattr(signal, disturbance.signal))
                disturbance.landed = True
                if disturbance.signal == "SIGKILL":
                    break
        process.wait(timeout=TIMEOUT_S)
        error = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if disturbance is not None:
        disturbance.exit_code, disturbance.batches_seen = process.returncode, seen
        expected = -signal.SIGKILL if disturbance.signal == "SIGKILL" else 0
        disturbance.landed = disturbance.landed and process.returncode == expected
    elif process.returncode != 0:
        raise RuntimeError(f"the final run failed ({process.returncode}): {error.strip()}")
    return seen


def compare(reference: StoreURL, disturbed: StoreURL, report: ChaosReport) -> None:
    want, got = fingerprint(reference), fingerprint(disturbed)
    for table in sorted(want):
        report.compared[f"{table} (count and sums)"] = int(want[table]["rows"])
        if not same_sums(got.get(table), want[table]):
            report.mismatches.append(f"{table}: {got.get(table)} != {want[table]}")
    for name, sql in COMPARE.items():
        expected, found = query_rows(reference, sql), query_rows(disturbed, sql)
        report.compared[name] = len(expected)
        if found != expected:
            report.mismatches.append(f"{name}: {len(found)} rows != {len(expected)} expected")
    extra = duplicate_keys(disturbed)
    if any(extra.values()):
        report.mismatches.append(f"duplicate keys: {extra}")
    if journal_entries(disturbed):
        report.mismatches.append("journal entries left behind")


def chaos(
    source: str,
    loans: int,
    seed: int,
    home: Path,
    workdir: Path,
    brokers: str | None = None,
    max_batches: int | None = None,
    batch_size: int = 2000,
) -> ChaosReport:
    """``max_batches``: the latest written batch a signal may follow; by default a fifth of the
    undisturbed run's, so that all four land before the stream's end."""
    workdir.mkdir(parents=True, exist_ok=True)
    events = workdir / "mixed.jsonl"
    report = ChaosReport(source, write_events(events, loans, seed))
    env = dict(os.environ)
    base = [sys.executable, "-m", "cli.main", "run", "--home", str(home), "--log-batches"]
    if source == "kafka":
        assert brokers, "--brokers is needed for --source kafka"
        tag = f"chaos-{seed}-{uuid.uuid4().hex[:8]}"
        kafka = KafkaSettings(
            brokers=brokers,
            partitions=2,
            applications_topic=f"applications-{tag}",
            repayments_topic=f"repayments-{tag}",
            dead_letter_topic=f"dead-letters-{tag}",
        )
        create_topics(kafka)
        produce(brokers, event_messages(kafka, events.read_bytes().splitlines()))
        env.update(
            RISKCTL_TOPIC_APPLICATIONS=kafka.applications_topic,
            RISKCTL_TOPIC_REPAYMENTS=kafka.repayments_topic,
            RISKCTL_TOPIC_DEAD_LETTERS=kafka.dead_letter_topic,
            RISKCTL_KAFKA_BATCH_SIZE=str(batch_size // 4),
        )
        base += ["--source", "kafka", "--until-end", "--brokers", brokers]
        disturbed_args = ["--recovery-dir", str(workdir / "recovery"), "--snapshot-interval", "1"]
    else:
        base += ["--input", str(events), "--batch-size", str(batch_size)]
        disturbed_args = []
    reference = StoreURL.embedded_at(workdir / "reference")
    disturbed = StoreURL.embedded_at(workdir / "disturbed")
    written = follow([*base, "--store", reference.reveal()], env, None)
    latest = max_batches or max(1, written // 5)
    for disturbance in plan_disturbances(random.Random(seed), latest):
        report.disturbances.append(disturbance)
        follow([*base, "--store", disturbed.reveal(), *disturbed_args], env, disturbance)
    follow([*base, "--store", disturbed.reveal(), *disturbed_args], env, None)
    compare(reference, disturbed, report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=["kafka", "file"], default="kafka")
    parser.add_argument("--loans", type=int, default=15_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--home", type=Path, default=Path(".riskctl"))
    parser.add_argument("--workdir", type=Path, default=Path(".riskctl/chaos"))
    parser.add_argument("--brokers", default=os.environ.get("KAFKA_BOOTSTRAP"))
    parser.add_argument("--max-batches", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args(argv)
    workdir = args.workdir / f"{args.source}-{args.seed}-{uuid.uuid4().hex[:6]}"
    report = chaos(
        args.source,
        args.loans,
        args.seed,
        args.home,
        workdir,
        args.brokers,
        args.max_batches,
        args.batch_size,
    )
    summary: dict[str, Any] = {
        "source": report.source,
        "events": report.events,
        "disturbances": [d.__dict__ for d in report.disturbances],
        "compared_rows": report.compared,
        "mismatches": report.mismatches,
        "equal": report.equal,
    }
    print(json.dumps(summary, indent=2))
    return 0 if report.equal else 1


if __name__ == "__main__":
    sys.exit(main())
