"""The repeated held-out evaluation on the real LendingClub loans: every split reruns the
whole pipeline on its own training part, and split #1 is the exported model's own split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flows.features import FEATURE_NAMES, FEATURES
from training import metrics
from training.binning import fit_binning
from training.candidates import SCORECARD_GRID, characteristics
from training.dataset import LendingClub
from training.matrix import Matrix, application_matrix
from training.publish import ExportReport
from training.train import (
    DEFAULT_FOLDS,
    DEFAULT_TEST_SIZE,
    TrainingResult,
    evaluate_split,
    holdout_split,
)

DIRECTION = {f.name: f.direction for f in FEATURES}


@pytest.fixture(scope="module")
def matrix(lending_club: LendingClub) -> Matrix:
    return application_matrix(lending_club)


@pytest.mark.parametrize("seed", [43, 44])
def test_each_split_refits_the_binning_on_its_own_training_part(matrix: Matrix, seed: int) -> None:
    """Every characteristic's bins of a split's model are those its training part alone gives:
    a binning fitted on all loans, or on another split, fails this."""
    grid = SCORECARD_GRID[1:]
    record, model = evaluate_split(
        matrix, seed, kind="applicant", chars=characteristics("applicant"), grid=grid,
        folds=DEFAULT_FOLDS, test_size=DEFAULT_TEST_SIZE,
    )  # fmt: skip
    idx_train, idx_test = holdout_split(matrix.labels, DEFAULT_TEST_SIZE, seed)
    x, y = matrix.features[idx_train], matrix.labels[idx_train]
    params = grid[0]
    for binning in model.all_considered():
        own = fit_binning(
            binning.name, x[:, FEATURE_NAMES.index(binning.name)], y, DIRECTION[binning.name],
            prebins=params["prebins"], min_share=params["min_share"],
        )  # fmt: skip
        assert binning == own
        assert sum(binning.counts) + binning.missing_count == len(idx_train)
    p = model.predict_proba(matrix.features[idx_test])[:, 1]
    assert record["auc"] == metrics.auc(matrix.labels[idx_test], p)
    assert record["seed"] == seed
    assert (record["train_rows"], record["test_rows"]) == (len(idx_train), len(idx_test))


def test_the_split_models_differ_from_the_full_data_binning(matrix: Matrix) -> None:
    """The binning of one split's model is not the binning of all loans."""
    _, model = evaluate_split(
        matrix, 43, kind="applicant", chars=characteristics("applicant"),
        grid=SCORECARD_GRID[1:], folds=DEFAULT_FOLDS, test_size=DEFAULT_TEST_SIZE,
    )  # fmt: skip
    name = model.characteristics[0].name
    params = SCORECARD_GRID[1]
    full = fit_binning(
        name, matrix.features[:, FEATURE_NAMES.index(name)], matrix.labels, DIRECTION[name],
        prebins=params["prebins"], min_share=params["min_share"],
    )  # fmt: skip
    assert sum(full.counts) + full.missing_count == len(matrix)
    assert model.characteristics[0] != full


@pytest.mark.parametrize("which", ["applicant", "priced"])
def test_split_one_is_the_default_split_and_the_others_rerun_the_pipeline(
    which: str,
    training_result: TrainingResult,
    priced_result: TrainingResult,
    matrix: Matrix,
) -> None:
    result = training_result if which == "applicant" else priced_result
    rep = result.repeated
    assert rep["seeds"] == [42, 43, 44] and rep["repeats"] == 3
    default = rep["default"]
    assert default["seed"] == result.seed
    assert default["auc"] == result.champion.test["auc"]
    assert default["cv_auc"] == result.champion.cv["auc"]["mean"]
    assert default["train_rows"] == len(result.x_train)
    for name, bench in result.benchmarks.items():
        assert default["benchmarks"][name] == bench["auc"]
    # each later split is exactly what the pipeline gives on that split alone
    record, _ = evaluate_split(
        matrix, 43, kind=which, chars=characteristics(which), grid=SCORECARD_GRID,
        folds=DEFAULT_FOLDS, test_size=DEFAULT_TEST_SIZE,
    )  # fmt: skip
    assert rep["splits"][1] == record
    aucs = [s["auc"] for s in rep["splits"]]
    assert rep["auc"]["mean"] == pytest.approx(float(np.mean(aucs)))
    assert len(set(aucs)) == 3  # three different test parts


def test_the_card_reports_the_repeated_evaluation(export_report: ExportReport) -> None:
    card = json.loads((export_report.path / "card.json").read_text())
    rep = card["metrics"]["repeated"]
    assert rep["repeats"] == 3 and rep["seeds"][0] == card["data"]["seed"]
    assert rep["auc"]["mean_low"] < rep["auc"]["mean"] < rep["auc"]["mean_high"]
    assert set(rep["benchmarks"]) == {"sub_grade_rank", "interest_rate"}
    markdown = (export_report.path / "card.md").read_text()
    assert "## Held out on 3 splits" in markdown
    assert f"| model AUC | {rep['auc']['mean']:.4f} |" in markdown
