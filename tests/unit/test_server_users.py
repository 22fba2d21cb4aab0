"""The server users (``clickhouse/server/users.sql`` via ``riskctl db init-users``).

chDB has no access control, so the statements cannot be executed here; instead every rendered
statement goes through ClickHouse's own parser (``formatQuery`` on chDB), the grants are
checked against what the sink writes and what the dashboards read, and the passwords are
shown never to leak into output or errors.
"""

from __future__ import annotations

import re
import socket
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.users_cmd import Accounts, apply, redact, render, sql_string
from flows.dashboards import expand, last_window, load_dashboards
from flows.store import Store, StoreError
from flows.writer import TARGETS

runner = CliRunner()
WRITER_PW = "wr1ter-S3cret\\with'quote"
ANALYST_PW = "an4lyst-S3cret-' OR 1 --"
ACCOUNTS = Accounts("riskctl", "riskctl_writer", WRITER_PW, "riskctl_analyst", ANALYST_PW)
STATEMENTS = render(ACCOUNTS)


def grants(role: str) -> dict[str, set[str]]:
    """Table -> privileges granted to a role, read from the rendered GRANT statements."""
    found: dict[str, set[str]] = {}
    for statement in STATEMENTS:
        match = re.fullmatch(rf"GRANT (.+) ON ([\w.*]+) TO {role}", statement)
        if match:
            found.setdefault(match.group(2), set()).update(
                p.strip() for p in match.group(1).split(", ")
            )
    return found


def formatted(store: Store, statement: str) -> str:
    return store.query_arrow(f"SELECT formatQuery({sql_string(statement)}) AS q").column(0)[0]


def test_every_statement_parses_with_clickhouse(store: Store) -> None:
    assert len(STATEMENTS) > 25
    for statement in STATEMENTS:
        assert formatted(store, statement).as_py(), statement


def test_a_password_stays_one_string_literal(store: Store) -> None:
    (create,) = [s for s in STATEMENTS if s.startswith("CREATE USER IF NOT EXISTS riskctl_analyst")]
    text = formatted(store, create).as_py()
    # Still exactly one statement, the quote inside the password did not end the literal ...
    assert text.startswith("CREATE USER IF NOT EXISTS riskctl_analyst IDENTIFIED WITH")
    assert text.endswith("DEFAULT DATABASE riskctl")
    # ... and the literal reads back as the very password.
    for secret in (WRITER_PW, ANALYST_PW):
        read = store.query_arrow(f"SELECT {sql_string(secret)} AS p").column(0)[0].as_py()
        assert read == secret


def test_the_writer_may_insert_into_exactly_what_the_sink_writes() -> None:
    writer = grants("riskctl_writer_role")
    inserts = {table for table, privileges in writer.items() if "INSERT" in privileges}
    sink_tables = {f"riskctl.{table}" for table, _ in TARGETS}
    journal = "riskctl.sink_journal"
    keys = "riskctl.stored_keys"
    ops = {"riskctl.ops_batches", "riskctl.ops_consumer_lag", journal, keys}
    # ... and the decision service's audit trail (`riskctl serve`)
    assert inserts == sink_tables | ops | {"riskctl.decisions"}
    # For skipping stored keys it reads the key columns (and raw events' content hashes, a
    # repeat or a conflicting duplicate); to rebuild the state of a loan first met in a run,
    # that loan's raw events and its scores' ids, PDs and model versions.
    also = {
        "raw_events": {"SELECT(content_hash)", "SELECT"},
        "scored_events": {"SELECT(loan_id)", "SELECT(pd_lifetime)", "SELECT(model_version)"},
        "repayment_scores": {"SELECT(loan_id)"},
    }
    for table, key in TARGETS:
        expected = {"INSERT", f"SELECT({key})"} | also.get(table, set())
        assert writer[f"riskctl.{table}"] == expected
    assert writer["riskctl.schema_migrations"] == {"SELECT", "CREATE TABLE"}
    # Its journal's partitions are dropped once applied; nothing else may be altered or dropped.
    assert writer[journal] == {"INSERT", "SELECT", "ALTER DELETE"}
    assert writer[keys] == {"INSERT", "SELECT"}
    others = set().union(*(p for t, p in writer.items() if t != journal))
    assert not any("ALL" in p or "ALTER" in p or "DROP" in p for p in others)


def test_the_analyst_reads_every_dashboard_table_and_nothing_raw() -> None:
    analyst = grants("riskctl_analyst_role")
    assert set().union(*analyst.values()) == {"SELECT"}
    rng = last_window(timedelta(hours=1))
    queried: set[str] = set()
    for dashboard in load_dashboards():
        variables = {v.name: v for v in dashboard.variables}
        sqls = [v.query for v in dashboard.variables] + [
            expand(t.raw_sql, rng, variables=variables) for p in dashboard.panels for t in p.targets
        ]
        for sql in sqls:
            queried |= set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)\b", sql))
    assert queried, "no tables found in the dashboards"
    assert {f"riskctl.{t}" for t in queried} <= set(analyst)
    for raw in ("raw_events", "scored_events", "dead_letters", "schema_migrations"):
        assert f"riskctl.{raw}" not in analyst


