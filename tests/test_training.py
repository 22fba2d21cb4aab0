"""Training and export end to end on the real LendingClub loans."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import numpy as np
import onnx
import pytest
from sklearn.pipeline import Pipeline

from flows.events import LoanApplication
from flows.features import FEATURE_NAMES, application_features
from flows.model import current_version, list_models, load_model
from flows.settings import Bands
from training import export as export_module
from training.candidates import default_candidates
from training.dataset import LendingClub, application_record, iter_rows, loan_id_for
from training.export import ExportReport, ParityError, export_model
from training.matrix import TRAINING_EVENT_TIME, application_matrix
from training.train import (
    AUC_FLOOR,
    AucBelowFloorError,
    StagedRunError,
    TrainingResult,
    load_staged,
    train,
)


def test_matrix_is_built_through_the_event_schema(lending_club: LendingClub) -> None:
    matrix = application_matrix(lending_club)
    assert matrix.features.shape == (len(lending_club), len(FEATURE_NAMES))
    assert int(matrix.labels.sum()) == 517
    for row_number, row in list(iter_rows(lending_club))[:50]:
        record = application_record(row, loan_id_for(row_number), TRAINING_EVENT_TIME)
        expected = application_features(msgspec.convert(record, LoanApplication))
        got = matrix.features[row_number - 1]
        np.testing.assert_array_equal(got, np.asarray(expected, dtype=np.float64))


def test_champion_clears_the_floor(training_result: TrainingResult) -> None:
    names = [c.name for c in training_result.candidates]
    assert names == ["lr", "gb", "rf"]
    best = max(training_result.candidates, key=lambda c: c.test["auc"])
    assert training_result.champion is best
    assert [c.champion for c in training_result.candidates].count(True) == 1
    assert training_result.champion.test["auc"] >= AUC_FLOOR
    for candidate in training_result.candidates:
        assert set(candidate.cv) >= {"auc", "ks", "gini", "brier"}
        assert 0.0 < candidate.cv["auc"]["std"] < 0.1
        assert 0.65 < candidate.test["auc"] < 0.9
    # the held-out split is stratified: the bad rate matches the whole data set
    assert training_result.y_test.mean() == pytest.approx(517 / 9857, abs=0.002)
    assert len(training_result.x_test) + len(training_result.x_train) == 9857


def test_card_has_the_contract_fields(
    export_report: ExportReport, training_result: TrainingResult, lending_club: LendingClub
) -> None:
    models_dir = export_report.path.parent
    assert current_version(models_dir) == export_report.version
    card = json.loads((export_report.path / "card.json").read_text())
    assert card["version"] == export_report.version == export_report.path.name
    assert card["version"].endswith(f"-{training_result.champion.name}")
    assert datetime.fromisoformat(card["created_at"]).tzinfo is not None
    assert card["model_type"] == training_result.champion.model_type
    assert card["feature_names"] == list(FEATURE_NAMES)
    assert card["onnx"] == card["onnx"] | {
        "input": "features",
        "output": "probabilities",
        "positive_class_index": 1,
    }
    reasons = card["reasons"]
    assert reasons["method"] in {"linear", "surrogate_linear"}
    for key in ("fill", "center", "scale", "coef"):
        assert len(reasons[key]) == len(FEATURE_NAMES)
    assert set(card["metrics"]["test"]) >= {"auc", "ks", "gini", "brier"}
    assert card["metrics"]["cv"]["auc"]["mean"] > 0.7
    calibration = card["metrics"]["calibration"]
    assert len(calibration) == 10
    assert sum(r["count"] for r in calibration) == len(training_result.x_test)
    assert card["thresholds"] == list(Bands().thresholds)
    assert card["data"]["sha256"] == lending_club.sha256
    assert card["data"]["rows"] == 9857
    assert card["data"]["bad_rate"] == pytest.approx(517 / 9857)
    assert card["training_seconds"] > 0
    assert [c["name"] for c in card["candidates"]] == ["lr", "gb", "rf"]
    assert card["parity"]["max_abs_diff"] <= 1e-5
    for name in (*FEATURE_NAMES, "pd"):
        ref = card["reference"][name]
        assert ref["edges"][0] == -math.inf and ref["edges"][-1] == math.inf
        assert ref["edges"] == sorted(set(ref["edges"]))
        assert len(ref["proportions"]) == len(ref["edges"]) - 1
        assert sum(ref["proportions"]) == pytest.approx(1.0)
    assert card["reference"]["employment_years"]["nan_share"] > 0.0
    markdown = (export_report.path / "card.md").read_text()
    for text in (card["version"], lending_club.sha256, "interest_rate", "int_rate / 100"):
        assert text in markdown


def test_loaded_model_matches_the_sklearn_champion(
    export_report: ExportReport, training_result: TrainingResult
) -> None:
    model = load_model(export_report.path.parent)
    assert model.version == export_report.version
    onnx_pd = model.predict_pd(training_result.x_test)
    sklearn_pd = training_result.model.predict_proba(training_result.x_test)[:, 1]
    assert np.abs(onnx_pd - sklearn_pd).max() <= 1e-5


def test_linear_reason_terms_rebuild_the_logit(
    export_report: ExportReport, training_result: TrainingResult
) -> None:
    # With the fixed seed the champion is logistic regression, so its reasons are its own terms.
    assert export_report.card["reasons"]["method"] == "linear"
    model = load_model(export_report.path.parent)
    x = training_result.x_test
    logit = model.contributions(x).sum(axis=1) + export_report.card["reasons"]["intercept"]
    p = training_result.model.predict_proba(x)[:, 1]
    np.testing.assert_allclose(logit, np.log(p / (1 - p)), atol=1e-8)


def test_risky_loans_get_reason_codes(
    export_report: ExportReport, training_result: TrainingResult
) -> None:
    model = load_model(export_report.path.parent)
    pd_ = model.predict_pd(training_result.x_test)
    risky = training_result.x_test[pd_ >= np.quantile(pd_, 0.9)]
    reasons = model.reason_codes(risky, 3).to_pylist()
    assert len(reasons) == len(risky) > 0
    assert all(1 <= len(r) <= 3 for r in reasons)
    assert {name for r in reasons for name in r} <= set(FEATURE_NAMES)


def test_staged_run_round_trips(trained_home: Path, training_result: TrainingResult) -> None:
    staged = load_staged(trained_home)
    assert staged.champion.name == training_result.champion.name
    np.testing.assert_array_equal(
        staged.model.predict_proba(staged.x_test),
        training_result.model.predict_proba(staged.x_test),
    )


def test_missing_staged_run_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(StagedRunError, match="riskctl train"):
        load_staged(tmp_path)


def test_export_refuses_a_parity_break(
    training_result: TrainingResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_convert = export_module.convert

    def convert_drifted(model: Pipeline, n_features: int) -> onnx.ModelProto:
        # Every candidate starts with the median imputer: shifting its fills changes the
        # graph's PD for rows with a missing employment length, as a converter bug would.
        drifted = copy.deepcopy(model)
        drifted.named_steps["impute"].statistics_ = drifted.named_steps["impute"].statistics_ + 3.0
        return real_convert(drifted, n_features)

    monkeypatch.setattr(export_module, "convert", convert_drifted)
    models_dir = tmp_path / "models"
    with pytest.raises(ParityError, match="nothing was exported"):
        export_model(training_result, models_dir, Bands())
    assert list_models(models_dir) == []
    assert current_version(models_dir) is None


def test_exports_in_the_same_second_get_distinct_versions(
    training_result: TrainingResult, tmp_path: Path
) -> None:
    models_dir = tmp_path / "models"
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = export_model(training_result, models_dir, Bands(), now=now)
    second = export_model(training_result, models_dir, Bands(), now=now)
    assert first.version == f"20260102T030405Z-{training_result.champion.name}"
    assert second.version == f"{first.version}-2"
    infos = list_models(models_dir)
    assert [i.version for i in infos] == [first.version, second.version]
    assert [i.current for i in infos] == [False, True]
    # nothing half-written or temporary is left beside the versions
    assert {p.name for p in models_dir.iterdir()} == {"CURRENT", first.version, second.version}
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_auc_below_floor_is_refused(lending_club: LendingClub) -> None:
    lr = dataclasses.replace(default_candidates()[0], grid=({"C": 0.01},))
    with pytest.raises(AucBelowFloorError, match="below the floor"):
        train(lending_club, candidates=[lr], auc_floor=0.99)
