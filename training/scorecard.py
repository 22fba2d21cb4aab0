"""A credit scorecard: monotone WoE bins per characteristic into a logistic regression whose
coefficients are constrained non-negative, so no effect can run against its documented
direction (higher WoE is riskier in every bin, see :mod:`training.binning`).

The regression is fitted with L-BFGS-B bounds (scikit-learn's LogisticRegression has no sign
constraints): a characteristic whose best coefficient would be negative given the others gets
zero and leaves the card. Points follow the usual scaling: 600 points at good:bad odds of 50:1
and 20 points to double the odds (PDO), so total points and PD are one monotone transform
of each other and every attribute's points are its share of the log-odds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from flows.features import FEATURES
from training.binning import DEFAULT_MIN_SHARE, DEFAULT_PREBINS, Binning, fit_binning

PDO = 20.0
BASE_SCORE = 600.0
BASE_ODDS = 50.0  # good:bad at BASE_SCORE
FACTOR = PDO / math.log(2.0)
OFFSET = BASE_SCORE - FACTOR * math.log(BASE_ODDS)
# Points are multiples of 2^-10 (about a thousandth of a point; cards usually round to whole
# points): every sum of them below POINT_LIMIT is then exact in float32, in any order, so the
# ONNX graph adds them in float32 and a loan's total does not depend on how a vectorized sum
# groups it (see training/scorecard_onnx.py).
POINT_QUANTUM = 2.0**-10
# float32 holds every multiple of 2^-10 below 2^14 exactly (24 significant bits).
POINT_LIMIT = 2.0**13
# Coefficients below this are the bound, not a finding: the characteristic is left out.
_ZERO_COEF = 1e-6
_DIRECTION = {f.name: f.direction for f in FEATURES}


class ScorecardError(ValueError):
    """No characteristic carries weight: nothing to score with."""


@dataclass(frozen=True)
class Scorecard:
    """A fitted scorecard over the full feature matrix (unused columns are ignored)."""

    kind: str
    feature_names: tuple[str, ...]
    characteristics: tuple[Binning, ...]
    columns: tuple[int, ...]  # each characteristic's column in the feature matrix
    coef: tuple[float, ...]
    intercept: float
    params: dict[str, Any]
    # characteristics considered but left out: a single bin, or a zero coefficient
    dropped: tuple[Binning, ...] = ()

    def attribute_points(self, c: int) -> tuple[np.ndarray, float]:
        """Points of each present bin of characteristic ``c``, and of its missing bin."""
        m = len(self.characteristics)
        binning = self.characteristics[c]
        share = (OFFSET - FACTOR * self.intercept) / m
        woe = np.asarray(binning.woe, dtype=np.float64)
        bins = _quantize(share - FACTOR * self.coef[c] * woe)
        missing = _quantize(np.asarray(share - FACTOR * self.coef[c] * binning.missing_woe))
        return bins, float(missing)

    def reference_points(self) -> np.ndarray:
        """Each characteristic's neutral points, those of an attribute with WoE 0 (the
        portfolio's own odds), against which reason codes count the points lost.

        The best attainable attribute would be the other usual reference, but where it is held
        by few (the lowest loan-to-income bin) nearly every applicant loses points against it
        and the same reason is cited for almost everyone. Against the neutral points a
        characteristic is cited only when the applicant's attribute is riskier than the
        portfolio (WoE > 0), and the loss is its share of the log-odds above the average.
        """
        m = len(self.characteristics)
        share = (OFFSET - FACTOR * self.intercept) / m
        return _quantize(np.full(m, share))

    def points(self, features: np.ndarray) -> np.ndarray:
        """``(n, characteristics)`` points of each row."""
        x = np.asarray(features, dtype=np.float64)
        out = np.empty((len(x), len(self.characteristics)), dtype=np.float64)
        for c, (binning, column) in enumerate(zip(self.characteristics, self.columns, strict=True)):
            bins, missing = self.attribute_points(c)
            index = binning.bin_index(x[:, column])
            out[:, c] = np.where(index < 0, missing, bins[np.maximum(index, 0)])
        return out

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``(n, 2)``: P(good), P(bad), as scikit-learn classifiers return them."""
        total = self.points(features).sum(axis=1)
        pd = 1.0 / (1.0 + np.exp(-(OFFSET - total) / FACTOR))
        return np.column_stack([1.0 - pd, pd])

    def fit(self, features: np.ndarray, labels: np.ndarray) -> Scorecard:
        """Scikit-learn style: a scorecard refitted on these rows with the same settings."""
        return fit_scorecard(
            features, labels, self.feature_names, [b.name for b in self.all_considered()],
            kind=self.kind, **self.params,
        )  # fmt: skip

    def all_considered(self) -> tuple[Binning, ...]:
        order = {name: i for i, name in enumerate(self.feature_names)}
        return tuple(sorted((*self.characteristics, *self.dropped), key=lambda b: order[b.name]))


