"""Train an origination scorecard of one kind on real LendingClub loans.

Protocol, fixed by ``seed``: a stratified 80/20 split holds out a test set that no fitting or
selection ever sees; within the 80 %, stratified 5-fold CV scores every grid entry of the
kind's scorecard on the same folds and the same characteristics (like with like), the best mean
CV AUC is refitted on the whole training split, and only then is it measured on the held-out
set, next to the pricing it competes with (``sub_grade`` alone, ``int_rate`` alone) on the same
rows. A model below its kind's AUC floor is an error, not a model: nothing is staged.

Each kind's result is staged under ``<home>/training/latest/`` so ``riskctl export`` can
publish it later without retraining.
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

from flows.errors import RiskctlError
from flows.features import FEATURE_NAMES
from flows.settings import MODEL_KINDS
from flows.times import iso_utc
from training import metrics
from training.candidates import SCORECARD_GRID, Params, characteristics
from training.dataset import SOURCE, LendingClub, load_lending_club
from training.defaults import DEFAULT_SEED as DEFAULT_SEED
from training.matrix import Matrix, application_matrix
from training.scorecard import Scorecard, fit_scorecard

DEFAULT_FOLDS = 5
DEFAULT_TEST_SIZE = 0.2
# Below these a kind's model is not worth exporting. The applicant model has far less to go on
# (the best unconstrained model without the grade reaches ~0.68 in CV here).
AUC_FLOORS = {"applicant": 0.62, "priced": 0.72}
STAGING_DIR = Path("training") / "latest"
_STAGE_FORMAT = 3
# Resamples of the held-out set behind the 95% intervals of its AUC and lifts.
BOOTSTRAP_ROUNDS = 1000
# The pricing a priced model must beat, scored alone on the same held-out rows.
BENCHMARKS = ("sub_grade_rank", "interest_rate")

# Called as on_step(label, done, total) before each fit and once more when all are done.
StepHook = Callable[[str, int, int], None]


class TrainingError(RiskctlError):
    """Training could not produce a model worth exporting."""


class AucBelowFloorError(TrainingError):
    """The model's held-out AUC is below the floor a model must reach to be exported."""


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
    kind: str
    model: Scorecard
    champion: CandidateResult
    candidates: list[CandidateResult]
    calibration: list[dict[str, float]]  # held-out calibration table (PD deciles)
    hosmer_lemeshow: dict[str, float]  # on the held-out calibration deciles
    benchmarks: dict[str, dict[str, float]]  # feature -> held-out AUC of it alone, and lift
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


def _benchmarks(
    matrix: np.ndarray, y: np.ndarray, model_auc: float, intervals: dict[str, Any]
) -> dict[str, Any]:
    """Held-out AUC of each pricing feature alone, and the model's lift over it with its
    paired bootstrap interval."""
    out: dict[str, Any] = {}
    for name in BENCHMARKS:
        auc = metrics.auc(y, matrix[:, FEATURE_NAMES.index(name)])
        lift = intervals["lift"][name]
        out[name] = {
            "auc": auc, "lift": model_auc - auc, "lift_low": lift["low"], "lift_high": lift["high"]
        }
    return out


def holdout_split(labels: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training part and the held-out part: the one split training uses and
    the promotion gate rebuilds from a card's seed."""
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=test_size, stratify=labels, random_state=seed
    )
    return idx_train, idx_test


