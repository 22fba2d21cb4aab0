"""`riskctl train`, `riskctl export` and `riskctl models list` through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli.training_cmds
from cli.main import app
from flows.model import current_version, list_models
from training.train import TrainingResult, staged_path

runner = CliRunner()


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_train_export_and_list(tmp_path: Path) -> None:
    home = tmp_path / "home"
    trained = runner.invoke(app, ["train", "--home", str(home)])
    assert trained.exit_code == 0, trained.output
    assert "champion: lr (logistic_regression)" in trained.stdout
    assert "Calibration of lr" in trained.stdout
    first = current_version(home / "models")
    assert first is not None and first in trained.stdout

    # `export` publishes the staged run again as a new current version
    exported = runner.invoke(app, ["export", "--home", str(home)])
    assert exported.exit_code == 0, exported.output
    second = current_version(home / "models")
    assert second is not None and second != first and second in exported.stdout

    listed = runner.invoke(app, ["models", "list", "--home", str(home)])
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[0]: line for line in _lines(listed.stdout) if "-lr" in line}
    assert set(rows) == {first, second}
    assert "*" in rows[second]
    assert "*" not in rows[first]
    assert "0.7" in rows[second]  # test AUC column


def test_no_export_only_stages(
    tmp_path: Path, training_result: TrainingResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real training runs in test_train_export_and_list; here only the flag matters.
    monkeypatch.setattr(cli.training_cmds, "train", lambda **_: training_result)
    home = tmp_path / "home"
    result = runner.invoke(app, ["train", "--home", str(home), "--no-export", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "not exported" in result.stdout
    assert staged_path(home).is_file()
    assert list_models(home / "models") == []


def test_export_without_a_staged_run_is_one_error_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "--home", str(tmp_path)])
    assert result.exit_code == 1
    lines = _lines(result.stderr)
    assert len(lines) == 1
    assert lines[0].startswith("error: no staged training run")
    assert "Traceback" not in result.output


def test_models_list_when_empty(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "list", "--home", str(tmp_path)])
    assert result.exit_code == 0
    assert "no models" in result.stdout
