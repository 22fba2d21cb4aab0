"""Misuse of every command: one ``error:`` line, exit code 2, never a traceback.

The matrix is built from the commands themselves (every command x a value its options cannot
take: an unknown option, a word for a number, nan and infinities, an unknown choice, a store
URL that names no store) plus the mistakes that need a command's own rules. A command or
option added later is covered without touching this file. Every case fails before any work:
no model is trained, no broker or server is contacted.
"""

from __future__ import annotations

import inspect
import json
import socket
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import COMMANDS, app, load

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

# Placeholders the cases use, replaced by paths of each test's own (see `materialize`).
FILE = "@file"  # an existing events file
TWIN = "@twin"  # another existing file with the same name as @file, in another directory
DIR = "@dir"  # an existing directory
UNDER_FILE = "@file/below"  # a path whose parent is a file


def all_commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(path, command)`` for every command and group, top-level ones first."""
    for entry in COMMANDS:
        stack = [((entry.name,), load(entry))]
        while stack:
            path, command = stack.pop()
            yield path, command
            for name, sub in getattr(command, "commands", {}).items():
                stack.append(((*path, name), sub))


def _base_type(hint: Any) -> Any:
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    return hint


def options(command: Any) -> Iterator[tuple[str, Any]]:
    """``(flag, type)`` of each option, the type read from the command function's signature."""
    if command.callback is None:
        return
    hints = typing.get_type_hints(inspect.unwrap(command.callback), include_extras=True)
    for param in command.params:
        if param.param_type_name == "option":
            yield param.opts[0], _base_type(hints[param.name])


# Values no option of the type accepts.
BAD_VALUES: dict[Any, tuple[str, ...]] = {
    int: ("x", "1.5"),
    float: ("nan", "inf", "-inf", "x"),
}
BAD_STORES = ("postgres://host/db", f"chdb://{UNDER_FILE}")


def generated() -> Iterator[Any]:
    for path, command in all_commands():
        name = " ".join(path)
        yield pytest.param([*path, "--no-such-option"], {}, id=f"{name} --no-such-option")
        for flag, kind in options(command):
            for value in BAD_VALUES.get(kind, ()):
                yield pytest.param([*path, flag, value], {}, id=f"{name} {flag} {value}")
            if isinstance(kind, type) and issubclass(kind, Enum):
                yield pytest.param([*path, flag, "bogus"], {}, id=f"{name} {flag} bogus")
            if flag == "--store":
                for url in BAD_STORES:
                    yield pytest.param([*path, flag, url], {}, id=f"{name} --store {url}")
            if flag == "--home":
                yield pytest.param([*path, flag, FILE], {}, id=f"{name} --home a file")


# Settings from the environment, each wrong, under commands that read them.
BAD_ENV = [
    {"RISKCTL_LGD": "x"},
    {"RISKCTL_LGD": "nan"},
    {"RISKCTL_LGD": "2"},
    {"RISKCTL_BATCH_SIZE": "0"},
    {"RISKCTL_BATCH_SIZE": "many"},
    {"RISKCTL_BAND_THRESHOLDS": "a,b"},
    {"RISKCTL_BAND_THRESHOLDS": "0.5,0.1,0.2,0.3"},
    {"RISKCTL_BAND_THRESHOLDS": "0.1"},
    {"RISKCTL_KAFKA_PARTITIONS": "0"},
    {"RISKCTL_KAFKA_BATCH_SIZE": "1e3"},
    {"RISKCTL_KAFKA_FETCH_WAIT_MS": "0"},
    {"RISKCTL_KAFKA_FETCH_WAIT_MS": "soon"},
    {"RISKCTL_STORE_DEADLINE_S": "-1"},
    {"RISKCTL_SINK_LINGER_MS": "-5"},
    {"RISKCTL_SINK_LINGER_EVENTS": "many"},
    {"RISKCTL_DRIFT_WATCH": "0.5"},
    {"RISKCTL_DRIFT_MIN_ROWS": "0"},
    {"RISKCTL_DRIFT_ALERT": "inf"},
]
ENV_COMMANDS = [["models", "list"], ["watchlist"], ["sql", "SELECT 1"]]

