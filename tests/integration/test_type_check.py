"""The type check tests/run runs (mypy, configured in pyproject.toml): the code passes it, and a
step handing the next one the wrong type fails it. Each case puts a known mistake back into
one module (mypy's shadow file: the module is read from a copy) and expects an error there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[2]

# path: the module; (old, new): the mistake, as a replacement of one line's text
MISTAKES = {
    # the history step handed the live scorer a plain tuple where it takes a BookOutcome
    "history_outcome_as_tuple": (
        "flows/steps/loan_history.py",
        "out.append(BookOutcome(again, restored=len(again)))",
        "out.append((again, 0))",
    ),
    # the live scorer handed the keyed (shard, outcome) pairs instead of the outcomes
    "live_scorer_given_keyed_items": (
        "flows/dataflow.py",
        'op.flat_map_batch("live_pd", op.key_rm("unshard", observed), live)',
        'op.flat_map_batch("live_pd", observed, live)',
    ),
    # the decision API passing the request's validated items through unchecked
    "audit_row_from_unnarrowed_items": (
        "flows/api/app.py",
        'apps = cast("list[LoanApplication]", checked)',
        "apps = checked",
    ),
}

# mypy's line format, "path:line: error: ... [code]": the path is what the test reads
ERROR_LINE = re.compile(r"^(?P<path>[\w/.]+\.py):\d+: error: ")


def _errors(*args: str) -> list[str]:
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), *args])
    assert stderr == "", stderr
    paths = [m["path"] for m in map(ERROR_LINE.match, stdout.splitlines()) if m]
    assert (status == 0) == (paths == []), stdout
    return paths


def test_the_code_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert _errors() == []


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_a_mistake_fails(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    path, old, new = MISTAKES[name]
    source = (ROOT / path).read_text()
    assert source.count(old) == 1, f"{path} no longer holds {old!r}: update the case"
    shadow = tmp_path / Path(path).name
    shadow.write_text(source.replace(old, new))
    assert path in _errors("--shadow-file", path, str(shadow))
