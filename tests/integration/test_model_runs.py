"""Experiment history: each `riskctl train` run is recorded and listed by `riskctl models runs`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from flows.model_cards import current_version, read_card
from training.runs import RUNS_FILE

runner = CliRunner()


def test_every_training_run_is_recorded_and_listed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    models = home / "models"
    trained = runner.invoke(app, ["train", "--home", str(home), "--kind", "applicant"])
    assert trained.exit_code == 0, trained.output
    first_log = (models / RUNS_FILE).read_bytes()
    staged = runner.invoke(
        app, ["train", "--home", str(home), "--kind", "applicant", "--seed", "7", "--no-export"]
    )
    assert staged.exit_code == 0, staged.output
    assert (models / RUNS_FILE).read_bytes().startswith(first_log)

    listed = runner.invoke(app, ["models", "runs", "--home", str(home), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    first, second = json.loads(listed.stdout)
    version = current_version(models)
    card = read_card(models / str(version))
    assert (first["run"], first["kind"], first["version"], first["stage"]) == (
        1, "applicant", version, "champion",
    )  # fmt: skip
    assert first["data"]["sha256"] == card["data"]["sha256"]
    assert first["metrics"]["test_auc"] == card["metrics"]["test"]["auc"]
    assert first["params"]["seed"] == 42 and first["params"]["chosen"] == card["params"]
    assert first["duration_s"] > 0
    assert (second["run"], second["version"], second["stage"]) == (2, None, "staged")
    assert second["params"]["seed"] == 7

    table = runner.invoke(app, ["models", "runs", "--home", str(home), "--kind", "applicant"])
    assert table.exit_code == 0, table.output
    assert "staged" in table.stdout and "champion" in table.stdout
    none = runner.invoke(app, ["models", "runs", "--home", str(home), "--kind", "priced"])
    assert none.exit_code == 0 and "no training runs" in none.stdout
    bad = runner.invoke(app, ["models", "runs", "--home", str(home), "--kind", "graded"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --kind must be one of")