LOAN = json.dumps({"funded_amnt": -5})

# A push whose only mistake is in the options that follow it.
PUSH = ["grafana", "push", "--url", "http://127.0.0.1:1", "--token", "t"]
# Mistakes that break a command's own rules, as (arguments, environment).
SEMANTIC: list[tuple[list[str], dict[str, str]]] = [
    # run
    (["run"], {}),
    (["run", "-i", FILE, "--batch-size", "0"], {}),
    (["run", "-i", FILE, "--workers", "0"], {}),
    (["run", "-i", FILE, "--processes", "0"], {}),
    (["run", "-i", FILE, "--snapshot-interval", "0"], {}),
    (["run", "-i", FILE, "--snapshot-interval", "-5"], {}),
    (["run", "-i", FILE, "-i", TWIN], {}),
    (["run", "-i", FILE, "-i", FILE], {}),
    (["run", "-i", f"{DIR}/missing.jsonl"], {}),
    (["run", "--source", "kafka", "-i", FILE], {}),
    (["run", "-i", FILE, "--processes", "2"], {}),
    (["run", "-i", FILE, "--addresses", "127.0.0.1:1,127.0.0.1:2"], {}),
    (["run", "-i", FILE, "--recovery-dir", FILE], {}),
    # replay
    (["replay", "--max", "0", "--out", "x.jsonl"], {}),
    (["replay", "--max", "5"], {}),
    (["replay", "--max", "5", "--rate", "-1", "--out", "x"], {}),
    (["replay", "--max", "5", "--corrupt", "2", "--out", "x"], {}),
    (["replay", "--max", "5", "--corrupt", "-0.1", "--out", "x"], {}),
    (["replay", "--max", "5", "--start", "yesterday", "--out", "x"], {}),
    (["replay", "--max", "5", "--months", "0", "--out", "x"], {}),
    (["replay", "--max", "5", "--spacing-ms", "0", "--out", "x"], {}),
    (["replay", "--max", "5", "--spacing-ms", "1e30", "--out", "x"], {}),
    (["replay", "--max", "5", "--out", DIR], {}),
    (["replay", "--max", "5", "--out", UNDER_FILE], {}),
    (["replay", "--to", "kafka", "--brokers", ""], {}),
    # topics
    (["topics", "create", "--partitions", "0", "--brokers", "127.0.0.1:1"], {}),
    (["topics", "create", "--partitions", "-3", "--brokers", "127.0.0.1:1"], {}),
    (["topics", "create", "--brokers", ""], {}),
    (["topics", "list", "--brokers", " "], {}),
    # bench
    (["bench", "-n", "0"], {}),
    (["bench", "-n", "10"], {}),
    (["bench", "-n", "1000", "--batch-size", "0"], {}),
    (["bench", "-n", "1000", "--workers", "0"], {}),
    (["bench", "-n", "1000", "--kafka", "--partitions", "0"], {}),
    # demo
    (["demo", "--events", "0"], {}),
    (["demo", "--corrupt", "1.5"], {}),
    # train
    (["train", "--seed", "-1"], {}),
    (["train-behaviour", "--months", "0"], {}),
    # score
    (["score"], {}),
    (["score", "--json", "{}", "--file", FILE], {}),
    (["score", "--file", f"{DIR}/missing.json"], {}),
    (["score", "--json", "{not json"], {}),
    (["score", "--json", LOAN], {}),
    (["score", "--json", "[1, 2]"], {}),
    # store and queries
    (["sql", ""], {}),
    (["sql", "   "], {}),
    (["sql", "SELECT 1", "--store", "chdb:///proc/x"], {}),
    (["sql", "SELECT 1", "--store", "chdb://"], {}),
    (["sql", "SELECT 1", "--store", "http://u:p@host:99999/db"], {}),
    (["sql", "SELECT 1", "--store", "http://u:p@host:8123/bad-name"], {}),
    (["sql", "SELECT 1", "--store", "http:///db"], {}),
    (["sql", "SELECT 1", "--store", "no-scheme"], {}),
    (["sql", "SELECT 1"], {"RISKCTL_STORE": "mysql://x"}),
    (["watchlist", "-n", "0"], {}),
    (["watchlist", "--band", "nope"], {}),
    (["watchlist", "--band", "VERY_HIGH"], {}),
    (["db", "init-users", "--store", "chdb:///tmp/x"], {}),
    (["db", "init-users", "--store", "http://a:b@127.0.0.1:1/db"], {}),
    (
        ["db", "init-users", "--store", "http://a:b@127.0.0.1:1/db", "--writer-user", "x-y"],
        {"RISKCTL_WRITER_PASSWORD": "w" * 12, "RISKCTL_ANALYST_PASSWORD": "a" * 12},
    ),
    (
        ["db", "init-users", "--store", "http://a:b@127.0.0.1:1/db", "--analyst-user", "w"],
        {
            "RISKCTL_WRITER_PASSWORD": "w" * 12,
            "RISKCTL_ANALYST_PASSWORD": "a" * 12,
            "RISKCTL_WRITER_USER": "w",
        },
    ),
    # monitoring
    (["drift", "--since", "soon"], {}),
    (["drift", "--since", "1h", "--from", "2024-01-01"], {}),
    (["drift", "--from", "not-a-date"], {}),
    (["drift", "--since", "1h", "--watch", "0.5", "--alert", "0.1"], {}),
    (["drift", "--since", "1h", "--watch", "-1"], {}),
    (["drift", "--since", "1h", "--min-rows", "0"], {}),
    (["drift", "--since", "1h", "--report-dir", FILE], {}),
    (["models", "list"], {"RISKCTL_HOME": FILE}),
    (["archive", "--since", "soon"], {}),
    (["archive", "--since", "1h"], {"RISKCTL_S3_BUCKET": ""}),
    (["report", "--last", "1000000d"], {}),
    (["report", "--last", "forever"], {}),
    (["report", "--out", DIR], {}),
    (["report", "--out", UNDER_FILE], {}),
    (["report", "--from", "not-a-date"], {}),
    (["report", "--to", "2024-01-01"], {}),
    (["report", "--last", "1h", "--from", "2024-01-01"], {}),
    (["report", "--var", "novalue"], {}),
    (["report", "--var", "no_such_variable=1"], {}),
    (["report", "--dashboard", "no-such-dashboard"], {}),
    (["report", "--dashboards", f"{DIR}/missing"], {}),
    (["report", "--dashboards", FILE], {}),
    (["report", "--dashboards", DIR], {}),  # a directory without dashboards
    (["grafana", "push", "--url", "http://127.0.0.1:1", "--token", "t", "--timeout", "0"], {}),
    (["grafana", "push", "--url", "http://127.0.0.1:1", "--token", "t", "--timeout", "-2"], {}),
    (["grafana", "push", "--url", "ftp://host", "--token", "t"], {}),
    ([*PUSH, "--dashboards", FILE], {}),
    ([*PUSH, "--dashboards", f"{DIR}/missing"], {}),
    ([*PUSH, "--dashboards", DIR], {}),  # a directory without dashboards
    (["grafana", "push", "--url", "http://127.0.0.1:1"], {"GRAFANA_TOKEN": ""}),
    (["grafana", "push"], {"GRAFANA_URL": ""}),
    # the root
    (["no-such-command"], {}),
    (["--no-such-option"], {}),
]


