"""Repeated held-out evaluation, the pure part: which splits, and what their figures add up to.

One stratified 20 % split of these loans holds ~103 bads, so its AUC has a standard error of
about 0.025 and cannot tell 0.65 from 0.68. Training therefore repeats the whole pipeline
(binning, CV choice of settings, fit) on ``R`` stratified 80/20 splits and reports the spread
of their held-out figures. Split #1 is the default split (the training seed), so the exported
model's own split is always one of them; the others follow it at consecutive seeds, recorded in
the card, so anyone can rebuild every split with ``holdout_split``.

The intervals, for a reader judging a target:

- ``low``/``high``: the 2.5th and 97.5th percentiles of the split figures, where one more
  split's figure is expected to fall;
- ``sem``: the plain standard error of the mean over the splits (``sd / sqrt(R)``). It is too
  small for repeated splits of one data set, whose training and test parts overlap from split
  to split, so the figures are correlated;
- ``mean_low``/``mean_high``: the mean's 95 % interval with the Nadeau-Bengio correction for
  that overlap, ``sd * sqrt(1 / R + n_test / n_train)`` with Student's t on ``R - 1`` df (Nadeau
  and Bengio, "Inference for the generalization error", Machine Learning 52, 2003), the one to
  compare with a target. With ``R = 1`` there is no spread to measure: ``sem`` and the mean's
  interval are ``None``.

A lift is paired: each split's model AUC minus the benchmark's AUC on the same test rows, so the
split-to-split difficulty (the same for both) cancels out of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import t as student_t

LEVEL = 0.95
# Seeds are numpy RandomState seeds: below 2**32.
_SEED_LIMIT = 2**32


def split_seeds(seed: int, repeats: int) -> tuple[int, ...]:
    """The seeds of ``repeats`` splits: ``seed`` first (the default split), then consecutive."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if not 0 <= seed < _SEED_LIMIT:
        raise ValueError(f"a seed must be in [0, 2**32), got {seed}")
    return tuple((seed + i) % _SEED_LIMIT for i in range(repeats))


def spread(values: Sequence[float], test_share: float, level: float = LEVEL) -> dict[str, Any]:
    """Mean, percentile interval, standard errors and extremes of per-split figures.

    ``test_share`` is the held-out share of each split (0.2 for 80/20), used by the overlap
    correction of the mean's interval."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no split figures to summarize")
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"the test share must be in (0, 1), got {test_share}")
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(x, [tail, 100.0 - tail])
    mean = float(x.mean())
    out: dict[str, Any] = {
        "n": int(x.size),
        "mean": mean,
        "low": float(low),
        "high": float(high),
        "worst": float(x.min()),
        "best": float(x.max()),
        "sd": None,
        "sem": None,
        "corrected_se": None,
        "mean_low": None,
        "mean_high": None,
    }
    if x.size > 1:
        # identical figures have no spread at all, not the rounding noise of their mean
        sd = 0.0 if (x == x[0]).all() else float(x.std(ddof=1))
        corrected = sd * math.sqrt(1.0 / x.size + test_share / (1.0 - test_share))
        half = float(student_t.ppf(1.0 - tail / 100.0, x.size - 1)) * corrected
        out.update(
            sd=sd, sem=sd / math.sqrt(x.size), corrected_se=corrected,
            mean_low=mean - half, mean_high=mean + half,
        )  # fmt: skip
    return out


def summarize(
    splits: Sequence[Mapping[str, Any]], test_share: float, level: float = LEVEL
) -> dict[str, Any]:
    """The card's repeated-evaluation section from per-split records.

    Each record has ``seed``, ``auc`` (the model's held-out AUC), ``benchmarks`` (each
    benchmark's AUC alone on the same test rows), ``mean_pd``, ``bad_rate`` and ``hl_p_value``
    (Hosmer-Lemeshow on the test part); the first record is the default split."""
    if not splits:
        raise ValueError("no splits to summarize")
    aucs = [float(s["auc"]) for s in splits]
    names = list(splits[0]["benchmarks"])
    worst = int(np.argmin(aucs))
    best = int(np.argmax(aucs))
    benchmarks = {}
    for name in names:
        alone = [float(s["benchmarks"][name]) for s in splits]
        lifts = [a - b for a, b in zip(aucs, alone, strict=True)]
        benchmarks[name] = {
            "auc": spread(alone, test_share, level),
            "lift": spread(lifts, test_share, level),
            "splits_above": sum(lift > 0.0 for lift in lifts),
        }
    # calibration targets per split: mean PD within 10 % of the bad rate, Hosmer-Lemeshow p > 0.05
    ratio = [float(s["mean_pd"]) / float(s["bad_rate"]) for s in splits]
    calibration = {
        "mean_pd_to_bad_rate": spread(ratio, test_share, level),
        "splits_within_10pct": sum(abs(r - 1.0) <= 0.1 for r in ratio),
        "splits_hl_p_above_005": sum(float(s["hl_p_value"]) > 0.05 for s in splits),
    }
    return {
        "repeats": len(splits),
        "level": level,
        "test_share": test_share,
        "seeds": [int(s["seed"]) for s in splits],
        "auc": spread(aucs, test_share, level),
        "benchmarks": benchmarks,
        "calibration": calibration,
        "worst": {"seed": int(splits[worst]["seed"]), "auc": aucs[worst]},
        "best": {"seed": int(splits[best]["seed"]), "auc": aucs[best]},
        "default": dict(splits[0]),
        "splits": [dict(s) for s in splits],
    }
