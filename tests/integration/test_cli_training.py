"""`riskctl train`, `riskctl export` and `riskctl models list` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import training.train
from cli.main import app
from flows.model_cards import current_version
from flows.model_registry import entries
from training.staging import staged_path
from training.train import TrainingResult

runner = CliRunner()


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_train_export_and_list(tmp_path: Path) -> None:
    home = tmp_path / "home"
    trained = runner.invoke(
        app, ["train", "--home", str(home), "--kind", "priced", "--repeats", "2"]
    )
    assert trained.exit_code == 0, trained.output
    out = trained.stdout
    for text in (
        "priced scorecard", "held-out", "sub_grade alone", "Hosmer-Lemeshow",
        "held out on 2 splits, stratified", "(seeds 42-43)", "mean held-out AUC over 2 splits",
        "Calibration of the priced scorecard", "points (higher is safer)", "missing",
    ):  # fmt: skip
        assert text in out
    first = current_version(home / "models", "priced")
    assert first is not None and first in out
    assert current_version(home / "models") is None  # only the priced kind was trained

    # `export` publishes the staged run again as a new current version
    exported = runner.invoke(app, ["export", "--home", str(home), "--kind", "priced"])
    assert exported.exit_code == 0, exported.output
    second = current_version(home / "models", "priced")
    assert second is not None and second != first and second in exported.stdout

    listed = runner.invoke(app, ["models", "list", "--home", str(home), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["version"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {first, second}
    # the same staged run exported again is no worse on the same rows: it passes the gate
    assert (rows[second]["stage"], rows[first]["stage"]) == ("champion", "retired")
    assert 0.7 < rows[second]["test_auc"] < 0.85


def test_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--home", str(tmp_path), "--kind", "graded"])
    assert result.exit_code == 2
    assert _lines(result.stderr) == ["error: --kind must be one of applicant, priced, got 'graded'"]


@pytest.mark.parametrize("repeats", ["0", "-3", "many"])
def test_repeats_below_one_are_a_usage_error(tmp_path: Path, repeats: str) -> None:
    result = runner.invoke(app, ["train", "--home", str(tmp_path), "--repeats", repeats])
    assert result.exit_code == 2
    lines = _lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--repeats" in lines[0]


def test_no_export_only_stages(
    tmp_path: Path, training_result: TrainingResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real training runs in test_train_export_and_list; here only the flag matters.
    # The command imports training when it runs, so the fake replaces it where it is defined.
    monkeypatch.setattr(training.train, "train", lambda *_, **__: training_result)
    home = tmp_path / "home"
    result = runner.invoke(
        app, ["train", "--home", str(home), "--no-export", "--seed", "7", "--kind", "applicant"]
    )
    assert result.exit_code == 0, result.output
    assert "not exported" in result.stdout
    assert staged_path(home, "applicant").is_file()
    assert entries(home / "models") == []


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


# ------------------------------------------------------------------------------ riskctl score

APPLICANT = {
    "funded_amnt": 20000, "term_months": 60, "addr_state": "NV",
    "verification_status": "not_verified", "annual_inc": 24000, "emp_length_years": None,
    "inq_last_6mths": 4, "revol_util": 95.0, "all_util": 90, "total_bal_il": 30000,
    "total_il_high_credit_limit": 32000, "open_il_12m": 3,
}  # fmt: skip


def _score(home: Path, loan: dict[str, object], *extra: str) -> dict[str, object]:
    result = runner.invoke(
        app, ["score", "--json", json.dumps(loan), "--home", str(home), "--format", "json", *extra]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_applicant_model_scores_without_a_price_or_grade(trained_home: Path) -> None:
    answer = _score(trained_home, APPLICANT)
    assert answer["model_kind"] == "applicant"
    assert 0.0 < answer["pd_lifetime"] < 1.0
    assert answer["reason_codes"] and len(answer["reasons"]) == len(answer["reason_codes"])
    # employment length was not given: cited, if at all, only as not supplied
    assert "employment_years" not in answer["reason_codes"]
    assert all(" " in text for text in answer["reasons"])


def test_priced_model_is_chosen_by_setting_or_option(
    trained_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    priced_loan = {**APPLICANT, "int_rate": 24.5, "sub_grade": "F2"}
    by_option = _score(trained_home, priced_loan, "--kind", "priced")
    monkeypatch.setenv("RISKCTL_MODEL_KIND", "priced")
    by_setting = _score(trained_home, priced_loan)
    assert by_option == by_setting and by_setting["model_kind"] == "priced"
    assert by_setting["pd_lifetime"] > _score(trained_home, {**priced_loan, "sub_grade": "A1",
                                                     "int_rate": 6.0})["pd_lifetime"]  # fmt: skip


@pytest.mark.parametrize(
    ("field", "low", "high"),
    [
        ("revol_util", 10.0, 95.0),
        ("delinq_2yrs", 0, 5),
        ("inq_last_6mths", 0, 5),
        ("open_il_12m", 0, 4),
        ("annual_inc", 150000, 30000),
    ],
)
@pytest.mark.parametrize("kind", ["applicant", "priced"])
def test_score_never_falls_as_a_risk_rises(
    trained_home: Path, kind: str, field: str, low: float, high: float
) -> None:
    """The issue's own probes: more utilization or delinquency never lowers the PD."""
    loan = {**APPLICANT, "int_rate": 14.0, "sub_grade": "C3", "delinq_2yrs": 0}
    safer = _score(trained_home, {**loan, field: low}, "--kind", kind)
    riskier = _score(trained_home, {**loan, field: high}, "--kind", kind)
    assert riskier["pd_lifetime"] >= safer["pd_lifetime"]


def test_score_text_output_shows_the_reason_texts(trained_home: Path) -> None:
    result = runner.invoke(
        app, ["score", "--json", json.dumps(APPLICANT), "--home", str(trained_home)]
    )
    assert result.exit_code == 0, result.output
    assert "reasons" in result.stdout and "(applicant)" in result.stdout
    assert "[" in result.stdout  # each text is followed by its code