def cases() -> Iterator[Any]:
    yield from generated()
    for env in BAD_ENV:
        for args in ENV_COMMANDS:
            name = f"{' '.join(args)} with {','.join(f'{k}={v}' for k, v in env.items())}"
            yield pytest.param(args, env, id=name)
    for args, env in SEMANTIC:
        yield pytest.param(args, env, id=" ".join(args) + (f" with {env}" if env else ""))


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, twin = tmp_path / "a" / "events.jsonl", tmp_path / "b" / "events.jsonl"
    first.write_text("{}\n")
    twin.write_text("{}\n")
    return {UNDER_FILE: f"{first}/below", FILE: str(first), TWIN: str(twin), DIR: str(tmp_path)}


def materialize(args: list[str], places: dict[str, str]) -> list[str]:
    out = []
    for arg in args:
        for placeholder in (UNDER_FILE, FILE, TWIN, DIR):  # the longest first
            arg = arg.replace(placeholder, places[placeholder])
        out.append(arg)
    return out


def isolated_env(home: Path, extra: dict[str, str]) -> dict[str, str | None]:
    """No RISKCTL_* or Grafana setting from the machine running the tests, a home of its own."""
    env: dict[str, str | None] = {
        "RISKCTL_HOME": str(home),
        "RISKCTL_STORE": None,
        "RISKCTL_S3_BUCKET": None,
        "GRAFANA_URL": None,
        "GRAFANA_TOKEN": None,
        "RISKCTL_WRITER_PASSWORD": None,
        "RISKCTL_ANALYST_PASSWORD": None,
    }
    env.update(extra)
    return env


