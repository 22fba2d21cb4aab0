"""Train the candidates on real LendingClub loans and pick the champion.

Protocol, fixed by ``seed``: a stratified 80/20 split holds out a test set that no fitting or
selection inside a candidate ever sees; within the 80 %, stratified 5-fold CV scores every grid
entry of every candidate, the best mean CV AUC per candidate is refitted on the whole training
split, and the candidate with the best held-out AUC becomes champion (so the champion's held-out
AUC is slightly optimistic when candidates are close). A champion below the AUC floor is an
error, not a model: nothing is staged or exported.

The result is staged under ``<home>/training/latest/`` so ``riskctl export`` can publish it
later without retraining.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline

from flows.errors import RiskctlError
from flows.features import FEATURE_NAMES
from training import metrics
from training.candidates import Candidate, Params, default_candidates
from training.dataset import SOURCE, LendingClub, load_lending_club
from training.matrix import Matrix, application_matrix

DEFAULT_SEED = 42
DEFAULT_FOLDS = 5
DEFAULT_TEST_SIZE = 0.2
AUC_FLOOR = 0.74
STAGING_DIR = Path("training") / "latest"
STAGED_FILE = "run.joblib"
_STAGE_FORMAT = 1

# Called as on_step(label, done, total) before each fit and once more when all are done.
StepHook = Callable[[str, int, int], None]


class TrainingError(RiskctlError):
    """Training could not produce a model worth exporting."""


class AucBelowFloorError(TrainingError):
    """The champion's held-out AUC is below the floor a model must reach to be exported."""


class StagedRunError(TrainingError):
    """There is no usable staged training run to export."""


@dataclass
class CandidateResult:
    name: str
    model_type: str
    params: dict[str, Any]
    cv: dict[str, dict[str, float]]  # metric -> {"mean", "std"} over the folds
    grid: list[dict[str, Any]]  # every grid entry's params with its CV AUC mean and std
    test: dict[str, float]
    fit_seconds: float
    champion: bool = False

    def as_card(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_type": self.model_type,
            "params": self.params,
            "cv": self.cv,
            "grid": self.grid,
            "test": self.test,
            "fit_seconds": self.fit_seconds,
            "champion": self.champion,
        }


@dataclass
class TrainingResult:
    model: Pipeline
    champion: CandidateResult
    reasons_method: str
    candidates: list[CandidateResult]
    calibration: list[dict[str, float]]  # champion's held-out calibration table
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_loan_ids: np.ndarray
    data: dict[str, Any]
    seed: int
    training_seconds: float
    trained_at: str
    feature_names: tuple[str, ...] = field(default=FEATURE_NAMES)
    stage_format: int = _STAGE_FORMAT

    @property
    def model_type(self) -> str:
        return self.champion.model_type


