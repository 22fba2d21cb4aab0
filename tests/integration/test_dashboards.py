"""The Grafana dashboards: valid plugin JSON, and every panel's SQL, expanded the way Grafana's
ClickHouse plugin expands it, runs on ClickHouse (chDB) after a real replay and returns rows of
the shape the panel draws.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from flows.dashboards import (
    ALL,
    DASHBOARDS_DIR,
    PLUGIN_TYPE,
    PLUGIN_VERSION,
    Dashboard,
    DashboardError,
    Selection,
    Variable,
    auto_interval_s,
    dashboard_options,
    expand,
    load_dashboard,
    load_dashboards,
    run_panel,
    shape_problems,
)
from flows.jobs import RunOptions, run_files
from flows.lag import lag_rows
from flows.loan.schedule import add_months, amortization_schedule, due_date
from flows.model import ScoringModel, load_live_model, load_model
from flows.settings import DEFAULT_BAND_NAMES, Settings
from flows.store import Store, StoreURL, open_store
from flows.store.migrations import migrate
from flows.times import Window
from training.dataset import LendingClub
from training.repayments import mixed_events
from training.replay import ReplayPlan, application_events

GRAFANA = DASHBOARDS_DIR.parent
DASHBOARDS = load_dashboards()
PANELS = [(d, p) for d in DASHBOARDS for p in d.panels]
# The module runs at a fixed processing time (the processing_clock fixture), so every window,
# month and "last hour" below is the same whatever day the suite runs.
NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
PROCESSING_EPOCH = NOW
pytestmark = pytest.mark.usefixtures("processing_clock")
# Replayed applications span the 40 minutes before NOW; the window covers them and the ops
# rows the sink writes, stamped with the processing time, which runs on from NOW while the
# module runs (3 hours covers the slowest run seen).
WINDOW = Window(NOW - timedelta(hours=1), NOW + timedelta(hours=3))
# A seasoned book on a fixed epoch, so its months and month-end states are the same whatever
# the date: loans originated over a month from BOOK_START, with a year of repayments each.
BOOK_START = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
BOOK_WINDOW = Window(BOOK_START - timedelta(days=1), WINDOW.end)
# A hand-built loan of the book that passes through every bucket at a month's end, with margins
# that no month's length can push across a bucket edge: (share of what is owed paid, days after
# the due date the payment, or for a missed one the report, happens).
EVERY_BUCKET_ORIGINATION = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
EVERY_BUCKET_PLAN = [(1.0, 0), (0.5, 10), (1.0, 0), (0.0, 40), (0.0, 40), (0.0, 45)]
# Its positions at each month's end, from the schedule and the payments made by then: the
# origination month and the first installment current; 21 days behind on a short payment;
# caught up; then 21, ~52, ~82 and ~113 days past the first missed due date (a miss is a
# position at month end whenever it is reported).
EVERY_BUCKET_STATES = [
    "current", "current", "1-29", "current", "1-29", "30-59", "60-89", "90+"
]  # fmt: skip
BUCKETS = ["current", "1-29", "30-59", "60-89", "90+"]
# Panels over monthly repayment states; they are checked over the whole book's range.
BOOK_PANELS = {"Delinquency buckets over time", "Roll rates month to month"}


class _Fields(msgspec.Struct):
    event_time: str = ""
    loan_id: str = ""


def _happened(lines: Iterable[bytes], before: datetime) -> Iterator[bytes]:
    """The events (broken twins included) that happened before ``before``: repayments due
    after it have not happened yet."""
    for raw in lines:
        try:
            moment = datetime.fromisoformat(msgspec.json.decode(raw, type=_Fields).event_time)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            yield raw  # a broken twin travels right after its original
            continue
        if moment < before:
            yield raw


def _loan_id(raw: bytes) -> str:
    try:
        return msgspec.json.decode(raw, type=_Fields).loan_id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _hand_built_loan(
    application: bytes, loan_id: str, origination: datetime, plan: list[tuple[float, int]]
) -> list[bytes]:
    """A real application re-dated to ``origination`` under ``loan_id``, and one repayment per
    ``plan`` entry ``(share, days)``: ``share`` of what is owed by then paid (0 is a missed
    installment), ``days`` after the installment's due date."""
    app = msgspec.json.decode(application)
    app.update(loan_id=loan_id, event_id=f"app-{loan_id}", event_time=_iso(origination))
    schedule = amortization_schedule(app["funded_amnt"], app["int_rate"], app["term_months"])
    monthly_rate = app["int_rate"] / 100.0 / 12.0
    balance, interest, arrears = app["funded_amnt"], 0.0, 0.0
    events = [app]
    for n, (share, days) in enumerate(plan, start=1):
        due = due_date(origination.date(), n)
        owed = round(schedule[n - 1][1] + arrears, 2)
        paid = round(owed * share, 2)
        arrears = round(owed - paid, 2)
        interest = round(interest + balance * monthly_rate, 2)
        to_interest = min(paid, interest)
        interest = round(interest - to_interest, 2)
        balance = round(balance - (paid - to_interest), 2)
        happened = datetime.combine(due + timedelta(days=days), origination.timetz())
        events.append(
            {
                "schema_version": 1,
                "event_type": "loan_repayment",
                "event_id": f"rep-{loan_id}-{n}",
                "loan_id": loan_id,
                "event_time": _iso(happened),
                "installment_number": n,
                "due_date": due.isoformat(),
                "amount_due": schedule[n - 1][1],
                "amount_paid": paid,
                "payment_date": happened.date().isoformat() if paid else None,
                "outstanding_balance": balance,
            }
        )
    return [msgspec.json.encode(event) for event in events]


