"""The model families that compete for champion, as scikit-learn pipelines.

Every pipeline starts with a median imputer because the card's reason codes fill missing
features with exactly those medians. Only estimators skl2onnx converts are offered: the
installed skl2onnx cannot convert HistGradientBoostingClassifier (its converter emits a boolean
where ONNX wants an int), so boosting uses GradientBoostingClassifier, kept small for speed.

Tree probabilities are recalibrated with a sigmoid fitted on out-of-fold predictions
(``ensemble=False``: one refitted forest, one calibrator, a single small ONNX graph). Sigmoid,
not isotonic, because a fold's training part holds only about 400 bad loans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

Params = Mapping[str, Any]


@dataclass(frozen=True)
class Candidate:
    name: str  # short: used in version names such as 20261122T041500Z-lr
    model_type: str
    build: Callable[[Params, int], Pipeline]
    # Each entry is cross-validated; the best mean CV AUC is refitted on the training split.
    grid: tuple[Params, ...] = field(default_factory=lambda: ({},))
    reasons_method: str = "surrogate_linear"


def logistic_regression(params: Params, seed: int) -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            (
                "model",
                LogisticRegression(C=params.get("C", 1.0), max_iter=2000, random_state=seed),
            ),
        ]
    )


def _calibrated(estimator: Any) -> CalibratedClassifierCV:
    return CalibratedClassifierCV(estimator, method="sigmoid", cv=3, ensemble=False)


def gradient_boosting(params: Params, seed: int) -> Pipeline:
    # Shallow trees on half-samples of rows and features: as accurate as deeper settings in
    # CV here and about four times faster on two cores.
    booster = GradientBoostingClassifier(
        n_estimators=100,
        learning_rate=0.05,
        max_depth=2,
        subsample=0.5,
        max_features=0.5,
        min_samples_leaf=50,
        random_state=seed,
    )
    return Pipeline([("impute", SimpleImputer(strategy="median")), ("model", _calibrated(booster))])


def random_forest(params: Params, seed: int) -> Pipeline:
    forest = RandomForestClassifier(
        n_estimators=100,
        max_depth=6,
        min_samples_leaf=25,
        max_samples=0.5,
        n_jobs=2,
        random_state=seed,
    )
    return Pipeline([("impute", SimpleImputer(strategy="median")), ("model", _calibrated(forest))])


def default_candidates() -> tuple[Candidate, ...]:
    return (
        Candidate(
            name="lr",
            model_type="logistic_regression",
            build=logistic_regression,
            # 26 correlated features and ~400 bads per fold: stronger L2 shrinkage may help,
            # so C is chosen by CV rather than left at sklearn's default.
            grid=({"C": 0.01}, {"C": 0.1}, {"C": 1.0}),
            reasons_method="linear",
        ),
        Candidate(name="gb", model_type="gradient_boosting", build=gradient_boosting),
        Candidate(name="rf", model_type="random_forest", build=random_forest),
    )
