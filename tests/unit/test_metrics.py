"""Metrics against hand-computed values and against scikit-learn / scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from flows.drift import psi
from training import metrics


def test_hand_computed_small_case() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    # bad/good pairs: (0.35 vs 0.1) win, (0.35 vs 0.4) loss, (0.8 vs both) win -> 3 of 4
    assert metrics.auc(y, p) == pytest.approx(0.75)
    assert metrics.gini(y, p) == pytest.approx(0.5)
    # ascending: 0.1 g, 0.35 b, 0.4 g, 0.8 b -> CDF gaps 0.5, 0.0, 0.5, 0.0
    assert metrics.ks(y, p) == pytest.approx(0.5)
    assert metrics.brier(y, p) == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)


def test_ties_share_ranks() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.5, 0.5, 0.2, 0.9])
    # pairs: (0.5 vs 0.5) half, (0.5 vs 0.2) win, (0.9 vs both) win -> 3.5 of 4
    assert metrics.auc(y, p) == pytest.approx(0.875)
    assert metrics.ks(np.array([0, 1]), np.array([0.5, 0.5])) == 0.0
    assert metrics.auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_and_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(500) < 0.1).astype(int)
    # rounded so that many scores tie, as they do for tree models
    p = np.clip(np.round(0.1 + 0.2 * y + rng.normal(0, 0.15, 500), 2), 0.01, 0.99)
    assert metrics.auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert metrics.brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert metrics.log_loss(y, p) == pytest.approx(log_loss(y, p), abs=1e-9)
    assert metrics.ks(y, p) == pytest.approx(ks_2samp(p[y == 1], p[y == 0]).statistic, abs=1e-12)


def test_calibration_table_by_quantiles() -> None:
    p = np.arange(1, 11) / 100.0
    y = np.array([0, 0, 0, 0, 1, 0, 0, 1, 1, 1])
    rows = metrics.calibration_table(y, p, bins=2)
    assert [r["count"] for r in rows] == [5, 5]
    assert [r["bads"] for r in rows] == [1, 3]
    assert rows[0]["predicted"] == pytest.approx(0.03)
    assert rows[1]["predicted"] == pytest.approx(0.08)
    assert rows[0]["observed"] == pytest.approx(0.2)
    assert (rows[0]["pd_min"], rows[1]["pd_max"]) == (0.01, 0.10)
    ece = metrics.expected_calibration_error(rows)
    assert ece == pytest.approx((5 * abs(0.2 - 0.03) + 5 * abs(0.6 - 0.08)) / 10)


def test_calibration_keeps_ties_in_one_bin() -> None:
    p = np.array([0.1] * 8 + [0.5, 0.9])
    y = np.array([0] * 7 + [1, 1, 1])
    rows = metrics.calibration_table(y, p)
    assert sum(r["count"] for r in rows) == 10
    assert rows[0]["count"] == 8
    assert rows[0]["pd_min"] == rows[0]["pd_max"] == 0.1


def test_summary_keys() -> None:
    y = np.array([0, 1, 0, 1, 0])
    p = np.array([0.1, 0.7, 0.2, 0.6, 0.3])
    summary = metrics.summary(y, p)
    assert summary["auc"] == 1.0
    assert summary["ks"] == 1.0
    assert summary["rows"] == 5
    assert {"gini", "brier", "log_loss", "ece", "bad_rate", "mean_pd"} <= set(summary)


def test_reference_distribution_one_bin_per_count_value() -> None:
    values = np.array([0.0] * 6 + [1.0] * 3 + [2.0, math.nan])
    ref = metrics.reference_distribution(values)
    assert ref["edges"] == [-math.inf, 0.0, 1.0, math.inf]
    assert ref["proportions"] == pytest.approx([0.6, 0.3, 0.1])
    assert ref["nan_share"] == pytest.approx(1 / 11)
    # values beyond the training range still land in the outer bins
    shares, missing = metrics.bin_shares(np.array([-5.0, 0.0, 0.5, 99.0]), ref["edges"])
    assert shares == pytest.approx([0.5, 0.25, 0.25])
    assert missing == 0.0


def test_reference_distribution_continuous_deciles() -> None:
    values = np.random.default_rng(3).normal(size=1000)
    ref = metrics.reference_distribution(values)
    assert len(ref["edges"]) == 11
    assert ref["proportions"] == pytest.approx([0.1] * 10, abs=0.002)


def test_psi() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    expected = (0.6 - 0.5) * math.log(0.6 / 0.5) + (0.4 - 0.5) * math.log(0.4 / 0.5)
    assert psi([0.5, 0.5], [0.6, 0.4]) == pytest.approx(expected)
    assert math.isfinite(psi([0.5, 0.5], [1.0, 0.0]))


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="both good and bad"):
        metrics.auc(np.array([0, 0]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="0 \\(good\\) or 1"):
        metrics.brier(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="finite"):
        metrics.brier(np.array([0, 1]), np.array([0.1, math.nan]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_interval_covers_the_auc_and_pairs_the_lift(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(2000) < 0.05).astype(float)
    score = y * 0.6 + rng.random(2000)
    weaker = y * 0.3 + rng.random(2000)
    out = metrics.bootstrap_auc(y, score, {"same": score, "weaker": weaker}, rounds=300, seed=7)
    point = metrics.auc(y, score)
    assert out["auc"]["low"] < point < out["auc"]["high"]
    # ~100 bads: a few hundredths either side, as the held-out set of the training split
    assert 0.02 < out["auc"]["high"] - out["auc"]["low"] < 0.2
    # paired resamples: a score's lift over itself is exactly zero in every resample
    assert out["lift"]["same"] == {"low": 0.0, "high": 0.0}
    assert out["lift"]["weaker"]["low"] > 0.0
    # a perfect separator stays perfect in every resample
    assert metrics.bootstrap_auc(y, y, rounds=50)["auc"] == {"low": 1.0, "high": 1.0}
    # reproducible by seed
    assert metrics.bootstrap_auc(y, score, rounds=50, seed=3) == metrics.bootstrap_auc(
        y, score, rounds=50, seed=3
    )