def _paying_now(application: bytes, loan_id: str) -> list[bytes]:
    """A loan paying on time whose last two installments fall due in the month before NOW's
    and in NOW's month, at or before NOW: whatever the date, the current month has a
    repayment, and a roll from the month before."""
    moment = max(NOW - timedelta(minutes=1), NOW.replace(hour=0, minute=0, second=0))
    origination = datetime.combine(add_months(moment.date(), -3), moment.timetz())
    # A short month clips the third due date back to its last day, never past NOW.
    return _hand_built_loan(application, loan_id, origination, [(1.0, 0)] * 3)


@pytest.fixture(scope="module")
def replayed(
    processing_clock: datetime,
    behaviour_model_home: Path,
    model: ScoringModel,
    lending_club: LendingClub,
    tmp_path_factory: pytest.TempPathFactory,
) -> StoreURL:
    """A store holding 3,000 real loan applications replayed through the dataflow in the last
    40 minutes, a seasoned book of other real loans with a year of repayments (on the fixed
    epoch, with the hand-built loan through every bucket), a loan paying this month, and
    consumer lag."""
    tmp = tmp_path_factory.mktemp("dashboards")
    home = behaviour_model_home
    settings = Settings(home=home, store_url=f"chdb://{tmp / 'store'}", batch_size=500)
    plan = ReplayPlan(
        max_events=3000,
        seed=21,
        start=NOW - timedelta(minutes=40),
        spacing=timedelta(milliseconds=800),
        corrupt_share=0.04,
    )
    # Their repayments fall due after NOW: only the applications have happened.
    recent = list(_happened(mixed_events(lending_club, plan, months=12), WINDOW.end))
    book_plan = ReplayPlan(
        max_events=2000, seed=22, start=BOOK_START, spacing=timedelta(minutes=21, seconds=36)
    )
    taken = {_loan_id(raw) for raw in recent}
    book = [
        raw
        for raw in _happened(mixed_events(lending_club, book_plan, months=12), plan.start_time())
        if _loan_id(raw) not in taken
    ]
    application = next(iter(application_events(lending_club, ReplayPlan(max_events=1))))
    every_bucket = _hand_built_loan(
        application, "HAND-EVERY-BUCKET", EVERY_BUCKET_ORIGINATION, EVERY_BUCKET_PLAN
    )
    paying_now = _paying_now(application, "HAND-PAYING-NOW")
    path = tmp / "events.jsonl"
    path.write_bytes(b"".join(e + b"\n" for e in [*book, *every_bucket, *paying_now, *recent]))
    # Ops retention (a 30-day TTL) runs on the store's own clock, which this module does not
    # fix: its store keeps ops rows whatever their age, so the fixed processing time stays.
    db = open_store(settings.store)
    try:
        migrate(db)
        for table in ("ops_batches", "ops_consumer_lag"):
            db.command(f"ALTER TABLE {table} REMOVE TTL")
    finally:
        db.close()
    live_model = load_live_model(home / "models")
    assert live_model is not None
    # The priced model shadows the applicant champion, for the shadow panels.
    shadow = load_model(home / "models", kind="priced")
    run_files([path], settings, model, RunOptions(live_model=live_model, shadow=shadow))
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
            str(home),
            "--store",
            settings.store.reveal(),
            "--report-dir",
            str(tmp / "drift"),
        ],
    )
    assert drift.exit_code == 0, drift.output
    return settings.store


