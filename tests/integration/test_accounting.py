"""Exact accounting: every line read is scored, dead-lettered, skipped (same id, same content)
or waiting; an id reused with other content is a `conflicting_duplicate` dead letter, within a
batch, across batches and across runs."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flows.duplicates import CONFLICTING_DUPLICATE, conflicting_rows, content_hash
from flows.jobs import RunOptions, run_files
from flows.model import ScoringModel, load_live_model
from flows.settings import Settings
from flows.validation import is_repayment
from flows.writer import RunStats
from tests.conftest import query_rows
from training.dataset import LendingClub
from training.repayments import mixed_events
from training.replay import ReplayPlan

START = datetime(2025, 1, 6, tzinfo=UTC)


def raw(rows: list[tuple[str, str]]) -> pa.Table:
    return pa.table({"event_id": [k for k, _ in rows], "payload": [p for _, p in rows]})


def test_conflicts_within_a_table_and_against_stored_hashes() -> None:
    table = raw([("a", "1"), ("b", "2"), ("a", "1"), ("a", "3"), ("c", "4"), ("d", "5")])
    stored = {"c": content_hash(b"4"), "d": content_hash(b"other")}
    assert conflicting_rows(table, stored).tolist() == [0, 0, 0, 1, 0, 1]
    assert not conflicting_rows(raw([("a", "1"), ("b", "1")]), {}).any()


@pytest.fixture(scope="module")
def good_lines(lending_club: LendingClub) -> list[bytes]:
    plan = ReplayPlan(max_events=120, seed=3, start=START)
    return list(mixed_events(lending_club, plan, months=4))


@pytest.fixture
def live_model(behaviour_model_home: Path) -> ScoringModel:
    model = load_live_model(behaviour_model_home / "models")
    assert model is not None
    return model


def changed(line: bytes, **fields: object) -> bytes:
    return json.dumps({**json.loads(line), **fields}).encode()


def with_duplicates(good: list[bytes]) -> tuple[list[bytes], int, int]:
    """The good lines followed by exact and conflicting duplicates of some of them: the lines,
    how many are exact repeats and how many conflict."""
    apps = [x for x in good if not is_repayment(x)]
    reps = [x for x in good if is_repayment(x)]
    exact = [apps[0], apps[1], reps[0], reps[1], reps[1]]
    conflicting = [
        changed(apps[2], annual_inc=json.loads(apps[2])["annual_inc"] + 1000),
        changed(reps[2], amount_paid=0.0, payment_date=None),  # same installment, other outcome
        changed(reps[3], amount_due=json.loads(reps[3])["amount_due"] + 1),
    ]
    return good + exact + conflicting, len(exact), len(conflicting)


def assert_adds_up(stats: RunStats, lines: int) -> None:
    assert stats.sent + stats.pending_repayments == lines  # "events read" in the run summary
    accounted = stats.scored + stats.dead_lettered + stats.duplicates + stats.pending_repayments
    assert accounted == lines


@pytest.mark.parametrize("batch_size", [10_000, 37], ids=["one batch", "across batches"])
def test_duplicates_and_conflicts_add_up(
    settings: Settings,
    model: ScoringModel,
    live_model: ScoringModel,
    good_lines: list[bytes],
    tmp_path: Path,
    batch_size: int,
) -> None:
    lines, exact, conflicting = with_duplicates(good_lines)
    path = tmp_path / "dups.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    stats = run_files(
        [path], replace(settings, batch_size=batch_size), model, RunOptions(live_model=live_model)
    )
    assert_adds_up(stats, len(lines))
    assert stats.scored == len(good_lines)
    assert stats.duplicates == exact
    assert stats.dead_lettered == conflicting
    rows = query_rows(settings.store, "SELECT reason, origin FROM dead_letters")
    assert [r["reason"] for r in rows] == [CONFLICTING_DUPLICATE] * conflicting
    # the stored rows keep each id's first content
    [row] = query_rows(
        settings.store,
        "SELECT count() AS n, uniqExact(event_id) AS ids, "
        "countIf(content_hash = SHA256(payload)) AS hashed FROM raw_events",
    )
    assert row["n"] == row["ids"] == row["hashed"] == len(good_lines)


def test_conflicts_across_runs(
    settings: Settings, model: ScoringModel, good_lines: list[bytes], tmp_path: Path
) -> None:
    apps = [x for x in good_lines if not is_repayment(x)]
    first = tmp_path / "first.jsonl"
    first.write_bytes(b"".join(line + b"\n" for line in apps))
    assert_adds_up(run_files([first], settings, model), len(apps))
    second = tmp_path / "second.jsonl"
    again = [apps[0], changed(apps[1], funded_amnt=1234.0), apps[2]]
    second.write_bytes(b"".join(line + b"\n" for line in again))
    stats = run_files([second], settings, model)
    assert_adds_up(stats, len(again))
    assert (stats.scored, stats.duplicates, stats.dead_lettered) == (0, 2, 1)
    [row] = query_rows(settings.store, "SELECT reason, origin FROM dead_letters")
    assert row == {"reason": CONFLICTING_DUPLICATE, "origin": "file:second.jsonl:2"}
    [score] = query_rows(
        settings.store,
        f"SELECT exposure FROM scored_events WHERE event_id = '{json.loads(apps[1])['event_id']}'",
    )
    assert score["exposure"] == json.loads(apps[1])["funded_amnt"]  # the first content stays


def test_no_conflict_mask_work_for_the_usual_batch() -> None:
    table = raw([(str(i), "x") for i in range(1000)])
    assert conflicting_rows(table, {}).dtype == np.bool_