def train(
    data: LendingClub | None = None,
    *,
    kind: str = "applicant",
    seed: int = DEFAULT_SEED,
    folds: int = DEFAULT_FOLDS,
    test_size: float = DEFAULT_TEST_SIZE,
    grid: Sequence[Params] = SCORECARD_GRID,
    auc_floor: float | None = None,
    on_step: StepHook | None = None,
    matrix: Matrix | None = None,
    only: Sequence[str] | None = None,
) -> TrainingResult:
    """Cross-validate the kind's scorecard grid, refit the best and measure it held out.

    ``only`` narrows the kind's characteristics to these (a smaller model to compare with)."""
    if kind not in MODEL_KINDS:
        raise TrainingError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    started = time.perf_counter()
    trained_at = datetime.now(UTC)
    data = load_lending_club() if data is None else data
    matrix = application_matrix(data) if matrix is None else matrix
    if not grid:
        raise TrainingError("an empty parameter grid: nothing to train")
    if not 2 <= folds <= 20:
        raise TrainingError(f"folds must be between 2 and 20, got {folds}")
    floor = AUC_FLOORS[kind] if auc_floor is None else auc_floor
    chars = characteristics(kind)
    if only is not None:
        unknown = sorted(set(only) - set(chars))
        if unknown or not only:
            raise TrainingError(f"a {kind} model cannot use {unknown or 'no characteristics'}")
        chars = tuple(c for c in chars if c in only)

    idx_train, idx_test = holdout_split(matrix.labels, test_size, seed)
    x_train, y_train = matrix.features[idx_train], matrix.labels[idx_train]
    x_test, y_test = matrix.features[idx_test], matrix.labels[idx_test]
    splits = list(
        StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x_train, y_train)
    )
    total = len(grid) * folds + 1
    done = 0

    def step(label: str) -> None:
        if on_step is not None:
            on_step(label, done, total)

    def fit(x: np.ndarray, y: np.ndarray, params: Params) -> Scorecard:
        return fit_scorecard(x, y, FEATURE_NAMES, chars, kind=kind, **params)

    grid_rows: list[dict[str, Any]] = []
    best: tuple[float, Params, dict[str, dict[str, float]]] | None = None
    for params in grid:
        described = " ".join(f"{k}={v}" for k, v in params.items())
        fold_metrics = []
        for k, (fit_idx, val_idx) in enumerate(splits, start=1):
            step(f"{kind} scorecard {described} fold {k}/{folds}")
            model = fit(x_train[fit_idx], y_train[fit_idx], params)
            p = model.predict_proba(x_train[val_idx])[:, 1]
            fold_metrics.append(metrics.summary(y_train[val_idx], p))
            done += 1
        stats = _fold_stats(fold_metrics)
        grid_rows.append(
            {"params": dict(params), "auc_mean": stats["auc"]["mean"],
             "auc_std": stats["auc"]["std"]}
        )  # fmt: skip
        if best is None or stats["auc"]["mean"] > best[0]:
            best = (stats["auc"]["mean"], params, stats)
    assert best is not None  # the grid is never empty
    _, params, cv_stats = best
    step(f"{kind} scorecard refit on the training split")
    fit_started = time.perf_counter()
    model = fit(x_train, y_train, params)
    fit_seconds = time.perf_counter() - fit_started
    done += 1
    step("done")
    p_test = model.predict_proba(x_test)[:, 1]
    test = metrics.summary(y_test, p_test)
    intervals = metrics.bootstrap_auc(
        y_test, p_test, {name: x_test[:, FEATURE_NAMES.index(name)] for name in BENCHMARKS},
        rounds=BOOTSTRAP_ROUNDS, seed=seed,
    )  # fmt: skip
    test["auc_low"], test["auc_high"] = intervals["auc"]["low"], intervals["auc"]["high"]
    champion = CandidateResult(
        name=f"{kind}-scorecard",
        model_type="scorecard",
        params=dict(params),
        cv=cv_stats,
        grid=grid_rows,
        test=test,
        fit_seconds=fit_seconds,
        champion=True,
    )
    if test["auc"] < floor:
        raise AucBelowFloorError(
            f"the {kind} scorecard reached held-out AUC {test['auc']:.4f}, below the floor "
            f"{floor:.2f}; it was not staged"
        )
    y_all = matrix.labels
    return TrainingResult(
        kind=kind,
        model=model,
        champion=champion,
        candidates=[champion],
        calibration=metrics.calibration_table(y_test, p_test),
        hosmer_lemeshow=metrics.hosmer_lemeshow(y_test, p_test),
        benchmarks=_benchmarks(x_test, y_test, test["auc"], intervals),
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        test_loan_ids=matrix.loan_ids[idx_test],
        data={
            "source": SOURCE,
            "sha256": data.sha256,
            "selection": data.selection,
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
        trained_at=iso_utc(trained_at, "seconds"),
    )


def staged_path(home: Path, kind: str) -> Path:
    return home / STAGING_DIR / f"{kind}.joblib"


def save_staged(result: TrainingResult, home: Path) -> Path:
    """Stage a training run for a later export; replaces the kind's previous run atomically."""
    target = staged_path(home, result.kind)
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


def load_staged(home: Path, kind: str) -> TrainingResult:
    target = staged_path(home, kind)
    if not target.is_file():
        raise StagedRunError(
            f"no staged training run in {target.parent}; run `riskctl train` first"
        )
    try:
        result = joblib.load(target)
    except Exception as exc:  # a truncated or foreign file: say so instead of a traceback
        raise StagedRunError(f"cannot read the staged training run {target}: {exc}") from exc
    if (
        not isinstance(result, TrainingResult)
        or result.stage_format != _STAGE_FORMAT
        or result.kind != kind
    ):
        raise StagedRunError(f"{target} is not a training run this version can export; retrain")
    if tuple(result.feature_names) != FEATURE_NAMES:
        raise StagedRunError(
            "the staged run was trained on different features than this code computes; retrain"
        )
    return result