@pytest.fixture
def db(replayed: StoreURL) -> Iterator[Store]:
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
        "Mean and p95 PD at origination (lifetime)",
        "Expected loss at origination by band (lifetime)",
        "Expected loss at origination by grade (lifetime)",
        "Expected loss at origination by state (lifetime, top 15)",
        "Watchlist: riskiest loans",
        "Approvals landing in high bands",
        "Delinquency buckets over time",
        "Roll rates month to month",
        "Current expected loss by band (12 months)",
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
        "Shadow: challenger against champion",
        "Shadow: band migration",
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
            assert (target["format"], target["queryType"]) in ((0, "timeseries"), (1, "table"))
            assert target["pluginVersion"] == PLUGIN_VERSION
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

RANGE = Window(datetime(2026, 1, 1, 0, 0, tzinfo=UTC), datetime(2026, 1, 1, 6, 0, tzinfo=UTC))
GRADE = {"grade": Variable("grade", "Grade", "SELECT 1", multi=True, include_all=True)}


def test_time_macros_expand_like_the_plugin() -> None:
    sql = expand(
        "SELECT $__timeInterval(t) AS time FROM x WHERE $__timeFilter(t) "
        "AND d >= $__fromTime AND d <= $__toTime AND $__timeFilter_ms(t) "
        "AND $__dateFilter(day) AND s = $__interval_s",
        RANGE,
    )
    start, end = 1767225600, 1767247200
    assert auto_interval_s(RANGE) == 120  # 6 h over 200 points -> 108 s -> the next nice step
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
    window = BOOK_WINDOW if panel.title in BOOK_PANELS else WINDOW  # type: ignore[attr-defined]
    result = run_panel(db, dashboard, panel, window, options=options)  # type: ignore[arg-type]
    assert result.error is None, f"{result.error}\n{result.sql[0]}"
    for table in result.tables:
        assert table.num_rows > 0, f"no rows for {result.sql[0]}"
        assert shape_problems(result.panel, table) == [], result.sql[0]


def _panel_table(
    db: Store,
    title: str,
    selections: dict[str, Selection] | None = None,
    window: Window = WINDOW,
) -> pa.Table:
    business = next(d for d in DASHBOARDS if d.uid == "riskctl-business")
    panel = next(p for p in business.panels if p.title == title)
    result = run_panel(db, business, panel, window, selections, dashboard_options(db, business))
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
    origination_el = "Expected loss at origination (lifetime)"
    expected_loss = _panel_table(db, origination_el, picked).column(0)[0].as_py()
    where = f"{in_window} AND grade IN ('B', 'C') AND addr_state IN ('CA', 'TX')"
    assert 0 < loans < everything
    assert loans == _direct(db, f"SELECT count() FROM scored_events FINAL WHERE {where}")
    assert expected_loss == pytest.approx(
        _direct(db, f"SELECT sum(expected_loss_lifetime) FROM scored_events FINAL WHERE {where}")
    )

    high = _panel_table(db, "Risk band distribution", {"band": Selection.of("high")})
    totals = {name: sum(high.column(name).to_pylist()) for name in DEFAULT_BAND_NAMES}
    assert totals["high"] > 0
    assert all(v == 0 for name, v in totals.items() if name != "high")

    watch = _panel_table(db, "Watchlist: riskiest loans", {"band": Selection.of("very_high")})
    assert set(watch.column("band").to_pylist()) == {"very_high"}
    pds = watch.column("pd_12m").to_pylist()
    assert pds == sorted(pds, reverse=True)
    assert all(" " in reasons for reasons in watch.column("reasons").to_pylist())


