"""The model registry's stages: the promotion gate, forced promotion, rollback, the log.

Real models trained on the real LendingClub loans; a deliberately weaker one (two
characteristics) is what the gate must refuse.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from flows.model_cards import current_version
from flows.model_registry import (
    CANDIDATE,
    CHALLENGER,
    CHAMPION,
    REGISTRY_FILE,
    RETIRED,
    champion,
    entries,
    read_changes,
)
from flows.settings import Bands
from training.behaviour import BehaviourResult
from training.behaviour_export import export_behaviour
from training.dataset import LendingClub
from training.export import ExportReport, export_model
from training.gate import MIN_BADS, GateError, Margins, judge, rebuild_split
from training.lifecycle import PromotionRefused, promote
from training.registry import Change, RegistryError, record, rollback
from training.train import TrainingResult, train

runner = CliRunner()
WEAK = ("term_60", "inquiries_6m")


@pytest.fixture(scope="module")
def weak_result(lending_club: LendingClub) -> TrainingResult:
    """A real but weaker applicant scorecard: two characteristics, one grid entry, 2 folds."""
    return train(
        lending_club,
        kind="applicant",
        folds=2,
        grid=({"C": 1.0, "prebins": 20, "min_share": 0.05},),
        auc_floor=0.5,
        only=WEAK,
    )


@pytest.fixture
def registry(
    tmp_path: Path, training_result: TrainingResult, weak_result: TrainingResult
) -> tuple[Path, ExportReport, ExportReport]:
    """A home whose applicant champion is the full model, the weak one a candidate."""
    models_dir = tmp_path / "home" / "models"
    strong = export_model(training_result, models_dir, Bands())
    weak = export_model(weak_result, models_dir, Bands(), make_current=False)
    return models_dir, strong, weak


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _stages(home: Path) -> dict[str, str]:
    code, out, err = _cli("models", "list", "--home", str(home), "--format", "json")
    assert code == 0, err
    return {row["version"]: row["stage"] for row in json.loads(out)}


def test_the_gate_refuses_a_weaker_model_and_keeps_the_champion(
    registry: tuple[Path, ExportReport, ExportReport], lending_club: LendingClub
) -> None:
    models_dir, strong, weak = registry
    assert weak.card["metrics"]["test"]["auc"] < strong.card["metrics"]["test"]["auc"] - 0.02
    with pytest.raises(PromotionRefused, match="AUC") as refused:
        promote(models_dir, weak.version, data=lending_club)
    verdict = refused.value.verdict
    assert not verdict.passed
    assert verdict.challenger["auc"] < verdict.champion["auc"]
    # the same held-out rows the strong model was measured on when it was trained
    assert verdict.rows == strong.card["data"]["test_rows"]
    assert verdict.champion["auc"] == pytest.approx(strong.card["metrics"]["test"]["auc"], 1e-6)
    assert current_version(models_dir) == strong.version
    assert _stages(models_dir.parent) == {strong.version: CHAMPION, weak.version: CHALLENGER}
    last = read_changes(models_dir)[-1]
    assert (last.version, last.action, last.gate["passed"]) == (weak.version, "gate refused", False)
    assert "AUC" in last.reason


def test_force_records_the_reason_and_rollback_restores_the_champion(
    registry: tuple[Path, ExportReport, ExportReport],
) -> None:
    models_dir, strong, weak = registry
    home = str(models_dir.parent)
    code, _, err = _cli("models", "promote", weak.version, "--home", home, "--force")
    assert code == 2 and err.startswith("error: --force needs --reason")
    reason = "bureau outage: only two fields arrive until Monday"
    code, out, err = _cli(
        "models", "promote", weak.version, "--home", home, "--force", "--reason", reason
    )
    assert code == 0, err
    assert "forced past the gate" in out
    assert current_version(models_dir) == weak.version
    assert _stages(models_dir.parent) == {strong.version: RETIRED, weak.version: CHAMPION}

    code, out, err = _cli("models", "show", weak.version, "--home", home, "--format", "json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["stage"] == CHAMPION and shown["card"]["version"] == weak.version
    forced = shown["history"][-1]
    assert (forced["action"], forced["reason"], forced["gate"]["passed"]) == (
        "force",
        reason,
        False,
    )
    assert any("AUC" in f for f in forced["gate"]["failures"])
    assert forced["by"] and forced["at"].endswith("Z")

    code, out, err = _cli("models", "rollback", "--home", home, "--kind", "applicant")
    assert code == 0, err
    assert current_version(models_dir) == strong.version
    assert _stages(models_dir.parent) == {strong.version: CHAMPION, weak.version: RETIRED}
    code, out, _ = _cli("models", "list", "--home", home)
    row = next(line for line in out.splitlines() if strong.version[:15] in line)
    assert CHAMPION in row

    code, out, err = _cli("models", "rollback", "--home", home, "--kind", "applicant")
    assert code == 1 and err.startswith("error: ") and "no earlier champion" in err


def test_the_gate_refuses_when_the_data_changed(
    registry: tuple[Path, ExportReport, ExportReport],
) -> None:
    models_dir, strong, weak = registry
    card_path = models_dir / weak.version / "card.json"
    card = json.loads(card_path.read_text())
    card["data"]["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    code, _, err = _cli("models", "promote", weak.version, "--home", str(models_dir.parent))
    assert code == 1
    assert err.count("\n") == 1 and "has changed" in err
    assert current_version(models_dir) == strong.version
    with pytest.raises(GateError, match="has changed"):
        promote(models_dir, weak.version)


def test_the_rebuilt_held_out_part_is_the_one_training_used(
    training_result: TrainingResult, lending_club: LendingClub, tmp_path: Path
) -> None:
    report = export_model(training_result, tmp_path / "models", Bands())
    split = rebuild_split(report.card, lending_club)
    assert split.test_ids == frozenset(training_result.test_loan_ids.tolist())
    assert not split.test_ids & split.train_ids


def test_an_export_with_no_champion_becomes_the_first(
    training_result: TrainingResult, tmp_path: Path
) -> None:
    models_dir = tmp_path / "models"
    report = export_model(training_result, models_dir, Bands(), make_current=False)
    assert current_version(models_dir) is None
    done = promote(models_dir, report.version)
    assert done.replaced is None and current_version(models_dir) == report.version


def test_models_list_shows_every_kind(behaviour_model_home: Path) -> None:
    listed = {
        (e.kind, e.stage) for e in entries(behaviour_model_home / "models") if e.stage == CHAMPION
    }
    assert listed == {("applicant", CHAMPION), ("priced", CHAMPION), ("behaviour", CHAMPION)}


def test_a_pointer_from_before_the_log_is_the_champion_and_is_retired_by_a_promotion(
    registry: tuple[Path, ExportReport, ExportReport], lending_club: LendingClub
) -> None:
    models_dir, strong, weak = registry
    (models_dir / REGISTRY_FILE).unlink()  # as exported by a version without the log
    assert _stages(models_dir.parent) == {strong.version: CHAMPION, weak.version: CANDIDATE}
    record(models_dir, "applicant", [Change(weak.version, CANDIDATE, "export", "exported")])
    assert _stages(models_dir.parent) == {strong.version: CHAMPION, weak.version: CANDIDATE}
    promote(models_dir, weak.version, force=True, reason="test", data=lending_club)
    assert _stages(models_dir.parent) == {strong.version: RETIRED, weak.version: CHAMPION}


@pytest.mark.parametrize(
    ("challenger", "champion", "margins", "bads", "passed"),
    [
        ({"auc": 0.70, "brier": 0.05}, {"auc": 0.70, "brier": 0.05}, Margins(), 100, True),
        ({"auc": 0.71, "brier": 0.05}, {"auc": 0.70, "brier": 0.05}, Margins(0.02), 100, False),
        ({"auc": 0.69, "brier": 0.05}, {"auc": 0.70, "brier": 0.05}, Margins(-0.02), 100, True),
        ({"auc": 0.72, "brier": 0.06}, {"auc": 0.70, "brier": 0.05}, Margins(), 100, False),
        ({"auc": 0.72, "brier": 0.06}, {"auc": 0.70, "brier": 0.05}, Margins(0, 0.02), 100, True),
        (
            {"auc": 0.80, "brier": 0.01},
            {"auc": 0.70, "brier": 0.05},
            Margins(),
            MIN_BADS - 1,
            False,
        ),
    ],
)
def test_the_gate_judges_by_its_margins(
    challenger: dict[str, float],
    champion: dict[str, float],
    margins: Margins,
    bads: int,
    passed: bool,
) -> None:
    verdict = judge(challenger, champion, margins, 2000, bads, "rows")
    assert verdict.passed is passed
    assert bool(verdict.failures) is not passed


_OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["v1", "v2", "v3"]), st.sampled_from(["champion", "challenger",
              "candidate", "retired", "rollback"])),
    min_size=1,
    max_size=12,
)  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=_OPERATIONS)
def test_the_log_only_grows_and_the_pointer_follows_the_champion(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, str]]
) -> None:
    models_dir = tmp_path_factory.mktemp("registry")
    for version in ("v1", "v2", "v3"):
        (models_dir / version).mkdir()
        (models_dir / version / "card.json").write_text(json.dumps({"version": version}))
    before = b""
    for version, action in operations:
        try:
            if action == "rollback":
                rollback(models_dir, "applicant", "test")
            else:
                record(models_dir, "applicant", [Change(version, action, "test", "test")])
        except RegistryError:
            pass  # refused (nothing to roll back to, the champion retired alone): no change
        path = models_dir / REGISTRY_FILE
        log = path.read_bytes() if path.exists() else b""
        assert log.startswith(before)
        before = log
        held = champion(read_changes(models_dir), "applicant")
        assert current_version(models_dir) == held
        assert [e.version for e in entries(models_dir) if e.stage == CHAMPION] == (
            [held] if held else []
        )
    shutil.rmtree(models_dir)


def test_mistakes_are_one_error_line(registry: tuple[Path, ExportReport, ExportReport]) -> None:
    models_dir, strong, _weak = registry
    home = str(models_dir.parent)
    cases = [
        (["models", "show", "no-such-version", "--home", home], 2, "not found"),
        (["models", "promote", "no-such-version", "--home", home], 2, "not found"),
        (["models", "promote", strong.version, "--home", home], 2, "already the applicant"),
        (["models", "rollback", "--kind", "graded", "--home", home], 2, "--kind must be"),
        (["models", "show", strong.version, "--format", "csv", "--home", home], 2, "not CSV"),
    ]
    for args, code, text in cases:
        exit_code, _, err = _cli(*args)
        assert exit_code == code and err.startswith("error: ") and text in err, (args, err)
        assert err.count("\n") == 1, args
    with (models_dir / REGISTRY_FILE).open("a") as log:
        log.write("{not json\n")
    exit_code, _, err = _cli("models", "list", "--home", home)
    assert exit_code == 1 and err.startswith("error: ") and "is not JSON" in err
    assert err.count("\n") == 1


def test_behavioural_models_are_compared_only_on_the_same_observations(
    behaviour_result: BehaviourResult, behaviour_model_home: Path, tmp_path: Path
) -> None:
    models_dir = tmp_path / "models"
    shutil.copytree(behaviour_model_home / "models", models_dir)
    again = export_behaviour(behaviour_result, models_dir, make_current=False)
    done = promote(models_dir, again.version)  # the same run again: no worse on the same rows
    assert done.verdict is not None and done.verdict.passed and done.kind == "behaviour"
    assert done.verdict.rows == behaviour_result.data["test_rows"]
    assert current_version(models_dir / "behaviour") == again.version

    other = export_behaviour(behaviour_result, models_dir, make_current=False)
    card_path = models_dir / "behaviour" / other.version / "card.json"
    card = json.loads(card_path.read_text())
    card["data"]["seed"] += 1  # as if its histories were derived with another seed
    card_path.write_text(json.dumps(card))
    with pytest.raises(GateError, match="not tested on the same observations"):
        promote(models_dir, other.version)
    assert current_version(models_dir / "behaviour") == again.version
    forced = promote(models_dir, other.version, force=True, reason="new histories")
    assert forced.forced and forced.verdict is None
    last = read_changes(models_dir / "behaviour")[-1]
    assert (last.action, last.reason, last.gate["passed"]) == ("force", "new histories", False)
    assert "not tested on the same observations" in last.gate["error"]
