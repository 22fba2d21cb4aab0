"""Secrets stay out of repr, output and errors; users.sql passwords stay one string literal."""

from __future__ import annotations

import pickle
import re
import socket
import string
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.demo_cmd import where_line
from cli.main import app
from cli.users_cmd import Accounts, render, split_statements, sql_string
from flows.secret import Secret
from flows.settings import Settings, from_env
from flows.store import Store, parse_store_url

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "wr1ter-S3cret-pw"
URL = f"http://writer:{PASSWORD}@clickhouse:8123/riskctl"

passwords = st.text(
    alphabet=string.ascii_letters + string.digits + string.punctuation + " \n\t", min_size=12
)


def test_settings_never_show_the_store_password_but_still_use_it() -> None:
    cfg = from_env({"RISKCTL_STORE": URL, "RISKCTL_S3_SECRET_ACCESS_KEY": "aws-Secret-key-1"})
    for text in (repr(cfg), str(cfg), f"{cfg}", repr(cfg.store_url), str(cfg.store_url)):
        assert PASSWORD not in text and "aws-Secret-key-1" not in text
    assert cfg.store.reveal() == URL  # the value itself is intact for opening the store
    # Worker processes receive settings pickled: the secret survives, still hidden.
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and again.store.reveal() == URL and PASSWORD not in repr(again)


def test_a_store_url_object_redacts_its_password() -> None:
    parsed = parse_store_url(URL)
    for text in (repr(parsed), str(parsed), f"{parsed}", parsed.redacted()):
        assert PASSWORD not in text
    assert str(parsed) == "http://writer:***@clickhouse:8123/riskctl"
    assert parsed.password.reveal() == PASSWORD


@settings(max_examples=200, deadline=None)
@given(password=passwords)
def test_no_password_appears_in_any_repr(password: str) -> None:
    url = f"https://user:{quote(password, safe='')}@host.example:8443/riskctl"
    shown = [repr(parse_store_url(url)), str(parse_store_url(url)), repr(Settings(store_url=url))]
    shown.append(where_line(Settings(store_url=url)))
    assume(password not in url.replace(quote(password, safe=""), ""))  # not a word of the rest
    # nor a word the settings show anyway (a topic name, a default path)
    assume(password not in repr(Settings()) + where_line(Settings()))
    # nor part of how any hidden password is shown (e.g. "Secret('***'")
    other = Settings(store_url="https://user:other@host.example:8443/riskctl")
    assume(password not in repr(other) + repr(other.store) + where_line(other))
    for text in shown:
        assert password not in text and quote(password, safe="") not in text
    assert parse_store_url(url).password.reveal() == password


def test_secret_compares_and_hides() -> None:
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")
    assert not Secret("") and Secret("x")
    assert "x" not in repr(Secret("x")) and str(Secret("x")) == "***"
    assert Secret("x").reveal() == "x"


def test_the_demo_names_its_store_without_the_password(tmp_path: Path) -> None:
    assert where_line(Settings(home=tmp_path, store_url=URL)) == (
        f"store: http://writer:***@clickhouse:8123/riskctl    models: {tmp_path / 'models'}"
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_demo_against_an_unreachable_server_prints_no_password(trained_home: Path) -> None:
    url = f"http://writer:{PASSWORD}@127.0.0.1:{closed_port()}/riskctl"
    result = runner.invoke(
        app, ["demo", "--events", "50", "--home", str(trained_home), "--store", url]
    )
    assert result.exit_code == 1, result.output
    assert PASSWORD not in result.output
    assert "error: cannot reach http://writer:***@127.0.0.1" in result.output


# A password with everything that could end a literal, a line or a statement.
NASTY = "x';\nDROP USER admin; --\"\\`/*pw*/"
PLAIN = "plain-password-1234"


def nasty_accounts(writer: str = NASTY, analyst: str = PLAIN) -> Accounts:
    return Accounts("riskctl", "riskctl_writer", writer, "riskctl_analyst", analyst)


def test_accounts_do_not_show_their_passwords() -> None:
    accounts = nasty_accounts()
    assert NASTY not in repr(accounts) and PLAIN not in repr(accounts)
    assert accounts.secrets == (NASTY, PLAIN)


def test_dry_run_with_a_nasty_password_prints_whole_statements_and_no_password() -> None:
    result = runner.invoke(
        app,
        ["db", "init-users", "--dry-run", "--store", "http://admin:adminpass-123@ch:8123/riskctl"],
        env={"RISKCTL_WRITER_PASSWORD": NASTY, "RISKCTL_ANALYST_PASSWORD": PLAIN,
             "RISKCTL_STORE": None},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    for fragment in ("DROP USER admin", "x'", "/*pw*/", PLAIN, "adminpass-123"):
        assert fragment not in out
    statements = [s for s in out.split(";\n") if s.strip()]
    assert len(statements) == len(render(nasty_accounts(PLAIN, PLAIN)))
    assert out.count("IDENTIFIED WITH sha256_password BY '***'") == 4


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(writer=passwords, analyst=passwords)
def test_any_password_stays_inside_its_statement(store: Store, writer: str, analyst: str) -> None:
    statements = render(nasty_accounts(writer, analyst))
    assert len(statements) == len(render(nasty_accounts(PLAIN, PLAIN)))
    users = [s for s in statements if re.match(r"(CREATE|ALTER) USER", s) and "IDENTIFIED" in s]
    assert len(users) == 4
    for statement in users:
        head = statement.split("IDENTIFIED")[0]
        assert sql_string(writer if "riskctl_writer" in head else analyst) in statement
        # ClickHouse reads it as one statement (formatQuery refuses several), and what follows
        # the password is still part of it.
        formatted = store.query_arrow(f"SELECT formatQuery({sql_string(statement)}) AS q")
        assert "DEFAULT DATABASE riskctl" in formatted.column(0)[0].as_py()


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(min_size=0, max_size=40))
def test_a_literal_reads_back_as_the_very_value(store: Store, value: str) -> None:
    literal = sql_string(value)
    assert "\n" not in literal and "\r" not in literal
    assert store.query_arrow(f"SELECT {literal} AS v").column(0)[0].as_py() == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 'a;b'; SELECT 2;", ["SELECT 'a;b'", "SELECT 2"]),
        ("SELECT 'it''s; fine';", ["SELECT 'it''s; fine'"]),
        ("SELECT 'a\\';b';\nSELECT 3", ["SELECT 'a\\';b'", "SELECT 3"]),
        ('SELECT "odd;name" FROM t;', ['SELECT "odd;name" FROM t']),
        ("-- a comment; here\nSELECT 1; /* and; here */ SELECT 2", ["SELECT 1", "SELECT 2"]),
        ("SELECT 'no -- comment here';", ["SELECT 'no -- comment here'"]),
    ],
)  # fmt: skip
def test_statements_split_only_outside_quotes_and_comments(text: str, expected: list[str]) -> None:
    assert split_statements(text) == expected


def compose_variables() -> set[str]:
    text = (ROOT / "compose.yaml").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", code))


def test_env_example_sets_every_variable_compose_reads_and_env_is_ignored() -> None:
    example = (ROOT / ".env.example").read_text()
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    assert compose_variables() and compose_variables() <= assigned
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