def _quantize(points: np.ndarray) -> np.ndarray:
    return np.round(points / POINT_QUANTUM) * POINT_QUANTUM


def _nonnegative_logistic(w: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """Minimize ``C * sum(log loss) + |coef|^2 / 2`` with every coefficient >= 0."""

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + w @ theta[1:]
        # log(1 + e^z) - y z, computed without overflow
        loss = np.logaddexp(0.0, z) - y * z
        p = 1.0 / (1.0 + np.exp(-z))
        residual = p - y
        grad = np.empty_like(theta)
        grad[0] = c * residual.sum()
        grad[1:] = c * (w.T @ residual) + theta[1:]
        return float(c * loss.sum() + 0.5 * theta[1:] @ theta[1:]), grad

    start = np.zeros(w.shape[1] + 1)
    rate = min(max(y.mean(), 1e-6), 1 - 1e-6)
    start[0] = math.log(rate / (1.0 - rate))
    bounds = [(None, None)] + [(0.0, None)] * w.shape[1]
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 1000})  # fmt: skip
    return np.maximum(result.x[1:], 0.0), float(result.x[0])


def fit_scorecard(
    features: np.ndarray,
    labels: np.ndarray,
    feature_names: Sequence[str],
    characteristics: Sequence[str],
    *,
    kind: str,
    C: float = 1.0,  # scikit-learn's name for the inverse regularization strength
    prebins: int = DEFAULT_PREBINS,
    min_share: float = DEFAULT_MIN_SHARE,
) -> Scorecard:
    """Bin each characteristic monotonically in its documented direction, then fit the
    non-negative logistic regression on the weights of evidence."""
    names = tuple(feature_names)
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    binnings = [
        fit_binning(name, x[:, names.index(name)], y, _DIRECTION[name],
                    prebins=prebins, min_share=min_share)
        for name in characteristics
    ]  # fmt: skip
    woe = np.column_stack([b.transform(x[:, names.index(b.name)]) for b in binnings])
    varies = woe.std(axis=0) > 0.0
    coef = np.zeros(len(binnings))
    intercept = 0.0
    if varies.any():
        coef[varies], intercept = _nonnegative_logistic(woe[:, varies], y, C)
    used = [i for i in range(len(binnings)) if coef[i] > _ZERO_COEF]
    if not used:
        raise ScorecardError(f"no characteristic of the {kind} scorecard carries weight")
    return Scorecard(
        kind=kind,
        feature_names=names,
        characteristics=tuple(binnings[i] for i in used),
        columns=tuple(names.index(binnings[i].name) for i in used),
        coef=tuple(float(coef[i]) for i in used),
        intercept=intercept,
        params={"C": C, "prebins": prebins, "min_share": min_share},
        dropped=tuple(b for i, b in enumerate(binnings) if i not in used),
    )
