"""The Grafana dashboards: valid plugin JSON, and every panel's SQL, expanded the way Grafana's
ClickHouse plugin expands it, runs on ClickHouse (chDB) after a real replay and returns rows of
the shape the panel draws.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from typer.testing import CliRunner

from cli.dashboards import (
    ALL,
    DASHBOARDS_DIR,
    PLUGIN_TYPE,
    Dashboard,
    DashboardError,
    Selection,
    TimeRange,
    Variable,
    dashboard_options,
    expand,
    load_dashboard,
    load_dashboards,
    run_panel,
    shape_problems,
)
from cli.main import app
from flows.jobs import run_files
from flows.model import ScoringModel
from flows.ops import lag_rows
from flows.settings import DEFAULT_BAND_NAMES, Settings
from flows.store import Store, open_store
from training.dataset import LendingClub
from training.replay import ReplayPlan, application_events

GRAFANA = DASHBOARDS_DIR.parent
DASHBOARDS = load_dashboards()
PANELS = [(d, p) for d in DASHBOARDS for p in d.panels]
NOW = datetime.now(UTC).replace(microsecond=0)
# Replayed events span the 40 minutes before NOW; the window covers them and the ops rows
# the sink writes while the test runs.
WINDOW = TimeRange(NOW - timedelta(hours=1), NOW + timedelta(minutes=10))


@pytest.fixture(scope="module")
def replayed(
    trained_home: Path,
    model: ScoringModel,
    lending_club: LendingClub,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """A store holding 3,000 real loans replayed through the dataflow, plus consumer lag."""
    tmp = tmp_path_factory.mktemp("dashboards")
    settings = Settings(home=trained_home, store_url=f"chdb://{tmp / 'store'}", batch_size=500)
    plan = ReplayPlan(
        max_events=3000,
        seed=21,
        start=NOW - timedelta(minutes=40),
        spacing=timedelta(milliseconds=800),
        corrupt_share=0.04,
    )
    path = tmp / "events.jsonl"
    path.write_bytes(b"".join(e + b"\n" for e in application_events(lending_club, plan)))
    run_files([path], settings, model)
    # File runs have no Kafka partitions; lag rows come from the sink's own row builder.
    db = open_store(settings.store)
    try:
        positions = {("loan-applications", 0): 1500, ("loan-applications", 1): 1490}
        marks = {("loan-applications", 0): 1520, ("loan-applications", 1): 1490}
        lag = lag_rows("riskctl", positions, marks)
        # Measured a minute ago, so a range ending "now" (to the second) includes them.
        earlier = pa.array([NOW - timedelta(minutes=1)] * lag.num_rows, lag.schema[0].type)
        db.insert_arrow("ops_consumer_lag", lag.set_column(0, "measured_at", earlier))
    finally:
        db.close()
    # A drift check, as `riskctl drift` records it, for the ops dashboard's drift panels.
    drift = CliRunner().invoke(
        app,
        [
            "drift",
            "--since",
            "2h",
            "--home",
            str(trained_home),
            "--store",
            settings.store,
            "--report-dir",
            str(tmp / "drift"),
        ],
    )
    assert drift.exit_code == 0, drift.output
    return settings.store


@pytest.fixture
def db(replayed: str) -> Iterator[Store]:
    store = open_store(replayed, create_database=False)
    try:
        yield store
    finally:
        store.close()


# ------------------------------------------------------------------------------ the JSON files


def test_both_dashboards_load_with_their_panels() -> None:
    by_uid = {d.uid: d for d in DASHBOARDS}
    assert set(by_uid) == {"riskctl-business", "riskctl-ops"}
    business = {p.title for p in by_uid["riskctl-business"].panels}
    assert {
        "Risk band distribution",
        "Mean and p95 PD",
        "Expected loss by band",
        "Expected loss by grade",
        "Expected loss by state (top 15)",
        "Watchlist: riskiest loans",
        "Approvals landing in high bands",
    } <= business
    ops = {p.title for p in by_uid["riskctl-ops"].panels}
    assert {
        "Events per second in and out",
        "End-to-end latency",
        "Consumer lag per partition",
        "Dead letters by reason",
        "Model version mix",
        "Data freshness",
        "Drift: largest PSI per check",
    } <= ops
    assert {v.name for v in by_uid["riskctl-business"].variables} == {
        "grade",
        "state",
        "band",
        "model_version",
    }


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.uid)
def test_dashboard_json_has_the_plugin_shape(dashboard: Dashboard) -> None:
    raw = json.loads(dashboard.path.read_text())
    # Grafana assigns numeric ids per instance; files carry only the stable uid.
    assert raw["id"] is None
    variables = {v["name"]: v for v in raw["templating"]["list"]}
    # Panels name the datasource through a variable, so the dashboards also work in a Grafana
    # whose ClickHouse datasource has another uid.
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == PLUGIN_TYPE
    for panel in raw["panels"]:
        assert panel["datasource"] == {"type": PLUGIN_TYPE, "uid": "${datasource}"}
        for target in panel["targets"]:
            assert set(target) >= {"datasource", "editorType", "format", "queryType", "rawSql"}
            assert target["editorType"] == "sql"
            assert (target["format"], target["queryType"]) in ((0, "timeSeries"), (1, "table"))
    for name, variable in variables.items():
        if variable["type"] == "query":
            # "All" must reach the SQL as $__all so $__conditionalAll can drop the filter.
            assert variable["includeAll"] and variable["multi"], name
            assert variable["current"]["value"] == ["$__all"], name
    boxes = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in raw["panels"]]
    assert len(set(boxes)) == len(boxes), "two panels share a grid position"


def test_band_names_in_the_dashboard_are_the_settings_bands() -> None:
    business = next(d for d in DASHBOARDS if d.uid == "riskctl-business")
    sql = next(p for p in business.panels if p.title == "Risk band distribution").targets[0]
    for band in DEFAULT_BAND_NAMES:
        assert f"band = '{band}'" in sql.raw_sql


def test_provisioning_points_at_the_dashboards_and_the_read_only_user() -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/riskctl.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/clickhouse.yaml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == PLUGIN_TYPE
    assert source["uid"] == "riskctl-clickhouse"
    assert source["jsonData"]["username"] == "${RISKCTL_ANALYST_USER}"
    # The password comes from the environment, never from the file.
    assert source["secureJsonData"]["password"] == "${RISKCTL_ANALYST_PASSWORD}"
    current = {
        d.raw["templating"]["list"][0]["current"]["value"] for d in DASHBOARDS
    }  # the datasource variable
    assert current == {source["uid"]}


def test_a_broken_dashboard_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DashboardError, match=r"bad\.json is not valid JSON"):
        load_dashboards(tmp_path)
    raw = json.loads((DASHBOARDS_DIR / "ops.json").read_text())
    raw["panels"][0]["targets"][0]["rawSql"] = "SELECT $nope"
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(DashboardError, match=r"undefined variable \$nope"):
        load_dashboard(tmp_path / "bad.json")
    raw["panels"][0]["targets"][0]["format"] = 1
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(DashboardError, match="queryType"):
        load_dashboard(tmp_path / "bad.json")


# ------------------------------------------------------------------------------ macro expansion

RANGE = TimeRange(datetime(2026, 1, 1, 0, 0, tzinfo=UTC), datetime(2026, 1, 1, 6, 0, tzinfo=UTC))
GRADE = {"grade": Variable("grade", "Grade", "SELECT 1", multi=True, include_all=True)}


def test_time_macros_expand_like_the_plugin() -> None:
    sql = expand(
        "SELECT $__timeInterval(t) AS time FROM x WHERE $__timeFilter(t) "
        "AND d >= $__fromTime AND d <= $__toTime AND $__timeFilter_ms(t) "
        "AND $__dateFilter(day) AND s = $__interval_s",
        RANGE,
    )
    start, end = 1767225600, 1767247200
    assert RANGE.interval_s() == 120  # 6 h over 200 points -> 108 s -> the next nice step
    assert sql == (
        "SELECT toStartOfInterval(toDateTime(t), INTERVAL 120 second) AS time FROM x "
        f"WHERE t >= toDateTime({start}) AND t <= toDateTime({end}) "
        f"AND d >= toDateTime({start}) AND d <= toDateTime({end}) "
        f"AND t >= fromUnixTimestamp64Milli({start}000) AND t <= fromUnixTimestamp64Milli({end}000)"
        " AND day >= toDate('2026-01-01') AND day <= toDate('2026-01-01') AND s = 120"
    )


def test_conditional_all_drops_the_filter_for_all_and_quotes_selected_values() -> None:
    sql = "SELECT 1 WHERE $__conditionalAll(grade IN (${grade:singlequote}), $grade)"
    assert expand(sql, RANGE, variables=GRADE, selections={"grade": ALL}) == "SELECT 1 WHERE 1=1"
    picked = expand(sql, RANGE, variables=GRADE, selections={"grade": Selection.of("A", "B")})
    assert picked == "SELECT 1 WHERE grade IN ('A','B')"
    # A value with a quote cannot end the string literal early.
    hostile = expand(sql, RANGE, variables=GRADE, selections={"grade": Selection.of("x' OR 1")})
    assert hostile == "SELECT 1 WHERE grade IN ('x\\' OR 1')"
    # Outside the macro, "All" becomes every option, as Grafana substitutes it.
    every = expand(
        "SELECT ${grade:singlequote}", RANGE, variables=GRADE, options={"grade": ["A", "B", "C"]}
    )
    assert every == "SELECT 'A','B','C'"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT $__nosuch(x)", "unknown or malformed macro"),
        ("SELECT 1 WHERE $__timeFilter(t", "unbalanced parentheses"),
        ("SELECT $__timeFilter()", "takes one column"),
        ("SELECT $__conditionalAll(a = 1)", "condition and a \\$variable"),
        ("SELECT ${grade:json}", "unsupported variable format"),
    ],
)
def test_bad_macros_are_errors(sql: str, message: str) -> None:
    with pytest.raises(DashboardError, match=message):
        expand(sql, RANGE, variables=GRADE)


# ------------------------------------------------------------------------------ panels on chDB


@pytest.mark.parametrize(
    ("dashboard", "panel"), PANELS, ids=[f"{d.uid}:{p.title}" for d, p in PANELS]
)
def test_every_panel_query_runs_and_returns_its_shape(
    db: Store, dashboard: Dashboard, panel: object
) -> None:
    options = dashboard_options(db, dashboard)
    result = run_panel(db, dashboard, panel, WINDOW, options=options)  # type: ignore[arg-type]
    assert result.error is None, f"{result.error}\n{result.sql[0]}"
    for table in result.tables:
        assert table.num_rows > 0, f"no rows for {result.sql[0]}"
        assert shape_problems(result.panel, table) == [], result.sql[0]


def _panel_table(db: Store, title: str, selections: dict[str, Selection] | None = None) -> pa.Table:
    business = next(d for d in DASHBOARDS if d.uid == "riskctl-business")
    panel = next(p for p in business.panels if p.title == title)
    result = run_panel(db, business, panel, WINDOW, selections, dashboard_options(db, business))
    assert result.error is None, result.error
    return result.tables[0]


def _direct(db: Store, sql: str) -> float:
    return db.query_arrow(sql).column(0)[0].as_py()


def test_variables_filter_the_panels_to_the_same_numbers_as_scored_events(db: Store) -> None:
    grades = dashboard_options(db, next(d for d in DASHBOARDS if d.uid == "riskctl-business"))
    assert grades["grade"] == ["A", "B", "C", "D", "E", "F", "G"][: len(grades["grade"])]
    in_window = (
        f"event_time >= toDateTime({int(WINDOW.start.timestamp())})"
        f" AND event_time < toDateTime({int(WINDOW.end.timestamp())})"
    )
    everything = _panel_table(db, "Loans scored").column(0)[0].as_py()
    assert everything == _direct(db, f"SELECT count() FROM scored_events FINAL WHERE {in_window}")

    picked = {"grade": Selection.of("B", "C"), "state": Selection.of("CA", "TX")}
    loans = _panel_table(db, "Loans scored", picked).column(0)[0].as_py()
    expected_loss = _panel_table(db, "Expected loss", picked).column(0)[0].as_py()
    where = f"{in_window} AND grade IN ('B', 'C') AND addr_state IN ('CA', 'TX')"
    assert 0 < loans < everything
    assert loans == _direct(db, f"SELECT count() FROM scored_events FINAL WHERE {where}")
    assert expected_loss == pytest.approx(
        _direct(db, f"SELECT sum(expected_loss) FROM scored_events FINAL WHERE {where}")
    )

    high = _panel_table(db, "Risk band distribution", {"band": Selection.of("high")})
    totals = {name: sum(high.column(name).to_pylist()) for name in DEFAULT_BAND_NAMES}
    assert totals["high"] > 0
    assert all(v == 0 for name, v in totals.items() if name != "high")

    watch = _panel_table(db, "Watchlist: riskiest loans", {"band": Selection.of("very_high")})
    assert set(watch.column("band").to_pylist()) == {"very_high"}
    pds = watch.column("pd").to_pylist()
    assert pds == sorted(pds, reverse=True)
    assert all(codes for codes in watch.column("reason_codes").to_pylist())


def test_ops_panels_count_what_the_sink_wrote(db: Store) -> None:
    ops = next(d for d in DASHBOARDS if d.uid == "riskctl-ops")
    panel = next(p for p in ops.panels if p.title == "Dead letters by reason (range total)")
    result = run_panel(db, ops, panel, WINDOW)
    assert result.error is None
    shown = sum(result.tables[0].column("dead_letters").to_pylist())
    assert shown == _direct(db, "SELECT count() FROM dead_letters") > 0

    rates = run_panel(db, ops, ops.panels[0], WINDOW)
    step = WINDOW.interval_s()
    read = sum(rates.tables[0].column("events_in_per_s").to_pylist()) * step
    assert read == pytest.approx(_direct(db, "SELECT sum(events_in) FROM ops_batches"))
