"""Dashboard variables (``riskctl report --var``) are data: whatever a value holds (quotes,
backslashes, Grafana macros, other variables, SQL) it reaches ClickHouse as the same string."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from flows.dashboards import DashboardError, Selection, Variable, expand, load_dashboard
from flows.store import Store
from flows.times import Window

runner = CliRunner()
RANGE = Window(datetime(2026, 2, 28, 0, 0, tzinfo=UTC), datetime(2026, 3, 1, 6, 0, tzinfo=UTC))
BAND = {"band": Variable("band", "Band", "SELECT 1", multi=True, include_all=True)}
TEMPLATE = (
    "SELECT [${band:singlequote}] AS picked, [$band] AS bare, "
    "toUnixTimestamp($__fromTime) AS start "
    "FROM system.one WHERE $__timeFilter(toDateTime('2026-02-28 12:00:00', 'UTC')) "
    "AND $__conditionalAll(toString(dummy) NOT IN (${band:singlequote}), $band)"
)
HOSTILE = st.sampled_from(
    ["'", "\\", "\\'", "''", "$__timeFilter(", "$__timeFilter(x)", "$__fromTime", "$band",
     "${band:raw}", ")", "(", ",", ";", "--", "/*", "*/", "') OR 1=1 --", "\n", "\t", "$", "{", "}"]
)  # fmt: skip
VALUE = st.lists(
    st.one_of(HOSTILE, st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"))),
    min_size=1,
    max_size=4,
).map("".join)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(VALUE, min_size=1, max_size=3))
def test_hostile_values_reach_clickhouse_unchanged(store: Store, values: list[str]) -> None:
    sql = expand(TEMPLATE, RANGE, variables=BAND, selections={"band": Selection.of(*values)})
    row = store.query_arrow(sql).to_pylist()
    assert row, sql
    assert row[0]["picked"] == values
    assert row[0]["bare"] == values
    assert row[0]["start"] == RANGE.start.timestamp()


def test_a_dashboard_that_pastes_values_raw_is_refused(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "grafana" / "dashboards" / "business.json"
    text = source.read_text().replace("${band:singlequote}", "${band:raw}", 1)
    path = tmp_path / "business.json"
    path.write_text(text)
    with pytest.raises(DashboardError, match="would paste values into the SQL"):
        load_dashboard(path)


@pytest.mark.parametrize("fmt", ["raw", "csv", "json"])
def test_expand_refuses_unquoted_formats(fmt: str) -> None:
    with pytest.raises(DashboardError, match="unsupported variable format"):
        expand(
            f"SELECT ${{band:{fmt}}}", RANGE, variables=BAND, selections={"band": Selection.of("a")}
        )


def test_report_with_a_hostile_var_runs_every_panel(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'store'}"
    migrated = runner.invoke(app, ["db", "migrate", "--store", url])
    assert migrated.exit_code == 0, migrated.output
    out = tmp_path / "report.html"
    result = runner.invoke(
        app,
        ["report", "--store", url, "--out", str(out), "--last", "6h",
         "--var", "band=x') OR 1=1 --,$__timeFilter(,a\\'b", "--var", "grade=$band"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "panels" in result.output and "failed" not in result.output
