"""Logistic regression whose coefficients keep the signs risk requires (monotone by construction).

A logistic regression's PD moves with each feature in the direction of that feature's
coefficient, whatever the other features are. Bounding each coefficient's sign therefore makes
the PD monotone in that feature, all else equal, for every input: a property of the model's
form, not of the rows it was checked on. The fit is scikit-learn's objective (``C`` x the
summed log-loss + half the squared coefficients, intercept unpenalised) on the imputed and
standardised features (a positive scale keeps each sign), minimised by L-BFGS-B with the sign
bounds. The result is an ordinary impute -> scale -> ``LogisticRegression`` pipeline, so ONNX
export, the parity check and the linear reason codes treat it like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from scipy.optimize import minimize
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

# +1: the PD never falls as the feature rises; -1: never rises; 0: not used; None: either.
Sign = Literal[-1, 0, 1] | None


class MonotoneFitError(ValueError):
    """The constrained fit did not converge."""


def _bounds(names: Sequence[str], signs: Mapping[str, Sign]) -> list[tuple[float | None, ...]]:
    bounds: list[tuple[float | None, ...]] = []
    for name in names:
        sign = signs[name]
        if sign == 1:
            bounds.append((0.0, None))
        elif sign == -1:
            bounds.append((None, 0.0))
        elif sign == 0:
            bounds.append((0.0, 0.0))
        else:
            bounds.append((None, None))
    return [*bounds, (None, None)]  # the intercept


def fit_sign_constrained(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    signs: Mapping[str, Sign],
    *,
    c: float = 1.0,
) -> Pipeline:
    """An impute -> scale -> logistic regression pipeline fitted with each coefficient's sign
    bounded by ``signs`` (every name needs an entry)."""
    missing = [n for n in names if n not in signs]
    if missing:
        raise ValueError(f"no sign given for {missing}")
    impute = SimpleImputer(strategy="median").fit(x)
    scale = StandardScaler().fit(impute.transform(x))
    z = scale.transform(impute.transform(x))
    target = np.asarray(y, dtype=np.float64)
    width = z.shape[1]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:width], theta[width]
        logit = z @ w + b
        # log(1 + e^t) - y t, summed, computed without overflow
        loss = float(np.sum(np.logaddexp(0.0, logit) - target * logit))
        residual = 1.0 / (1.0 + np.exp(-logit)) - target
        grad = np.empty(width + 1)
        grad[:width] = c * (z.T @ residual) + w
        grad[width] = c * residual.sum()
        return c * loss + 0.5 * float(w @ w), grad

    start = np.zeros(width + 1)
    prior = min(max(target.mean(), 1e-6), 1.0 - 1e-6)
    start[width] = np.log(prior / (1.0 - prior))
    solved = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=_bounds(names, signs),
        options={"maxiter": 5000},
    )
    if not solved.success:
        raise MonotoneFitError(f"the sign-constrained fit did not converge: {solved.message}")
    model = LogisticRegression(C=c)
    model.classes_ = np.array([0, 1])
    model.coef_ = solved.x[:width].reshape(1, width)
    model.intercept_ = solved.x[width:].copy()
    model.n_features_in_ = width
    model.n_iter_ = np.array([solved.nit])
    return Pipeline([("impute", impute), ("scale", scale), ("model", model)])
