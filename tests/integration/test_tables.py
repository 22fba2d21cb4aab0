"""Tables for people fit an 80-column terminal with nothing cut, and read evenly: PD as a
percentage with two decimals, money in whole dollars; ``--wide`` shows everything in full."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli.main import app
from cli.portfolio import portfolio, render
from cli.sql_results import Result
from cli.tables import Column, Kind, cell, print_table, rich_table
from flows.settings import Settings
from flows.store import open_store, parse_store_url

runner = CliRunner()
PD = re.compile(r"^\d{1,3}\.\d\d%$")
MONEY = re.compile(r"^-?\$\d{1,3}(,\d{3})*$")


@pytest.fixture
def scored(settings: Settings, events_file: Callable[..., Path]) -> str:
    """A store with 600 real loans run through the flow."""
    path = events_file(600, corrupt=0.02)
    args = ["--home", str(settings.home), "--store", settings.store.reveal()]
    result = runner.invoke(app, ["run", "--input", str(path), *args])
    assert result.exit_code == 0, result.output
    return settings.store.reveal()


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_watchlist_fits_80_columns_and_wide_shows_everything(scored: str) -> None:
    narrow = runner.invoke(app, ["watchlist", "-n", "10", "--store", scored])
    assert narrow.exit_code == 0, narrow.output
    assert widest(narrow.output) <= 80, narrow.output
    assert "…" not in narrow.output
    rows = json.loads(
        runner.invoke(app, ["watchlist", "-n", "10", "--store", scored, "-f", "json"]).output
    )
    lines = narrow.output.splitlines()
    header = lines[1].split()
    # the PD and expected loss say their horizon
    assert header == [
        "loan", "PD", "12m", "band", "exposure", "EL", "12m", "grade", "state", "top", "reason"
    ]
    body = [line.split() for line in lines[3:] if line.strip()]
    assert len(body) == len(rows) == 10
    for shown, row in zip(body, rows, strict=True):
        assert shown[0] == row["loan_id"]
        assert PD.match(shown[1]) and MONEY.match(shown[3]) and MONEY.match(shown[4]), shown
        # The first reason code in full, then how many more.
        assert shown[7] == row["reason_codes"][0]
        assert shown[8:] == (
            [f"+{len(row['reason_codes']) - 1}"] if len(row["reason_codes"]) > 1 else []
        )

    wide = runner.invoke(app, ["watchlist", "-n", "10", "--store", scored, "--wide"])
    assert wide.exit_code == 0, wide.output
    assert "…" not in wide.output
    for name in ("loan_id", "expected_loss_12m", "sub_grade", "addr_state", "reason_codes"):
        assert name in wide.output
    for row in rows:
        assert ", ".join(row["reason_codes"]) in wide.output


def test_the_demo_portfolio_fits_80_columns(scored: str) -> None:
    db = open_store(parse_store_url(scored))
    try:
        tables = portfolio(db)
    finally:
        db.close()
    # Even on a wide terminal the tables' own width stays within 80 columns.
    console = Console(width=200, record=True)
    console.print(render(tables))
    text = console.export_text()
    assert widest(text) <= 80, text
    assert "…" not in text
    assert "Risk bands" in text and "Watchlist" in text


def _result(values: list[object], kind: str) -> Result:
    return Result(("v",), (kind,), tuple((v,) for v in values))


@pytest.mark.parametrize(
    ("values", "column", "shown"),
    [
        ([32007.3, 6045.17, 15000], Column("x", Kind.money), ["$32,007", "$6,045", "$15,000"]),
        ([1, 0.0412, 0.5], Column("x", Kind.percent), ["100.00%", "4.12%", "50.00%"]),
        ([["a", "b", "c"]], Column("x", first_only=True), ["a +2"]),
    ],
)
def test_money_and_pd_cells_read_evenly(
    values: list[object], column: Column, shown: list[str]
) -> None:
    assert [cell(v, column) for v in values] == shown


def test_a_long_result_wraps_inside_80_columns_without_cutting() -> None:
    words = " ".join(f"word{i}" for i in range(40))
    result = Result(("a", "b"), ("String", "String"), ((words, words),))
    console = Console(width=200, record=True)
    print_table(console, rich_table(result))
    text = console.export_text()
    assert widest(text) <= 80
    assert "…" not in text
    assert "".join(text.split()).count("word39") == 2


LOAN = {
    "funded_amnt": 20000, "term_months": 60, "int_rate": 24.5, "sub_grade": "F2",
    "addr_state": "NV", "verification_status": "not_verified", "annual_inc": 24000,
}  # fmt: skip


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
@pytest.mark.parametrize(
    ("command", "fields"),
    [
        (["models", "list"], {"version", "kind", "stage", "created_at", "test_auc", "test_brier"}),
        (["score", "--json", json.dumps(LOAN)], {"loan_id", "pd_lifetime", "band", "reason_codes"}),
    ],
)
def test_one_format_option_for_machine_readable_output(
    settings: Settings, command: list[str], fields: set[str], fmt: str
) -> None:
    result = runner.invoke(app, [*command, "--home", str(settings.home), "--format", fmt])
    assert result.exit_code == 0, result.output
    out = result.output
    if fmt == "json":
        parsed = json.loads(out)
        records = parsed if isinstance(parsed, list) else [parsed]
        assert records and all(fields <= set(r) for r in records)
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert rows and fields <= set(rows[0])
    else:
        assert widest(out) <= 80 and "…" not in out
