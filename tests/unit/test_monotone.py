"""The sign-constrained logistic regression (training/monotone.py): whatever the data, every
bounded coefficient keeps its sign, so the PD is monotone in that feature for every input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.monotone import Sign, fit_sign_constrained

NAMES = ("up", "down", "off", "free")
SIGNS: dict[str, Sign] = {"up": 1, "down": -1, "off": 0, "free": None}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), flip=st.booleans())
def test_bounded_coefficients_keep_their_sign_and_the_pd_is_monotone(seed: int, flip: bool) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, 4))
    # the data pull "up" down and "down" up when flipped: the bounds must hold regardless
    direction = -1.0 if flip else 1.0
    logit = direction * (1.5 * x[:, 0] - 1.5 * x[:, 1]) + x[:, 2] + 0.5 * x[:, 3]
    y = (rng.random(300) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    y[:2] = [0, 1]  # both classes present
    model = fit_sign_constrained(x, y, NAMES, SIGNS)
    coef = model.named_steps["model"].coef_[0]
    assert coef[0] >= 0.0 and coef[1] <= 0.0 and coef[2] == 0.0
    probe = rng.normal(size=(50, 4))
    for j, sign in ((0, 1), (1, -1)):
        higher = probe.copy()
        higher[:, j] += rng.uniform(0.1, 3.0, size=50)
        moved = model.predict_proba(higher)[:, 1] - model.predict_proba(probe)[:, 1]
        assert (sign * moved >= -1e-12).all()
    if not flip:  # the data agree with the bounds: the fit uses both features
        assert coef[0] > 0.0 and coef[1] < 0.0


def test_unconstrained_signs_match_scikit_learns_fit() -> None:
    """With every sign free the objective is scikit-learn's: the same coefficients."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 4))
    y = (rng.random(500) < 1.0 / (1.0 + np.exp(-(x[:, 0] - x[:, 1])))).astype(int)
    free: dict[str, Sign] = dict.fromkeys(NAMES)
    ours = fit_sign_constrained(x, y, NAMES, free).named_steps["model"]
    z = StandardScaler().fit_transform(x)
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(z, y)
    np.testing.assert_allclose(ours.coef_, reference.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.intercept_, reference.intercept_, atol=1e-4)


def test_every_feature_needs_a_sign() -> None:
    with pytest.raises(ValueError, match="no sign"):
        fit_sign_constrained(np.zeros((4, 4)), np.array([0, 1, 0, 1]), NAMES, {"up": 1})