def test_ops_panels_count_what_the_sink_wrote(db: Store) -> None:
    ops = next(d for d in DASHBOARDS if d.uid == "riskctl-ops")
    panel = next(p for p in ops.panels if p.title == "Dead letters by reason (range total)")
    result = run_panel(db, ops, panel, WINDOW)
    assert result.error is None
    shown = sum(result.tables[0].column("dead_letters").to_pylist())
    assert shown == _direct(db, "SELECT count() FROM dead_letters") > 0

    rates = run_panel(db, ops, ops.panels[0], WINDOW)
    step = auto_interval_s(WINDOW)
    read = sum(rates.tables[0].column("events_in_per_s").to_pylist()) * step
    assert read == pytest.approx(_direct(db, "SELECT sum(events_in) FROM ops_batches"))


def test_shadow_panels_compare_the_applications_of_the_range_and_the_known_outcomes(
    db: Store,
) -> None:
    ops = next(d for d in DASHBOARDS if d.uid == "riskctl-ops")
    in_window = (
        "FROM shadow_scores FINAL WHERE event_time >= fromUnixTimestamp("
        f"{int(WINDOW.start.timestamp())}) AND event_time <= fromUnixTimestamp("
        f"{int(WINDOW.end.timestamp())})"
    )
    panel = next(p for p in ops.panels if p.title == "Shadow: challenger against champion")
    result = run_panel(db, ops, panel, WINDOW)
    assert result.error is None
    [row] = result.tables[0].to_pylist()
    assert row["events"] == _direct(db, f"SELECT count() {in_window}") > 0
    assert row["champion_version"] != row["challenger_version"]
    # the seasoned book's first years are known: both AUCs are figures, not blanks
    assert row["loans_with_outcome"] > 0
    assert 0.0 < row["champion_auc"] < 1.0 and 0.0 < row["challenger_auc"] < 1.0
    panel = next(p for p in ops.panels if p.title == "Shadow: band migration")
    result = run_panel(db, ops, panel, WINDOW)
    assert result.error is None
    assert sum(result.tables[0].column("events").to_pylist()) == row["events"]


# ------------------------------------------------------------------------------ repayment panels


def _month_states(db: Store) -> dict[tuple[str, str], str]:
    """Each loan's bucket at each month's end, straight from the monthly states."""
    rows = db.query_arrow(
        "SELECT formatDateTime(month, '%Y-%m') AS period, loan_id, dpd_bucket FROM loan_month_end"
    ).to_pylist()
    return {(r["period"], r["loan_id"]): r["dpd_bucket"] for r in rows}


def _next_period(period: str) -> str:
    year, month = map(int, period.split("-"))
    return f"{year + month // 12}-{month % 12 + 1:02d}"


def test_delinquency_buckets_count_every_loan_month_state(db: Store) -> None:
    table = _panel_table(db, "Delinquency buckets over time", window=BOOK_WINDOW)
    assert table.column_names == ["period", *BUCKETS]
    states = Counter((period, bucket) for (period, _), bucket in _month_states(db).items())
    periods = table.column("period").to_pylist()
    assert periods == sorted({period for period, _ in states}) and len(periods) >= 12
    for row in table.to_pylist():
        assert [row[b] for b in BUCKETS] == [states[(row["period"], b)] for b in BUCKETS]
    assert all(sum(table.column(b).to_pylist()) > 0 for b in BUCKETS)
    states_by_month = sorted(_month_states(db).items())
    hand_built = [bucket for (_, loan), bucket in states_by_month if loan == "HAND-EVERY-BUCKET"]
    assert hand_built == EVERY_BUCKET_STATES
    # A narrow range shows only the months it touches.
    recent = _panel_table(db, "Delinquency buckets over time").column("period").to_pylist()
    assert set(recent) <= {f"{WINDOW.start:%Y-%m}", f"{WINDOW.end:%Y-%m}"}


