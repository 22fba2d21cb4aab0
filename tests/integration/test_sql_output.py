"""``riskctl sql``: every ClickHouse type prints the same way in table, CSV and JSON (dates as
ISO 8601, maps as JSON objects, bytes that are not UTF-8 escaped), one statement per call, and
read-only unless ``--write``. All on chDB, each test in a store of its own."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.sql_results import parse
from flows.store import open_store, parse_store_url

runner = CliRunner()


def sql(url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["sql", *args, "--store", url])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"chdb://{tmp_path / 'store'}"


# (ClickHouse expression, the JSON value, the CSV cell, the table cell)
TYPES = [
    pytest.param(
        "toStartOfHour(toDateTime('2026-12-01 10:20:00', 'UTC'))",
        "2026-12-01T10:00:00Z",
        "2026-12-01T10:00:00Z",
        "2026-12-01T10:00:00Z",
        id="DateTime",
    ),
    pytest.param(
        "toDateTime('2026-12-01 10:00:00', 'Asia/Tokyo')",
        "2026-12-01T10:00:00+09:00",
        "2026-12-01T10:00:00+09:00",
        "2026-12-01T10:00:00+09:00",
        id="DateTime-zone",
    ),
    pytest.param(
        "toDateTime64('2026-12-01 10:00:00.250', 3, 'UTC')",
        "2026-12-01T10:00:00.250Z",
        "2026-12-01T10:00:00.250Z",
        "2026-12-01T10:00:00.250Z",
        id="DateTime64",
    ),
    pytest.param(
        "CAST(toDateTime('2024-02-29 23:59:59', 'UTC') AS Nullable(DateTime('UTC')))",
        "2024-02-29T23:59:59Z",
        "2024-02-29T23:59:59Z",
        "2024-02-29T23:59:59Z",
        id="Nullable-DateTime",
    ),
    pytest.param("CAST(NULL AS Nullable(DateTime('UTC')))", None, "", "", id="NULL"),
    pytest.param("toDate('2026-12-01')", "2026-12-01", "2026-12-01", "2026-12-01", id="Date"),
    pytest.param("toDate32('1900-01-01')", "1900-01-01", "1900-01-01", "1900-01-01", id="Date32"),
    pytest.param(
        "map('a', 1, 'b', 2)", {"a": 1, "b": 2}, '{"a": 1, "b": 2}', '{"a": 1, "b": 2}', id="Map"
    ),
    pytest.param("unhex('C328FF')", "\\xc3(\\xff", "\\xc3(\\xff", "\\xc3(\\xff", id="binary"),
    pytest.param("'naïve \"q\"'", 'naïve "q"', 'naïve "q"', 'naïve "q"', id="String"),
    pytest.param(
        "toUInt64(18446744073709551615)",
        18446744073709551615,
        "18446744073709551615",
        "18,446,744,073,709,551,615",
        id="UInt64",
    ),
    pytest.param("toInt128(-5)", -5, "-5", "-5", id="Int128"),
    pytest.param("toDecimal64(1234.25, 2)", 1234.25, "1234.25", "1,234.25", id="Decimal"),
    pytest.param("CAST('b' AS Enum8('a' = 1, 'b' = 2))", "b", "b", "b", id="Enum"),
    pytest.param("toIPv4('10.0.0.1')", "10.0.0.1", "10.0.0.1", "10.0.0.1", id="IPv4"),
    pytest.param(
        "toUUID('00000000-0000-0000-0000-000000000001')",
        "00000000-0000-0000-0000-000000000001",
        "00000000-0000-0000-0000-000000000001",
        "00000000-0000-0000-0000-000000000001",
        id="UUID",
    ),
    pytest.param("[1, 2]", [1, 2], "[1, 2]", "1, 2", id="Array"),
    pytest.param("true", True, "true", "true", id="Bool"),
    pytest.param("nan", None, "", "", id="NaN"),
]


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Every expression of TYPES as one column of one query, printed in each format: the
    column's value by its name, per format."""
    url = f"chdb://{tmp_path_factory.mktemp('types') / 'store'}"
    columns = ", ".join(f"{p.values[0]} AS `{p.id}`" for p in TYPES)
    query = f"SELECT {columns}"
    shown: dict[str, dict[str, object]] = {}
    code, out = sql(url, query, "-f", "json")
    assert code == 0, out
    shown["json"] = json.loads(out)[0]
    code, out = sql(url, query, "-f", "csv")
    assert code == 0, out
    header, row = list(csv.reader(io.StringIO(out)))
    shown["csv"] = dict(zip(header, row, strict=True))
    code, out = sql(url, query, "--wide")
    assert code == 0, out
    # Wide tables keep each row on one line: header, rule, then the row, cells split by │.
    lines = [line for line in out.splitlines() if "│" in line or "┃" in line]
    names = [c.strip() for c in lines[0].strip("┃").split("┃")]
    cells = [c.strip() for c in lines[1].strip("│").split("│")]
    shown["table"] = dict(zip(names, cells, strict=True))
    return shown