def _fold_stats(folds: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = [k for k in folds[0] if k != "rows"]
    return {
        k: {
            "mean": float(np.mean([f[k] for f in folds])),
            "std": float(np.std([f[k] for f in folds])),
        }
        for k in keys
    }


def _positive_proba(model: Pipeline, x: np.ndarray) -> np.ndarray:
    return model.predict_proba(x)[:, 1]


def _steps(candidates: Sequence[Candidate], folds: int) -> int:
    return sum(len(c.grid) * folds + 1 for c in candidates)


def train(
    data: LendingClub | None = None,
    *,
    seed: int = DEFAULT_SEED,
    folds: int = DEFAULT_FOLDS,
    test_size: float = DEFAULT_TEST_SIZE,
    candidates: Sequence[Candidate] | None = None,
    auc_floor: float = AUC_FLOOR,
    on_step: StepHook | None = None,
) -> TrainingResult:
    """Cross-validate and fit every candidate; the best held-out AUC is champion."""
    started = time.perf_counter()
    trained_at = datetime.now(UTC)
    data = load_lending_club() if data is None else data
    matrix: Matrix = application_matrix(data)
    candidates = tuple(default_candidates() if candidates is None else candidates)
    if not candidates or not all(c.grid for c in candidates):
        raise TrainingError("no candidate models (or an empty parameter grid) to train")
    if not 2 <= folds <= 20:
        raise TrainingError(f"folds must be between 2 and 20, got {folds}")

    idx_train, idx_test = train_test_split(
        np.arange(len(matrix)), test_size=test_size, stratify=matrix.labels, random_state=seed
    )
    x_train, y_train = matrix.features[idx_train], matrix.labels[idx_train]
    x_test, y_test = matrix.features[idx_test], matrix.labels[idx_test]
    splits = list(
        StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x_train, y_train)
    )

    total = _steps(candidates, folds)
    done = 0

    def step(label: str) -> None:
        if on_step is not None:
            on_step(label, done, total)

    results: list[tuple[CandidateResult, Pipeline, Candidate]] = []
    for candidate in candidates:
        grid_rows: list[dict[str, Any]] = []
        best: tuple[float, Params, dict[str, dict[str, float]]] | None = None
        for params in candidate.grid:
            described = " ".join(f"{k}={v}" for k, v in params.items())
            fold_metrics = []
            for k, (fit_idx, val_idx) in enumerate(splits, start=1):
                step(f"{candidate.name} {described} fold {k}/{folds}".replace("  ", " "))
                model = candidate.build(params, seed)
                model.fit(x_train[fit_idx], y_train[fit_idx])
                p = _positive_proba(model, x_train[val_idx])
                fold_metrics.append(metrics.summary(y_train[val_idx], p))
                done += 1
            stats = _fold_stats(fold_metrics)
            grid_rows.append(
                {
                    "params": dict(params),
                    "auc_mean": stats["auc"]["mean"],
                    "auc_std": stats["auc"]["std"],
                }
            )
            if best is None or stats["auc"]["mean"] > best[0]:
                best = (stats["auc"]["mean"], params, stats)
        assert best is not None  # the grid is never empty
        _, params, cv_stats = best
        step(f"{candidate.name} refit on the training split")
        fit_started = time.perf_counter()
        model = candidate.build(params, seed)
        model.fit(x_train, y_train)
        fit_seconds = time.perf_counter() - fit_started
        done += 1
        test = metrics.summary(y_test, _positive_proba(model, x_test))
        results.append(
            (
                CandidateResult(
                    name=candidate.name,
                    model_type=candidate.model_type,
                    params=dict(params),
                    cv=cv_stats,
                    grid=grid_rows,
                    test=test,
                    fit_seconds=fit_seconds,
                ),
                model,
                candidate,
            )
        )
    step("done")

    champion, model, candidate = max(results, key=lambda r: r[0].test["auc"])
    champion.champion = True
    if champion.test["auc"] < auc_floor:
        raise AucBelowFloorError(
            f"best model {champion.name} ({champion.model_type}) reached held-out AUC "
            f"{champion.test['auc']:.4f}, below the floor {auc_floor:.2f}; it was not staged"
        )
    y_all = matrix.labels
    return TrainingResult(
        model=model,
        champion=champion,
        reasons_method=candidate.reasons_method,
        candidates=[r[0] for r in results],
        calibration=metrics.calibration_table(y_test, _positive_proba(model, x_test)),
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        test_loan_ids=matrix.loan_ids[idx_test],
        data={
            "source": SOURCE,
            "sha256": data.sha256,
            "rows": len(matrix),
            "bads": int(y_all.sum()),
            "bad_rate": float(y_all.mean()),
            "train_rows": len(idx_train),
            "test_rows": len(idx_test),
            "test_size": test_size,
            "folds": folds,
            "seed": seed,
            "split": "stratified by label",
        },
        seed=seed,
        training_seconds=time.perf_counter() - started,
        trained_at=trained_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
    )


def staged_path(home: Path) -> Path:
    return home / STAGING_DIR / STAGED_FILE


def save_staged(result: TrainingResult, home: Path) -> Path:
    """Stage a training run for a later export; replaces the previous run atomically."""
    target = staged_path(home)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".run-", suffix=".tmp")
    os.close(fd)
    try:
        joblib.dump(result, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def load_staged(home: Path) -> TrainingResult:
    target = staged_path(home)
    if not target.is_file():
        raise StagedRunError(
            f"no staged training run in {target.parent}; run `riskctl train` first"
        )
    try:
        result = joblib.load(target)
    except Exception as exc:  # a truncated or foreign file: say so instead of a traceback
        raise StagedRunError(f"cannot read the staged training run {target}: {exc}") from exc
    if not isinstance(result, TrainingResult) or result.stage_format != _STAGE_FORMAT:
        raise StagedRunError(f"{target} is not a training run this version can export; retrain")
    if tuple(result.feature_names) != FEATURE_NAMES:
        raise StagedRunError(
            "the staged run was trained on different features than this code computes; retrain"
        )
    return result