def test_roll_rates_follow_each_loan_from_one_month_to_the_next(db: Store) -> None:
    table = _panel_table(db, "Roll rates month to month", window=BOOK_WINDOW)
    assert table.column_names == [
        "from_month", "to_month", "from_bucket", "to_bucket", "loans", "rate"
    ]  # fmt: skip
    states = _month_states(db)
    rolls = Counter(
        (period, bucket, states[(_next_period(period), loan)])
        for (period, loan), bucket in states.items()
        if (_next_period(period), loan) in states
    )
    rows = table.to_pylist()
    assert {(r["from_month"], r["from_bucket"], r["to_bucket"]): r["loans"] for r in rows} == rolls
    starts: Counter[tuple[str, str]] = Counter()
    for row in rows:
        assert row["to_month"] == _next_period(row["from_month"])
        starts[(row["from_month"], row["from_bucket"])] += row["loans"]
    for row in rows:
        share = row["loans"] / starts[(row["from_month"], row["from_bucket"])]
        assert row["rate"] == pytest.approx(share, abs=1e-4)
    # Loans roll both ways: some fall behind, some catch up.
    order = {bucket: index for index, bucket in enumerate(BUCKETS)}
    assert any(order[r["to_bucket"]] > order[r["from_bucket"]] for r in rows)
    assert any(r["from_bucket"] == "current" and r["to_bucket"] == "current" for r in rows)
    # Newest months first, buckets in delinquency order within a month.
    keys = [(r["from_month"], -order[r["from_bucket"]], -order[r["to_bucket"]]) for r in rows]
    assert keys == sorted(keys, reverse=True)


# Each loan's latest score with a 12-month expected loss, from the scores themselves: an
# origination's lifetime PD converted over its term (migration 0120), a live PD as it is.
_LATEST_12M = """(
    SELECT loan_id, argMax(band, (event_time, n)) AS band, any(grade) AS grade,
           argMax(el_12m, (event_time, n)) AS expected_loss
    FROM (
        SELECT loan_id, event_time, 0 AS n, band, grade,
               (1 - pow(1 - pd_lifetime, 12 / term_months)) * exposure * lgd AS el_12m
        FROM scored_events FINAL
        UNION ALL
        SELECT loan_id, event_time, installment_number, band, grade, expected_loss_12m
        FROM repayment_scores FINAL)
    GROUP BY loan_id
)"""


def test_current_expected_loss_follows_the_variables(db: Store) -> None:
    everything = _panel_table(db, "Current expected loss by band (12 months)")
    bands = everything.column("band").to_pylist()
    assert bands == [b for b in DEFAULT_BAND_NAMES if b in bands] and len(bands) > 1
    assert sum(everything.column("expected_loss_12m").to_pylist()) == pytest.approx(
        _direct(db, f"SELECT sum(expected_loss) FROM {_LATEST_12M}")
    )
    picked = {"grade": Selection.of("B", "C"), "band": Selection.of("high", "very_high")}
    some = _panel_table(db, "Current expected loss by band (12 months)", picked)
    assert set(some.column("band").to_pylist()) <= {"high", "very_high"}
    where = "grade IN ('B', 'C') AND band IN ('high', 'very_high')"
    shown = sum(some.column("expected_loss_12m").to_pylist())
    assert shown > 0
    assert shown == pytest.approx(
        _direct(db, f"SELECT sum(expected_loss) FROM {_LATEST_12M} WHERE {where}")
    )
