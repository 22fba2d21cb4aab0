"""Train an origination scorecard of one kind on real LendingClub loans.

Protocol, fixed by ``seed``: a stratified 80/20 split holds out a test set that no fitting or
selection ever sees; within the 80 %, stratified 5-fold CV scores every grid entry of the
kind's scorecard on the same folds and the same characteristics (like with like), the best mean
CV AUC is refitted on the whole training split, and only then is it measured on the held-out
set, next to the pricing it competes with (``sub_grade`` alone, ``int_rate`` alone) on the same
rows. A model below its kind's AUC floor is an error, not a model: nothing is staged.

One held-out part of ~103 bads cannot tell an AUC of 0.65 from 0.68, so with ``repeats`` > 1
the same pipeline, binning and CV choice included, is rerun from scratch on more stratified
splits at consecutive seeds after ``seed`` and each is scored on its own test part
(:mod:`training.repeated` sums them up). The exported model is always the default split's.

Each kind's result is staged under ``<home>/training/latest/`` so ``riskctl export`` can
publish it later without retraining.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

from flows.errors import RiskctlError
from flows.features import FEATURE_NAMES
from flows.settings import MODEL_KINDS
from flows.times import iso_utc
from training import metrics
from training.candidates import SCORECARD_GRID, Params, characteristics
from training.dataset import SOURCE, LendingClub, load_lending_club
from training.defaults import DEFAULT_SEED as DEFAULT_SEED
from training.matrix import Matrix, application_matrix
from training.repeated import split_seeds, summarize
from training.scorecard import Scorecard, fit_scorecard

DEFAULT_FOLDS = 5
DEFAULT_TEST_SIZE = 0.2
# Below these a kind's model is not worth exporting. The applicant model has far less to go on
# (the best unconstrained model without the grade reaches ~0.68 in CV here).
AUC_FLOORS = {"applicant": 0.62, "priced": 0.72}
# the format of a staged TrainingResult (training.staging): raise it when the fields change
STAGE_FORMAT = 4
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
    # the repeated held-out evaluation over ``repeated["repeats"]`` splits (training.repeated)
    repeated: dict[str, Any] = field(default_factory=dict)
    feature_names: tuple[str, ...] = field(default=FEATURE_NAMES)
    stage_format: int = STAGE_FORMAT

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
            "auc": auc,
            "lift": model_auc - auc,
            "lift_low": lift["low"],
            "lift_high": lift["high"],
        }
    return out


def holdout_split(labels: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training part and the held-out part: the one split training uses and
    the promotion gate rebuilds from a card's seed."""
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=test_size, stratify=labels, random_state=seed
    )
    return idx_train, idx_test


# Called before each fit with what it fits.
FitHook = Callable[[str], None]


@dataclass(frozen=True)
class SplitFit:
    """The pipeline's outcome on one training part: the CV-chosen settings refitted on it."""

    model: Scorecard
    params: dict[str, Any]
    cv: dict[str, dict[str, float]]
    grid: list[dict[str, Any]]
    fit_seconds: float


def fit_split(
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    kind: str,
    chars: Sequence[str],
    grid: Sequence[Params],
    folds: int,
    seed: int,
    on_fit: FitHook | None = None,
) -> SplitFit:
    """The whole pipeline on one training part and nothing else: every grid entry scored by
    stratified CV on the same folds (binning refitted inside each fold), the best mean CV AUC
    refitted (binning included) on the whole part."""
    # The fits are small (thousands of rows, tens of columns): BLAS threads only contend for
    # the cores. One thread gives the same numbers 2-3x faster on a busy 2-core machine.
    with threadpool_limits(limits=1):
        splits = list(
            StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x_train, y_train)
        )

        def fit(x: np.ndarray, y: np.ndarray, params: Params, label: str) -> Scorecard:
            if on_fit is not None:
                on_fit(label)
            return fit_scorecard(x, y, FEATURE_NAMES, chars, kind=kind, **params)

        grid_rows: list[dict[str, Any]] = []
        best: tuple[float, Params, dict[str, dict[str, float]]] | None = None
        for params in grid:
            described = " ".join(f"{k}={v}" for k, v in params.items())
            fold_metrics = []
            for k, (fit_idx, val_idx) in enumerate(splits, start=1):
                label = f"{kind} scorecard split seed {seed} {described} fold {k}/{folds}"
                model = fit(x_train[fit_idx], y_train[fit_idx], params, label)
                p = model.predict_proba(x_train[val_idx])[:, 1]
                fold_metrics.append(metrics.summary(y_train[val_idx], p))
            stats = _fold_stats(fold_metrics)
            grid_rows.append(
                {"params": dict(params), "auc_mean": stats["auc"]["mean"],
                 "auc_std": stats["auc"]["std"]}
            )  # fmt: skip
            if best is None or stats["auc"]["mean"] > best[0]:
                best = (stats["auc"]["mean"], params, stats)
        assert best is not None  # the grid is never empty
        _, params, cv_stats = best
        started = time.perf_counter()
        model = fit(x_train, y_train, params, f"{kind} scorecard split seed {seed} refit")
        return SplitFit(model, dict(params), cv_stats, grid_rows, time.perf_counter() - started)


