"""Training and export end to end on the real LendingClub loans: both origination scorecards,
their cards, sign-correctness, reasons and the honest evaluation."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import onnx
import pytest

from flows.events import LoanApplication
from flows.features import FEATURE_NAMES, FEATURES, LOWERS, RAISES, application_features
from flows.model import ScoringModel, load_model
from flows.model_cards import current_version
from flows.model_registry import CHAMPION, RETIRED, entries
from flows.settings import Bands
from training import onnx_export as export_module
from training.candidates import characteristics
from training.dataset import LendingClub, application_record, iter_rows, loan_id_for
from training.export import export_model
from training.matrix import TRAINING_EVENT_TIME, application_matrix
from training.onnx_export import ParityError
from training.publish import ExportReport
from training.reasons import NOT_SUPPLIED, REASON_TEXTS
from training.scorecard import Scorecard
from training.staging import StagedRunError, load_staged
from training.train import AucBelowFloorError, TrainingResult, train

PRICED_FEATURES = {f.name for f in FEATURES if f.priced}


def test_matrix_is_built_through_the_event_schema(lending_club: LendingClub) -> None:
    matrix = application_matrix(lending_club)
    assert matrix.features.shape == (len(lending_club), len(FEATURE_NAMES))
    assert int(matrix.labels.sum()) == 517
    for row_number, row in list(iter_rows(lending_club))[:50]:
        record = application_record(row, loan_id_for(row_number), TRAINING_EVENT_TIME)
        expected = application_features(msgspec.convert(record, LoanApplication))
        got = matrix.features[row_number - 1]
        np.testing.assert_array_equal(got, np.asarray(expected, dtype=np.float64))


def test_every_feature_documents_a_direction() -> None:
    assert all(f.direction in (RAISES, LOWERS) for f in FEATURES)
    assert {"interest_rate", "sub_grade_rank", "installment_to_income"} == PRICED_FEATURES
    # every characteristic a model may use has a reason text a lender can send
    assert set(characteristics("priced")) <= set(REASON_TEXTS)


def test_applicant_model_uses_no_pricing(
    training_result: TrainingResult, priced_result: TrainingResult
) -> None:
    applicant = {b.name for b in training_result.model.all_considered()}
    assert applicant and not applicant & PRICED_FEATURES
    priced = {b.name for b in priced_result.model.characteristics}
    assert priced & PRICED_FEATURES  # the priced model does use the grade or the rate


def test_models_reach_their_targets(
    training_result: TrainingResult, priced_result: TrainingResult
) -> None:
    """Held-out numbers on the default split (seed 42); the figures the README reports."""
    for result in (training_result, priced_result):
        test = result.champion.test
        # calibration: mean PD within 10% of the observed bad rate
        assert abs(test["mean_pd"] - test["bad_rate"]) <= 0.1 * test["bad_rate"]
        assert result.y_test.mean() == pytest.approx(517 / 9857, abs=0.002)
        assert len(result.x_test) + len(result.x_train) == 9857
        assert len(result.calibration) == 10
        cv = result.champion.cv["auc"]
        assert 0.0 < cv["std"] < 0.05
        # selection compares grid entries on the same folds, by CV, never by the test set
        best = max(result.champion.grid, key=lambda g: g["auc_mean"])
        assert best["params"] == result.champion.params
        # the held-out AUC's sampling error with ~100 bads, by bootstrap, in card and output
        assert test["auc_low"] < test["auc"] < test["auc_high"]
        assert test["auc_high"] - test["auc_low"] > 0.05
        for bench in result.benchmarks.values():
            assert bench["lift_low"] < bench["lift"] < bench["lift_high"]
    applicant = training_result.champion
    # 0.671 before recent_installment_share and 20 fine classes; 0.681 with them
    assert applicant.cv["auc"]["mean"] >= 0.675
    assert "recent_installment_share" in {b.name for b in training_result.model.characteristics}
    assert applicant.test["auc"] >= 0.62
    priced = priced_result.champion
    assert priced.cv["auc"]["mean"] >= 0.74
    assert priced.test["auc"] >= 0.74
    assert priced_result.hosmer_lemeshow["p_value"] > 0.05
    # the priced model is within noise of LendingClub's own grade on the same loans
    assert priced_result.benchmarks["sub_grade_rank"]["lift"] > -0.01


@pytest.mark.parametrize("kind", ["applicant", "priced"])
def test_every_partial_effect_follows_its_documented_direction(
    kind: str, trained_home: Path, training_result: TrainingResult
) -> None:
    """Each feature swept over its observed range, all else fixed at real loans' values,
    through the exported ONNX model: PD never moves against the documented direction."""
    model = load_model(trained_home / "models", kind=kind)
    rows = training_result.x_test[:120]
    wrong = []
    for j, feature in enumerate(FEATURES):
        present = training_result.x_train[:, j][~np.isnan(training_result.x_train[:, j])]
        grid = np.unique(np.quantile(present, np.linspace(0, 1, 41)))
        swept = np.repeat(rows, len(grid), axis=0)
        swept[:, j] = np.tile(grid, len(rows))
        pd = model.predict_pd(swept).reshape(len(rows), len(grid))
        steps = np.diff(pd, axis=1) * feature.direction
        if (steps < -1e-12).any():
            wrong.append(feature.name)
    assert wrong == []


def test_a_sign_constrained_fit_is_what_makes_it_so(training_result: TrainingResult) -> None:
    # A fit without the bound gives at least one characteristic a negative coefficient on the
    # same bins (the "wrong sign" of an unconstrained regression): the bound is doing work.
    from sklearn.linear_model import LogisticRegression

    model = training_result.model
    considered = [b for b in model.all_considered() if b.n_bins > 1]
    x = training_result.x_train
    woe = np.column_stack([b.transform(x[:, FEATURE_NAMES.index(b.name)]) for b in considered])
    free = LogisticRegression(C=model.params["C"], max_iter=2000).fit(woe, training_result.y_train)
    assert (free.coef_[0] < 0).any()
    assert all(c > 0 for c in model.coef)


def test_card_has_the_contract_fields(
    export_report: ExportReport, training_result: TrainingResult, lending_club: LendingClub
) -> None:
    models_dir = export_report.path.parent
    assert current_version(models_dir) == export_report.version
    assert current_version(models_dir, "applicant") == export_report.version
    card = json.loads((export_report.path / "card.json").read_text())
    assert card["version"] == export_report.version == export_report.path.name
    assert card["version"].endswith("-applicant-scorecard")
    assert card["kind"] == "applicant"
    assert datetime.fromisoformat(card["created_at"]).tzinfo is not None
    assert card["model_type"] == "scorecard"
    assert card["feature_names"] == list(FEATURE_NAMES)
    assert {f["name"]: f["direction"] for f in card["features"]} == {
        f.name: f.direction for f in FEATURES
    }
    assert card["onnx"] == card["onnx"] | {
        "input": "features",
        "output": "probabilities",
        "positive_class_index": 1,
    }
    assert len(card["onnx"]["sha256"]) == 64
    assert [o["name"] for o in card["onnx"]["outputs"]] == ["probabilities", "points"]
    reasons = card["reasons"]
    assert reasons["method"] == "scorecard"
    m = len(reasons["characteristics"])
    assert len(reasons["codes"]) == len(reasons["texts"]) == 2 * m
    assert reasons["codes"][m:] == [f"{c}{NOT_SUPPLIED}" for c in reasons["characteristics"]]
    metrics = card["metrics"]
    assert set(metrics["test"]) >= {"auc", "ks", "gini", "brier", "mean_pd", "bad_rate"}
    assert set(metrics["cv"]) >= {"auc", "ks", "brier"}
    assert set(metrics["hosmer_lemeshow"]) == {"statistic", "df", "p_value"}
    assert set(metrics["benchmarks"]) == {"sub_grade_rank", "interest_rate"}
    calibration = metrics["calibration"]
    assert sum(r["count"] for r in calibration) == len(training_result.x_test)
    scorecard = card["scorecard"]
    assert [p["characteristic"] for p in scorecard["points"]] == reasons["characteristics"]
    for row in scorecard["points"]:
        assert row["coef"] > 0 and row["attributes"][-1]["attribute"] == "missing"
        points = [a["points"] for a in row["attributes"][:-1]]
        # higher points are safer: they fall along a RAISES feature and rise along a LOWERS one
        assert np.all(np.diff(points) * -row["direction"] >= -1e-9)
    assert set(scorecard["information_value"]) == set(characteristics("applicant"))
    assert card["thresholds"] == list(Bands().thresholds)
    assert card["data"]["sha256"] == lending_club.sha256
    assert card["data"]["rows"] == 9857
    assert card["parity"]["max_abs_diff"] <= 1e-9
    for name in (*FEATURE_NAMES, "pd"):
        ref = card["reference"][name]
        assert ref["edges"][0] == -math.inf and ref["edges"][-1] == math.inf
        assert sum(ref["proportions"]) == pytest.approx(1.0) or not ref["proportions"]
    markdown = (export_report.path / "card.md").read_text()
    for text in (
        card["version"], lending_club.sha256, "Hosmer-Lemeshow", "sub_grade_rank alone",
        "## Scorecard", "## Reason codes", "Length of employment not supplied",
        "loan-to-income is its unsecured counterpart",
    ):  # fmt: skip
        assert text in markdown


def test_loaded_model_matches_the_fitted_scorecard(
    export_report: ExportReport, training_result: TrainingResult
) -> None:
    model = load_model(export_report.path.parent)
    assert model.version == export_report.version and model.kind == "applicant"
    x = training_result.x_test
    expected = training_result.model.predict_proba(x)[:, 1]
    pd, _, _ = model.explain(x, 3)
    assert np.abs(model.predict_pd(x) - expected).max() <= 1e-9
    assert np.abs(pd - expected).max() <= 1e-9


def _reference_reasons(card: Scorecard, x: np.ndarray, top: int) -> list[list[str]]:
    """Points lost per characteristic against its neutral attribute, ranked in plain Python."""
    points = card.points(x)
    best = card.reference_points()
    out = []
    for i in range(len(x)):
        lost = [(best[c] - points[i, c], c) for c in range(len(best))]
        ranked = sorted(lost, key=lambda t: (-t[0], t[1]))[:top]
        codes = []
        for loss, c in ranked:
            if loss <= 1e-9:
                continue
            name = card.characteristics[c].name
            missing = math.isnan(x[i, card.columns[c]])
            codes.append(f"{name}{NOT_SUPPLIED}" if missing else name)
        out.append(codes)
    return out


def test_reasons_rank_points_lost_and_never_cite_a_missing_value(
    export_report: ExportReport, training_result: TrainingResult
) -> None:
    model = load_model(export_report.path.parent)
    x = training_result.x_test[:400].copy()
    # half the loans leave their bureau fields out, as a lender's thin applications may
    names = ("total_utilization", "inquiries_6m", "installment_opened_12m", "finance_inquiries")
    bureau = [FEATURE_NAMES.index(n) for n in names]
    x[::2, bureau[0]] = np.nan
    x[1::4][:, bureau[1:]] = np.nan
    _, codes, texts = model.explain(x, 3)
    got = codes.to_pylist()
    assert got == _reference_reasons(training_result.model, x, 3)
    table = model.reason_table
    for i, row in enumerate(got):
        assert [table[c] for c in row] == texts.to_pylist()[i]
        for code in row:
            name = code.removesuffix(NOT_SUPPLIED)
            is_missing = math.isnan(x[i, FEATURE_NAMES.index(name)])
            # a missing value is only ever cited as "not supplied", never as a value
            assert code.endswith(NOT_SUPPLIED) == is_missing
    assert any(c.endswith(NOT_SUPPLIED) for row in got for c in row)
    assert sum(map(len, got)) > 2 * len(got)


def test_staged_run_round_trips(trained_home: Path, training_result: TrainingResult) -> None:
    staged = load_staged(trained_home, "applicant")
    assert staged.kind == "applicant"
    np.testing.assert_array_equal(
        staged.model.predict_proba(staged.x_test),
        training_result.model.predict_proba(staged.x_test),
    )


def test_missing_staged_run_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(StagedRunError, match="riskctl train"):
        load_staged(tmp_path, "priced")


def test_export_refuses_a_parity_break(
    training_result: TrainingResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_convert = export_module.convert

    def convert_drifted(model: Scorecard, n_features: int) -> onnx.ModelProto:
        # A graph whose intercept is off, as a converter bug would make it.
        return real_convert(dataclasses.replace(model, intercept=model.intercept + 0.1), n_features)

    monkeypatch.setattr(export_module, "convert", convert_drifted)
    models_dir = tmp_path / "models"
    with pytest.raises(ParityError, match="nothing was exported"):
        export_model(training_result, models_dir, Bands())
    assert entries(models_dir) == []
    assert current_version(models_dir) is None


def test_exports_in_the_same_second_get_distinct_versions(
    training_result: TrainingResult, priced_result: TrainingResult, tmp_path: Path
) -> None:
    models_dir = tmp_path / "models"
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = export_model(training_result, models_dir, Bands(), now=now)
    second = export_model(training_result, models_dir, Bands(), now=now)
    priced = export_model(priced_result, models_dir, Bands(), now=now)
    assert first.version == "20260102T030405Z-applicant-scorecard"
    assert second.version == f"{first.version}-2"
    assert priced.version == "20260102T030405Z-priced-scorecard"
    infos = entries(models_dir)
    assert [i.version for i in infos] == [first.version, second.version, priced.version]
    assert [i.stage for i in infos] == [RETIRED, CHAMPION, CHAMPION]
    # each kind has its own pointer; the applicant's is the registry's original CURRENT
    assert current_version(models_dir) == second.version
    assert current_version(models_dir, "priced") == priced.version
    assert load_model(models_dir, kind="priced").kind == "priced"
    assert {p.name for p in models_dir.iterdir()} == {
        "CURRENT", "CURRENT-priced", first.version, second.version, priced.version,
        "registry.jsonl", "registry.lock",
    }  # fmt: skip
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_auc_below_floor_is_refused(lending_club: LendingClub) -> None:
    grid = ({"C": 0.05, "prebins": 10, "min_share": 0.1},)
    with pytest.raises(AucBelowFloorError, match="below the floor"):
        train(lending_club, kind="applicant", folds=2, grid=grid, auc_floor=0.99)


def test_scoring_model_exposes_the_reason_table(export_report: ExportReport) -> None:
    model = ScoringModel(export_report.path)
    card = export_report.card
    assert model.reason_table == dict(
        zip(card["reasons"]["codes"], card["reasons"]["texts"], strict=True)
    )
