"""The embedded dataflow end to end on real replayed loans: counts, idempotence, identity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import pytest

from flows.events import LoanApplication
from flows.features import FEATURE_NAMES, application_features
from flows.jobs import run_files
from flows.model import ScoringModel
from flows.settings import Settings
from tests.conftest import query_rows
from training.matrix import application_matrix
from training.replay import ReplayPlan, application_events


def test_sent_equals_scored_plus_dead_lettered(
    settings: Settings, model: ScoringModel, events_file: Callable[..., Path]
) -> None:
    path = events_file(3000, corrupt=0.05)
    sent = sum(1 for line in path.read_bytes().splitlines() if line.strip())
    stats = run_files([path], settings, model)
    assert stats.sent == sent
    assert stats.scored == 3000
    assert stats.dead_lettered == sent - 3000 > 0
    [counts] = query_rows(
        settings.store,
        "SELECT (SELECT count() FROM scored_events) AS scored,"
        " (SELECT count() FROM dead_letters) AS dead,"
        " (SELECT count() FROM raw_events) AS raw",
    )
    assert counts == {"scored": 3000, "dead": sent - 3000, "raw": 3000}


def test_rerunning_the_same_input_adds_nothing(
    settings: Settings, model: ScoringModel, events_file: Callable[..., Path]
) -> None:
    path = events_file(1500, corrupt=0.02)
    first = run_files([path], settings, model)
    second = run_files([path], settings, model)
    assert second.sent == first.sent
    assert second.scored == 0 and second.dead_lettered == 0
    assert second.duplicates == first.sent
    [row] = query_rows(
        settings.store,
        "SELECT count() AS n, uniqExact(event_id) AS ids,"
        " (SELECT sum(loans) FROM risk_band_minute) AS in_view FROM scored_events",
    )
    assert row == {"n": 1500, "ids": 1500, "in_view": 1500}


def test_scored_rows_carry_times_version_band_and_reasons(
    settings: Settings, model: ScoringModel, events_file: Callable[..., Path]
) -> None:
    path = events_file(500)
    run_files([path], settings, model)
    rows = query_rows(
        settings.store,
        "SELECT event_id, event_time, processed_at, model_version, pd_lifetime AS pd, pd_12m,"
        " term_months, band, exposure, lgd, expected_loss_lifetime AS expected_loss,"
        " expected_loss_12m, reason_codes FROM scored_events",
    )
    events = {
        e.event_id: e
        for e in (
            msgspec.json.decode(line, type=LoanApplication)
            for line in path.read_bytes().splitlines()
        )
    }
    assert len(rows) == 500
    thresholds = settings.bands.thresholds
    for row in rows:
        source = events[row["event_id"]]
        assert row["event_time"] == source.event_time.replace(
            microsecond=source.event_time.microsecond // 1000 * 1000
        )
        assert row["processed_at"] > row["event_time"]
        assert row["model_version"] == model.version
        assert 0.0 < row["pd"] < 1.0
        band_index = int(np.searchsorted(thresholds, row["pd"], side="right"))
        assert row["band"] == settings.bands.names[band_index]
        assert row["exposure"] == source.funded_amnt
        assert row["expected_loss"] == pytest.approx(row["pd"] * source.funded_amnt * settings.lgd)
        # the store converts the lifetime PD to 12 months once, at a constant monthly hazard
        pd_12m = 1 - (1 - row["pd"]) ** (12 / row["term_months"])
        assert row["pd_12m"] == pytest.approx(pd_12m, rel=1e-12)
        assert row["pd_12m"] < row["pd"]
        assert row["expected_loss_12m"] == pytest.approx(pd_12m * row["exposure"] * settings.lgd)
        assert len(row["reason_codes"]) <= settings.reason_codes
        assert set(row["reason_codes"]) <= set(model.reason_table)
    risky = [r for r in rows if r["pd"] > 0.15]
    assert risky and all(r["reason_codes"] for r in risky)


def test_stream_features_equal_training_features_for_the_same_loans(
    settings: Settings, model: ScoringModel, events_file: Callable[..., Path], lending_club
) -> None:
    path = events_file(400)
    run_files([path], settings, model)
    columns = ", ".join(FEATURE_NAMES)
    stored = query_rows(settings.store, f"SELECT loan_id, {columns} FROM scored_events")
    training = application_matrix(lending_club)
    row_of = {loan_id: i for i, loan_id in enumerate(training.loan_ids)}
    for row in stored:
        expected = training.features[row_of[row["loan_id"]]]
        got = np.array([row[name] for name in FEATURE_NAMES])
        np.testing.assert_array_equal(got, expected)


def test_stream_pd_equals_batch_scoring_of_the_same_features(
    settings: Settings, model: ScoringModel, events_file: Callable[..., Path]
) -> None:
    path = events_file(300)
    run_files([path], replace(settings, batch_size=7), model)
    stored = {
        r["event_id"]: r["pd"]
        for r in query_rows(settings.store, "SELECT event_id, pd_lifetime AS pd FROM scored_events")
    }
    apps = [msgspec.json.decode(line, type=LoanApplication) for line in path.read_bytes().split()]
    matrix = np.array([application_features(a) for a in apps])
    expected = model.predict_pd(matrix)
    got = np.array([stored[a.event_id] for a in apps])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_a_rerun_file_adds_no_dead_letters_again(
    settings: Settings, model: ScoringModel, lending_club, tmp_path: Path
) -> None:
    """The demo replays its saved file on every rerun: each broken line is dead-lettered once,
    by its position, and the views count it once. (A file regenerated with new event times is
    another matter: its events reuse ids with other content, conflicting duplicates.)"""
    path = tmp_path / "events.jsonl"
    start = datetime(2024, 1, 1, tzinfo=UTC)
    plan = ReplayPlan(max_events=1000, seed=5, corrupt_share=0.05, start=start)
    path.write_bytes(b"".join(e + b"\n" for e in application_events(lending_club, plan)))
    first = run_files([path], settings, model)
    assert first.dead_lettered == first.sent - 1000 > 0
    for _ in range(2):
        stats = run_files([path], settings, model)
        assert stats.dead_lettered == 0 and stats.duplicates == stats.sent == first.sent
    [row] = query_rows(
        settings.store,
        "SELECT (SELECT count() FROM dead_letters) AS dead,"
        " (SELECT sum(dead_letters) FROM dead_letters_minute) AS in_view",
    )
    assert row["dead"] == row["in_view"] == stats.sent - 1000
