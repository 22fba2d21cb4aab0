"""Shadow scoring: a challenger scores every application beside the champion in the running
flow; its rows go to shadow_scores, and the champion's rows are exactly what they would be
without it."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from cli.main import app
from flows.features import FEATURE_NAMES
from flows.jobs import RunOptions, run_files
from flows.model import ScoringModel, load_live_model, load_model
from flows.model_registry import CHALLENGER
from flows.risk import band_names
from flows.settings import Bands, Settings
from tests.conftest import query_rows
from training.dataset import LendingClub
from training.export import export_model
from training.registry import Change, record
from training.repayments import mixed_events
from training.replay import ReplayPlan
from training.train import TrainingResult

N = 2000
# When the run read and scored; everything else in a score row comes from the event and model.
SCORED_COLUMNS = "* EXCEPT (received_at, source_time, processed_at)"


def _canonical(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with NaN (a missing feature) made comparable: NaN equals nothing, itself neither."""
    return [
        {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in rows
    ]


@pytest.fixture
def challenger(trained_home: Path) -> ScoringModel:
    """The priced model, as a challenger to the applicant champion: a real, different model."""
    return load_model(trained_home / "models", kind="priced")


def test_every_scored_event_has_its_shadow_row_and_the_champion_rows_are_unchanged(
    settings: Settings,
    model: ScoringModel,
    challenger: ScoringModel,
    events_file: Callable[..., Path],
    tmp_path: Path,
) -> None:
    path = events_file(N, corrupt=0.03)
    shadowed = run_files([path], settings, model, RunOptions(shadow=challenger))
    plain_settings = replace(settings, store_url=f"chdb://{tmp_path / 'plain'}")
    plain = run_files([path], plain_settings, model)
    assert (shadowed.sent, shadowed.scored, shadowed.dead_lettered) == (
        plain.sent, plain.scored, plain.dead_lettered
    )  # fmt: skip
    assert shadowed.scored == N and shadowed.dead_lettered > 0

    # The champion's rows, the raw events and the dead letters are the same with and without.
    for sql in (
        f"SELECT {SCORED_COLUMNS} FROM scored_events FINAL ORDER BY event_id",
        "SELECT * EXCEPT (received_at) FROM raw_events FINAL ORDER BY event_id",
        "SELECT reason, origin FROM dead_letters FINAL ORDER BY origin",
    ):
        shadowed_rows = _canonical(query_rows(settings.store, sql))
        assert shadowed_rows == _canonical(query_rows(plain_settings.store, sql))
        assert shadowed_rows

    features = ", ".join(FEATURE_NAMES)
    rows = query_rows(
        settings.store,
        "SELECT s.event_id AS event_id, s.loan_id = e.loan_id AS same_loan,"
        " s.event_time = e.event_time AS same_time, s.model_kind AS kind,"
        " s.champion_version AS champion, e.model_version AS scored_by,"
        " s.champion_pd_lifetime AS champion_pd, e.pd_lifetime AS issued_pd,"
        " s.champion_band AS champion_band, e.band AS issued_band,"
        " s.challenger_version AS challenger, s.challenger_pd_lifetime AS challenger_pd,"
        f" s.challenger_band AS challenger_band, {features}"
        " FROM scored_events AS e FINAL LEFT JOIN shadow_scores AS s FINAL USING event_id"
        " ORDER BY event_id",
    )
    assert len(rows) == N
    assert all(r["event_id"] and r["same_loan"] and r["same_time"] for r in rows)
    assert {(r["champion"], r["scored_by"], r["challenger"], r["kind"]) for r in rows} == {
        (model.version, model.version, challenger.version, model.kind)
    }
    assert all(r["champion_pd"] == r["issued_pd"] for r in rows)
    assert all(r["champion_band"] == r["issued_band"] for r in rows)
    # The challenger's PD is its model's on the very features the champion scored.
    matrix = np.array([[np.nan if r[f] is None else r[f] for f in FEATURE_NAMES] for r in rows])
    expected = challenger.predict_pd(matrix)
    got = np.array([r["challenger_pd"] for r in rows])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert [r["challenger_band"] for r in rows] == band_names(expected, settings.bands)
    assert np.mean(np.abs(got - np.array([r["champion_pd"] for r in rows]))) > 1e-3

    # The views: PD distribution by version and band migration, against the rows themselves.
    [summary] = query_rows(settings.store, "SELECT * FROM shadow_pd_by_version")
    assert summary["events"] == N
    assert summary["champion_mean_pd_lifetime"] == pytest.approx(
        np.mean([r["champion_pd"] for r in rows])
    )
    assert summary["challenger_mean_pd_lifetime"] == pytest.approx(np.mean(got))
    changed = sum(r["champion_band"] != r["challenger_band"] for r in rows)
    assert summary["band_changed_share"] == pytest.approx(changed / N)
    migration = query_rows(settings.store, "SELECT * FROM shadow_band_migration")
    assert {(m["champion_band"], m["challenger_band"]): m["events"] for m in migration} == Counter(
        (r["champion_band"], r["challenger_band"]) for r in rows
    )


def test_a_replay_adds_no_shadow_row_and_old_scores_get_none(
    settings: Settings,
    model: ScoringModel,
    challenger: ScoringModel,
    events_file: Callable[..., Path],
) -> None:
    both = events_file(N, name="both.jsonl")
    first = both.with_name("first.jsonl")  # the same events' first half
    first.write_bytes(b"".join(both.read_bytes().splitlines(keepends=True)[: N // 2]))
    run_files([first], settings, model)
    stats = run_files([both], settings, model, RunOptions(shadow=challenger))
    assert (stats.scored, stats.duplicates) == (N // 2, N // 2)
    again = run_files([both], settings, model, RunOptions(shadow=challenger))
    assert (again.scored, again.duplicates) == (0, N)
    [row] = query_rows(
        settings.store,
        "SELECT count() AS n, uniqExact(event_id) AS ids,"
        " (SELECT count() FROM scored_events) AS scored FROM shadow_scores",
    )
    # Only the scores issued with the challenger running have a shadow row, once each.
    assert (row["n"], row["ids"], row["scored"]) == (N // 2, N // 2, N)
    earlier = {json.loads(line)["event_id"] for line in first.read_bytes().splitlines()}
    shadowed = query_rows(settings.store, "SELECT event_id FROM shadow_scores")
    assert len(earlier) == N // 2 and not earlier & {r["event_id"] for r in shadowed}


@pytest.fixture
def seasoned_book(lending_club: LendingClub, tmp_path: Path) -> Path:
    """Real loans on a fixed epoch with 14 months of repayments each: their first year's
    outcome is known."""
    plan = ReplayPlan(max_events=1500, seed=31, start=datetime(2024, 1, 8, 9, 0, tzinfo=UTC))
    path = tmp_path / "book.jsonl"
    path.write_bytes(b"".join(e + b"\n" for e in mixed_events(lending_club, plan, months=14)))
    return path


def test_auc_once_outcomes_arrive_matches_the_outcomes_of_the_book(
    behaviour_model_home: Path,
    model: ScoringModel,
    challenger: ScoringModel,
    seasoned_book: Path,
    tmp_path: Path,
) -> None:
    settings = Settings(
        home=behaviour_model_home, store_url=f"chdb://{tmp_path / 'store'}", batch_size=5000
    )
    live = load_live_model(behaviour_model_home / "models")
    assert live is not None
    run_files([seasoned_book], settings, model, RunOptions(live_model=live, shadow=challenger))
    # Each loan's first-year outcome from its month-end positions, and both models' PDs.
    rows = query_rows(
        settings.store,
        "SELECT loan_id, any(s.champion_pd_lifetime) AS champion,"
        " any(s.challenger_pd_lifetime) AS challenger,"
        " countIf(m.dpd_bucket = '90+' AND m.month_end <= addMonths(m.origination_date, 12)) > 0"
        "  AS bad, max(m.month_end) >= addMonths(any(m.origination_date), 12) AS seasoned"
        " FROM shadow_scores AS s FINAL JOIN loan_month_end AS m USING loan_id GROUP BY loan_id",
    )
    known = [r for r in rows if r["bad"] or r["seasoned"]]
    labels = [int(r["bad"]) for r in known]
    assert 0 < sum(labels) < len(labels)
    [auc] = query_rows(settings.store, "SELECT * FROM shadow_outcome_auc")
    assert (auc["loans"], auc["bads"]) == (len(known), sum(labels))
    assert auc["champion_auc"] == pytest.approx(
        roc_auc_score(labels, [r["champion"] for r in known]), abs=1e-9
    )
    assert auc["challenger_auc"] == pytest.approx(
        roc_auc_score(labels, [r["challenger"] for r in known]), abs=1e-9
    )


def _home_with_two_versions(result: TrainingResult, home: Path) -> tuple[str, str]:
    models_dir = home / "models"
    champion = export_model(result, models_dir, Bands()).version
    other = export_model(result, models_dir, Bands(), make_current=False).version
    return champion, other


def test_riskctl_run_shadows_with_the_registry_challenger(
    training_result: TrainingResult, events_file: Callable[..., Path], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    champion, other = _home_with_two_versions(training_result, home)
    path = events_file(500)
    store = f"chdb://{tmp_path / 'store'}"
    args = ["run", "--input", str(path), "--home", str(home), "--store", store]
    runner = CliRunner(env={"RISKCTL_SHADOW": "1"})

    # Asked to shadow with no challenger registered: one line, exit 2, nothing scored.
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2
    assert refused.output.startswith("error: RISKCTL_SHADOW is set but no applicant model")
    assert refused.output.count("\n") == 1 and "Traceback" not in refused.output

    record(home / "models", "applicant", [Change(other, CHALLENGER, "retrain", "test")])
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    [row] = query_rows(
        Settings(store_url=store).store,
        "SELECT count() AS n, any(champion_version) AS champion,"
        " uniqExact(challenger_version) AS challengers, any(challenger_version) AS challenger,"
        " (SELECT count() FROM scored_events) AS scored FROM shadow_scores",
    )
    assert row == {"n": 500, "champion": champion, "challengers": 1, "challenger": other,
                   "scored": 500}  # fmt: skip

    bad = CliRunner(env={"RISKCTL_SHADOW": "maybe"}).invoke(app, args)
    assert bad.exit_code == 2 and bad.output.startswith("error: RISKCTL_SHADOW must be 1 or 0")