@pytest.mark.parametrize(("expression", "as_json", "as_csv", "in_table"), TYPES)
def test_every_type_in_every_format(
    printed: dict[str, dict[str, object]],
    request: pytest.FixtureRequest,
    expression: str,
    as_json: object,
    as_csv: str,
    in_table: str,
) -> None:
    name = request.node.callspec.id
    assert printed["json"][name] == as_json, expression
    assert printed["csv"][name] == as_csv, expression
    assert printed["table"][name] == in_table, expression


def test_a_datetime_without_a_zone_takes_the_session_zone() -> None:
    raw = (
        b'["t","d"]\n["DateTime","Nullable(DateTime64(3))"]\n'
        b'["2026-07-01 12:00:00","2026-01-01 12:00:00.500"]\n'
    )
    result = parse(raw, "Europe/Berlin")
    # Summer and winter offsets of the same zone.
    assert result.rows == (("2026-07-01T12:00:00+02:00", "2026-01-01T12:00:00.500+01:00"),)


def test_quoted_64_bit_integers_from_a_server_are_numbers() -> None:
    # A server with output_format_json_quote_64bit_integers=1 writes them as strings.
    raw = b'["n","m"]\n["UInt64","Nullable(Int128)"]\n["18446744073709551615",null]\n'
    assert parse(raw).rows == ((18446744073709551615, None),)


def test_an_hour_bucket_of_stored_events_prints_as_a_time(url: str) -> None:
    db = open_store(parse_store_url(url))
    try:
        db.command("CREATE TABLE e (event_time DateTime('UTC')) ENGINE = MergeTree ORDER BY ()")
        db.command("INSERT INTO e VALUES ('2026-12-01 10:20:00'), ('2026-12-01 11:05:00')")
    finally:
        db.close()
    code, out = sql(
        url, "SELECT toStartOfHour(event_time) AS hour FROM e ORDER BY hour", "-f", "json"
    )
    assert code == 0, out
    assert json.loads(out) == [{"hour": "2026-12-01T10:00:00Z"}, {"hour": "2026-12-01T11:00:00Z"}]


# ------------------------------------------------------------------------ one statement, read-only


@pytest.fixture
def with_table(url: str) -> str:
    db = open_store(parse_store_url(url))
    try:
        db.command("CREATE TABLE raw_events (id String) ENGINE = MergeTree ORDER BY id")
        db.command("INSERT INTO raw_events VALUES ('a'), ('b')")
    finally:
        db.close()
    return url


def count_rows(url: str) -> int:
    code, out = sql(url, "SELECT count() AS n FROM raw_events", "-f", "json")
    assert code == 0, out
    return int(json.loads(out)[0]["n"])


@pytest.mark.parametrize("write", [False, True])
@pytest.mark.parametrize(
    "statement",
    [
        "SELECT 1; DROP TABLE raw_events",
        "SELECT 1;DROP TABLE raw_events;",
        "SELECT 1; INSERT INTO raw_events VALUES ('c')",
        "SELECT 1 /* ; */; TRUNCATE TABLE raw_events",
        "SELECT ';'; DROP TABLE raw_events",
    ],
)
def test_a_second_statement_never_runs(with_table: str, statement: str, write: bool) -> None:
    code, out = sql(with_table, statement, *(["--write"] if write else []))
    assert code == 2, out
    assert out.startswith("error: not one SQL statement") and len(out.splitlines()) == 1
    assert count_rows(with_table) == 2


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE raw_events",
        "TRUNCATE TABLE raw_events",
        "INSERT INTO raw_events VALUES ('c')",
        "ALTER TABLE raw_events DELETE WHERE 1",
        "CREATE TABLE other (x UInt8) ENGINE = Memory",
        "SELECT count() FROM file('/etc/hostname', 'LineAsString')",
        "SELECT 1 SETTINGS readonly = 0",
    ],
)
def test_without_write_nothing_changes(with_table: str, statement: str) -> None:
    code, out = sql(with_table, statement)
    assert code == 1, out
    assert out.startswith("error:") and len(out.splitlines()) == 1
    assert count_rows(with_table) == 2


def test_with_write_one_statement_changes_the_store(with_table: str) -> None:
    code, out = sql(with_table, "INSERT INTO raw_events VALUES ('c');", "--write")
    assert code == 0, out
    assert count_rows(with_table) == 3
    code, out = sql(with_table, "DROP TABLE raw_events", "--write")
    assert code == 0, out
    code, out = sql(with_table, "EXISTS TABLE raw_events", "-f", "json")
    assert json.loads(out) == [{"result": 0}]


def test_read_only_statements_of_every_kind_run(with_table: str) -> None:
    for statement in ("SHOW TABLES", "DESCRIBE TABLE raw_events", "SELECT 1;", "EXPLAIN SELECT 1"):
        code, out = sql(with_table, statement, "-f", "json")
        assert code == 0, (statement, out)
        assert json.loads(out)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT\n  count() AS n\nFROM raw_events",
        "SELECT count() AS n\r\n\tFROM raw_events -- a comment\n",
        "SELECT count() AS n FROM raw_events WHERE 'it''s' != '\\\\'",
    ],
)
def test_a_statement_over_several_lines_runs(with_table: str, statement: str) -> None:
    code, out = sql(with_table, statement, "-f", "json")
    assert code == 0, out
    assert json.loads(out) == [{"n": 2}]