def split_record(
    seed: int, fitted: SplitFit, x_test: np.ndarray, y_test: np.ndarray, rows: tuple[int, int]
) -> dict[str, Any]:
    """One split's held-out figures for the repeated evaluation: the model's AUC and each
    pricing benchmark's AUC alone on the same test rows."""
    p = fitted.model.predict_proba(x_test)[:, 1]
    return {
        "seed": seed,
        "auc": metrics.auc(y_test, p),
        "mean_pd": float(p.mean()),
        "bad_rate": float(y_test.mean()),
        "hl_p_value": metrics.hosmer_lemeshow(y_test, p)["p_value"],
        "cv_auc": fitted.cv["auc"]["mean"],
        "params": fitted.params,
        "characteristics": len(fitted.model.characteristics),
        "benchmarks": {
            name: metrics.auc(y_test, x_test[:, FEATURE_NAMES.index(name)]) for name in BENCHMARKS
        },
        "train_rows": rows[0],
        "test_rows": rows[1],
        "test_bads": int(y_test.sum()),
    }


def evaluate_split(
    matrix: Matrix,
    seed: int,
    *,
    kind: str,
    chars: Sequence[str],
    grid: Sequence[Params],
    folds: int,
    test_size: float,
    on_fit: FitHook | None = None,
) -> tuple[dict[str, Any], Scorecard]:
    """Split at ``seed``, run the whole pipeline on the training part alone, and score its
    test part: the split's record and the model fitted on it."""
    idx_train, idx_test = holdout_split(matrix.labels, test_size, seed)
    fitted = fit_split(
        matrix.features[idx_train], matrix.labels[idx_train], kind=kind, chars=chars,
        grid=grid, folds=folds, seed=seed, on_fit=on_fit,
    )  # fmt: skip
    record = split_record(
        seed, fitted, matrix.features[idx_test], matrix.labels[idx_test],
        (len(idx_train), len(idx_test)),
    )  # fmt: skip
    return record, fitted.model


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
    repeats: int = 1,
) -> TrainingResult:
    """Cross-validate the kind's scorecard grid, refit the best and measure it held out;
    then repeat the whole pipeline on ``repeats - 1`` more splits (training.repeated).

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
    if repeats < 1:
        raise TrainingError(f"repeats must be at least 1, got {repeats}")
    floor = AUC_FLOORS[kind] if auc_floor is None else auc_floor
    chars = characteristics(kind)
    if only is not None:
        unknown = sorted(set(only) - set(chars))
        if unknown or not only:
            raise TrainingError(f"a {kind} model cannot use {unknown or 'no characteristics'}")
        chars = tuple(c for c in chars if c in only)

    seeds = split_seeds(seed, repeats)
    idx_train, idx_test = holdout_split(matrix.labels, test_size, seed)
    x_train, y_train = matrix.features[idx_train], matrix.labels[idx_train]
    x_test, y_test = matrix.features[idx_test], matrix.labels[idx_test]
    total = (len(grid) * folds + 1) * repeats
    done = 0

    def step(label: str) -> None:
        nonlocal done
        if on_step is not None:
            on_step(label, done, total)
        done += 1

    fitted = fit_split(x_train, y_train, kind=kind, chars=chars, grid=grid, folds=folds,
                       seed=seed, on_fit=step)  # fmt: skip
    model, params, cv_stats = fitted.model, fitted.params, fitted.cv
    fit_seconds = fitted.fit_seconds
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
        grid=fitted.grid,
        test=test,
        fit_seconds=fit_seconds,
        champion=True,
    )
    if test["auc"] < floor:
        raise AucBelowFloorError(
            f"the {kind} scorecard reached held-out AUC {test['auc']:.4f}, below the floor "
            f"{floor:.2f}; it was not staged"
        )
    records = [split_record(seed, fitted, x_test, y_test, (len(idx_train), len(idx_test)))]
    repeat_started = time.perf_counter()
    for other in seeds[1:]:
        record, _ = evaluate_split(
            matrix, other, kind=kind, chars=chars, grid=grid, folds=folds,
            test_size=test_size, on_fit=step,
        )  # fmt: skip
        records.append(record)
    repeated = summarize(records, test_size)
    repeated["seconds"] = time.perf_counter() - repeat_started
    step("done")
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
        repeated=repeated,
    )