def assert_one_error_line(output: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    assert "Traceback" not in output


@pytest.mark.parametrize(("args", "env"), list(cases()))
def test_misuse_is_one_error_line_and_exit_2(
    args: list[str], env: dict[str, str], places: dict[str, str], tmp_path: Path
) -> None:
    env = dict(zip(env, materialize(list(env.values()), places), strict=True))
    result = runner.invoke(app, materialize(args, places), env=isolated_env(tmp_path / "home", env))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert_one_error_line(result.output)
    # Nothing was created for a command that was refused.
    assert not (tmp_path / "home").exists()


def test_the_matrix_covers_every_command_at_the_scale_the_issue_tried() -> None:
    ids = [case.id for case in cases()]
    assert len(ids) == len(set(ids)) and len(ids) >= 150
    for path, _ in all_commands():
        assert any(i.startswith(" ".join(path) + " ") for i in ids), path


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SUBPROCESS_CASES = [
    (["run", "--no-such-option"], {}),
    (["models", "list"], {"RISKCTL_LGD": "x"}),
    (["sql", "SELECT 1", "--store", "postgres://x"], {}),
    (["report", "--last", "1000000d"], {}),
    (["watchlist", "--band", "nope"], {}),
    (["run", "--snapshot-interval", "nan"], {}),
]


@pytest.mark.parametrize(("args", "env"), SUBPROCESS_CASES, ids=lambda v: " ".join(v))
def test_misuse_through_the_real_entry_point(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**_clean_environ(), "RISKCTL_HOME": str(tmp_path / "home"), **env},
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert_one_error_line(result.stderr)


def _clean_environ() -> dict[str, str]:
    import os

    keep = {k: v for k, v in os.environ.items() if not k.startswith(("RISKCTL_", "GRAFANA_"))}
    keep["PYTHONPATH"] = str(ROOT)
    return keep


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "--to", "kafka", "--max", "5"],
        ["run", "--source", "kafka"],
        ["topics", "list"],
    ],
    ids=" ".join,
)
def test_an_absent_broker_is_one_line(args: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", *args, "--brokers", f"127.0.0.1:{closed_port()}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=_clean_environ(),
    )
    # Not the user's input but the environment: exit 1, one line, no librdkafka log lines.
    assert result.returncode == 1, result.stderr
    assert_one_error_line(result.stderr)
    assert "did not answer" in result.stderr
