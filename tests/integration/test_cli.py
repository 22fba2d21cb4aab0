"""The riskctl commands through Typer's CliRunner: exit codes, output and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from flows.settings import Settings
from tests.conftest import query_rows

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def home_args(settings: Settings) -> list[str]:
    return ["--home", str(settings.home), "--store", settings.store.reveal()]


def assert_one_line_error(output: str, fragment: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error:") and fragment in lines[0], output
    assert "Traceback" not in output


def test_replay_writes_reproducible_events(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (a, b):
        code, out = invoke(
            "replay",
            "--max",
            "200",
            "--start",
            "2026-01-01T00:00:00Z",
            "--corrupt",
            "0.05",
            "--out",
            str(path),
        )
        assert code == 0, out
        assert "events to" in out
    assert a.read_bytes() == b.read_bytes()
    assert len(a.read_bytes().splitlines()) >= 200


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["replay", "--max", "0", "--out", "x.jsonl"], "--max"),
        (["replay", "--max", "5"], "--out"),
        (["replay", "--max", "5", "--rate", "-1", "--out", "x"], "--rate"),
        (["replay", "--max", "5", "--start", "yesterday", "--out", "x"], "--start"),
    ],
)
def test_replay_usage_errors(args: list[str], fragment: str) -> None:
    code, out = invoke(*args)
    assert code == 2
    assert_one_line_error(out, fragment)


def test_run_then_sql_then_watchlist(
    home_args: list[str], events_file: Callable[..., Path]
) -> None:
    path = events_file(800, corrupt=0.05)
    sent = len(path.read_bytes().splitlines())
    code, out = invoke("run", "--input", str(path), *home_args)
    assert code == 0, out
    assert "scored" in out and "800" in out

    code, out = invoke("sql", "SELECT count() AS n FROM scored_events", *home_args, "-f", "json")
    assert code == 0, out
    assert json.loads(out) == [{"n": 800}]

    code, out = invoke("sql", "SELECT count() AS n FROM dead_letters", *home_args, "-f", "csv")
    assert code == 0 and out.splitlines() == ["n", str(sent - 800)]

    code, out = invoke("watchlist", "-n", "5", *home_args, "-f", "json")
    assert code == 0, out
    rows = json.loads(out)
    assert len(rows) == 5
    assert [r["pd_12m"] for r in rows] == sorted((r["pd_12m"] for r in rows), reverse=True)
    # the reasons' texts from the model card, not bare feature names
    assert all(r["reason_texts"] for r in rows)
    assert all(" " in text for r in rows for text in r["reason_texts"])

    code, out = invoke("watchlist", "-n", "3", "--band", "very_low", *home_args, "-f", "json")
    assert code == 0 and all(r["band"] == "very_low" for r in json.loads(out))


def test_sql_error_is_one_line(home_args: list[str]) -> None:
    code, out = invoke("sql", "SELECT * FROM no_such_table", *home_args)
    assert code == 1
    assert_one_line_error(out, "no_such_table")


def test_unknown_store_scheme_is_one_line(settings: Settings) -> None:
    code, out = invoke("sql", "SELECT 1", "--store", "postgres://x")
    assert code == 2
    assert_one_line_error(out, "unknown store URL scheme")


def test_missing_input_file(home_args: list[str], tmp_path: Path) -> None:
    code, out = invoke("run", "--input", str(tmp_path / "nope.jsonl"), *home_args)
    assert code == 2
    assert_one_line_error(out, "input file not found")


def test_db_migrate_is_idempotent(home_args: list[str]) -> None:
    code, out = invoke("db", "migrate", *home_args)
    assert code == 0 and "applied 0001_core_tables.sql" in out
    code, out = invoke("db", "migrate", *home_args)
    assert code == 0 and "schema up to date" in out


GOOD_LOAN = {
    "funded_amnt": 20000, "term_months": 60, "int_rate": 24.5, "sub_grade": "F2",
    "addr_state": "NV", "verification_status": "not_verified", "annual_inc": 24000,
    "emp_length_years": None, "inq_last_6mths": 4, "revol_util": 95.0, "all_util": 90,
    "total_bal_il": 30000, "total_il_high_credit_limit": 32000, "open_il_12m": 3,
}  # fmt: skip


def test_score_prints_pd_band_reasons_and_version(settings: Settings) -> None:
    code, out = invoke(
        "score", "--json", json.dumps(GOOD_LOAN), "--home", str(settings.home), "-f", "json"
    )
    assert code == 0, out
    answer = json.loads(out)
    assert 0.15 < answer["pd_lifetime"] < 1 and answer["band"] == "very_high"
    assert answer["reason_codes"] and answer["model_version"]


def test_score_from_file(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "loan.json"
    path.write_text(
        json.dumps(
            {
                **GOOD_LOAN,
                "sub_grade": "A1",
                "int_rate": 6.0,
                "annual_inc": 250000,
                "term_months": 36,
            }
        )
    )
    code, out = invoke("score", "--file", str(path), "--home", str(settings.home))
    assert code == 0, out
    assert "PD" in out and "band" in out and "model" in out


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ("{not json", "malformed_json"),
        (json.dumps({**GOOD_LOAN, "funded_amnt": -5}), "out_of_range"),
        (json.dumps({**GOOD_LOAN, "addr_state": "ZZ"}), "unknown_category"),
        (json.dumps({k: v for k, v in GOOD_LOAN.items() if k != "annual_inc"}), "annual_inc"),
    ],
)
def test_score_bad_input_exits_2(settings: Settings, payload: str, fragment: str) -> None:
    code, out = invoke("score", "--json", payload, "--home", str(settings.home))
    assert code == 2
    assert_one_line_error(out, fragment)


def test_score_without_a_model(tmp_path: Path) -> None:
    code, out = invoke("score", "--json", json.dumps(GOOD_LOAN), "--home", str(tmp_path))
    assert code == 1
    assert_one_line_error(out, "riskctl train")


def test_demo_runs_twice_and_keeps_each_event_once(settings: Settings) -> None:
    store = ["--home", str(settings.home), "--store", settings.store.reveal()]
    args = ["demo", "--events", "1500", *store]
    code, out = invoke(*args)
    assert code == 0, out
    for heading in ("Run summary", "Risk bands", "Watchlist", "Portfolio"):
        assert heading in out
    code, out = invoke(*args)
    assert code == 0, out
    assert "already stored by an earlier demo run" in out


def test_demo_with_repayments_shows_delinquency(
    settings: Settings, behaviour_model_home: Path
) -> None:
    code, out = invoke(
        "demo", "--events", "400", "--repayments", "--home", str(behaviour_model_home),
        "--store", settings.store.reveal(),
    )  # fmt: skip
    assert code == 0, out
    assert "Delinquency by bucket" in out and "Watchlist" in out
    [row] = query_rows(settings.store, "SELECT count() AS n FROM repayment_scores")
    assert row["n"] > 400
