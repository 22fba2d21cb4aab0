"""`riskctl retrain` end to end on the real loans, with a simulated new period: the champion is
trained on period 0 of two, the retrain on both, judged on rows neither model trained on."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from flows.model_cards import current_version
from flows.model_registry import CHALLENGER, CHAMPION, RETIRED, read_changes
from training.dataset import LendingClub
from training.gate import rebuild_split
from training.periods import through_period

runner = CliRunner()


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _stages(home: Path) -> dict[str, str]:
    listed = _invoke("models", "list", "--home", str(home), "--format", "json")
    return {row["version"]: row["stage"] for row in json.loads(listed)}


def test_retrain_on_a_new_period_registers_a_challenger_judged_on_unseen_rows(
    tmp_path: Path, lending_club: LendingClub
) -> None:
    home = tmp_path / "home"
    models = home / "models"
    base = ("retrain", "--home", str(home), "--kind", "applicant")
    out = _invoke(*base, "--through-period", "0", "--auto-promote")
    old = current_version(models)
    assert old is not None and f"{old} is now the applicant champion (the first)" in out
    period0 = through_period(lending_club, 0)
    assert 0.3 * len(lending_club) < len(period0) < 0.7 * len(lending_club)

    # The next period arrives: retrain on all loans; registered, not used.
    out = _invoke(*base)
    new = next(v for v, s in _stages(home).items() if s == CHALLENGER)
    assert current_version(models) == old and "registered as a challenger" in out
    change = read_changes(models)[-1]
    assert (change.version, change.action, change.stage) == (new, "retrain", CHALLENGER)
    gate = change.gate
    assert gate is not None
    # the evaluation rows: the new model's held-out part less what the champion trained on
    mine = rebuild_split(json.loads((models / new / "card.json").read_text()), lending_club)
    theirs = rebuild_split(json.loads((models / old / "card.json").read_text()), lending_club)
    assert gate["rows"] == len(mine.test_ids - theirs.train_ids)
    assert len(mine.test_ids) * 0.4 < gate["rows"] < len(mine.test_ids)
    assert gate["passed"] is (not gate["failures"])

    # Scheduled with --auto-promote and a margin that tolerates any drop: promoted.
    out = _invoke(*base, "--auto-promote", "--auc-margin", "-1", "--brier-margin", "1")
    newest = current_version(models)
    assert newest not in (old, new) and f"{newest} is now the applicant champion" in out
    assert _stages(home) == {old: RETIRED, new: CHALLENGER, newest: CHAMPION}

    runs = json.loads(_invoke("models", "runs", "--home", str(home), "--format", "json"))
    assert [(r["version"], r["stage"]) for r in runs] == [
        (old, CHAMPION), (new, CHALLENGER), (newest, CHAMPION),
    ]  # fmt: skip
    assert runs[0]["data"]["selection"] == {"periods": 2, "through": 0, "seed": 2015}
    assert runs[0]["data"]["rows"] == len(period0)
    assert runs[1]["data"]["sha256"] == lending_club.sha256


def test_a_period_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["retrain", "--home", str(tmp_path), "--through-period", "2", "--periods", "2"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --through-period must be below --periods (2)")