def test_granted_tables_exist_after_the_migrations(store: Store) -> None:
    tables = set(store.query_arrow("SHOW TABLES").column(0).to_pylist()) | {"schema_migrations"}
    named = set(grants("riskctl_writer_role")) | set(grants("riskctl_analyst_role"))
    ours = {name.split(".", 1)[1] for name in named if name.startswith("riskctl.")}
    assert ours <= tables, ours - tables


def test_the_analyst_profile_is_read_only_and_bounded() -> None:
    (profile,) = [s for s in STATEMENTS if s.startswith("CREATE SETTINGS PROFILE")]
    assert "readonly = 1 CONST" in profile
    assert "max_execution_time = 30 MIN 1 MAX 60 CHANGEABLE_IN_READONLY" in profile
    assert re.search(r"max_result_rows = \d+ CONST", profile)
    assert re.search(r"max_result_bytes = \d+ CONST", profile)
    alter = [s for s in STATEMENTS if s.startswith("ALTER USER riskctl_analyst\n")]
    assert alter and "SETTINGS PROFILE 'riskctl_analyst_profile'" in alter[0]


class EchoingServer:
    """A store whose error quotes the statement back, as ClickHouse's syntax errors do."""

    description = "http://admin:***@clickhouse:8123/riskctl"
    database = "riskctl"

    def __init__(self, fail_at: int) -> None:
        self.fail_at = fail_at
        self.ran: list[str] = []

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.ran.append(sql)
        if len(self.ran) == self.fail_at:
            raise StoreError(f"Code: 62. Syntax error: failed at position 40: {sql}")

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        raise AssertionError("init-users only runs statements")

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        raise AssertionError("init-users only runs statements")

    def existing_keys(self, table: str, column: str, keys: pa.Array) -> pa.Array:
        raise AssertionError("init-users only runs statements")

    def close(self) -> None:
        pass


def test_errors_never_carry_a_password() -> None:
    create = next(i for i, s in enumerate(STATEMENTS, 1) if s.startswith("ALTER USER riskctl_w"))
    with pytest.raises(StoreError) as caught:
        apply(EchoingServer(fail_at=create), STATEMENTS, ACCOUNTS.secrets)  # type: ignore[arg-type]
    message = str(caught.value)
    assert f"statement {create}" in message and "'***'" in message
    for secret in ACCOUNTS.secrets:
        assert secret not in message and sql_string(secret) not in message
    assert redact("a wr1ter-S3cret b", ["wr1ter-S3cret"]) == "a *** b"


def test_on_the_embedded_engine_the_first_statement_fails_cleanly(store: Store) -> None:
    with pytest.raises(StoreError, match=r"users\.sql statement 1 \(CREATE ROLE"):
        apply(store, STATEMENTS, ACCOUNTS.secrets)


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    base = {"RISKCTL_WRITER_PASSWORD": "", "RISKCTL_ANALYST_PASSWORD": "", "RISKCTL_STORE": ""}
    result = runner.invoke(app, ["db", "init-users", *args], env={**base, **(env or {})})
    return result.exit_code, result.output


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_dry_run_prints_the_statements_without_passwords() -> None:
    url = f"http://admin:adminpass-123@127.0.0.1:{closed_port()}/riskdb"
    code, out = invoke(
        "--store",
        url,
        "--dry-run",
        env={"RISKCTL_WRITER_PASSWORD": WRITER_PW, "RISKCTL_ANALYST_PASSWORD": ANALYST_PW},
    )
    assert code == 0, out
    assert "GRANT INSERT ON riskdb.scored_events TO riskctl_writer_role;" in out
    assert out.count("IDENTIFIED WITH sha256_password BY '***'") == 4
    for secret in (WRITER_PW, ANALYST_PW, "adminpass-123", "S3cret"):
        assert secret not in out


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["--store", "chdb:///tmp/x"], {}, "exist only on a ClickHouse server"),
        (["--store", "http://a:b@127.0.0.1:1/db"], {}, "writer password must have at least 12"),
        (
            ["--store", "http://a:b@127.0.0.1:1/db", "--analyst-user", "bad-name"],
            {"RISKCTL_WRITER_PASSWORD": WRITER_PW, "RISKCTL_ANALYST_PASSWORD": ANALYST_PW},
            "analyst user name 'bad-name'",
        ),
    ],
)
def test_bad_init_users_input_is_one_line(
    args: list[str], env: dict[str, str], fragment: str
) -> None:
    code, out = invoke(*args, env=env)
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], out


def test_an_unreachable_server_is_one_line_without_passwords() -> None:
    code, out = invoke(
        "--store",
        f"http://admin:adminpass-123@127.0.0.1:{closed_port()}/riskctl",
        env={"RISKCTL_WRITER_PASSWORD": WRITER_PW, "RISKCTL_ANALYST_PASSWORD": ANALYST_PW},
    )
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: cannot reach"), out
    for secret in (WRITER_PW, ANALYST_PW, "adminpass-123"):
        assert secret not in out
