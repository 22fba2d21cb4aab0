"""Model quality measures on plain arrays: discrimination, calibration and reference bins.

Everything here is pure numpy so the numbers on a model card can be checked by hand: AUC comes
from the rank-sum (Mann-Whitney) statistic with tied scores sharing their average rank, KS is
the largest gap between the bad and good score distributions, and calibration compares the
mean predicted PD with the observed bad rate inside PD deciles.

Reference distributions use right-closed bins ``(edges[i], edges[i + 1]]`` with ``-inf`` and
``+inf`` outer edges: a discrete feature such as a count of inquiries then gets one bin per
value (``(-inf, 0]``, ``(0, 1]`` ...), and any later value falls in some bin.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_EPS = 1e-12


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} != {p.size}")
    if y.size == 0:
        raise ValueError("no rows to measure")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 (good) or 1 (bad)")
    if not np.isfinite(p).all():
        raise ValueError("scores must be finite")
    return y, p


def _both_classes(y: np.ndarray) -> None:
    if y.min() == y.max():
        raise ValueError("AUC and KS need both good and bad loans")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks; tied values all get the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    mean_rank = upper - (counts - 1) / 2.0
    return mean_rank[inverse]


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random bad loan outscores a random good one."""
    y, p = _check(y, p)
    _both_classes(y)
    ranks = average_ranks(p)
    n_bad = y.sum()
    n_good = y.size - n_bad
    return float((ranks[y == 1.0].sum() - n_bad * (n_bad + 1) / 2.0) / (n_bad * n_good))


def gini(y: np.ndarray, p: np.ndarray) -> float:
    """Accuracy ratio, the credit-scoring convention: ``2 * AUC - 1``."""
    return 2.0 * auc(y, p) - 1.0


def ks(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic: max gap between the bad and good score CDFs.

    The CDFs are compared only between distinct scores, so tied scores never split.
    """
    y, p = _check(y, p)
    _both_classes(y)
    scores, inverse = np.unique(p, return_inverse=True)
    bads = np.bincount(inverse, weights=y, minlength=scores.size)
    goods = np.bincount(inverse, weights=1.0 - y, minlength=scores.size)
    gap = np.cumsum(bads) / bads.sum() - np.cumsum(goods) / goods.sum()
    return float(np.abs(gap).max())


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the PD against the 0/1 outcome."""
    y, p = _check(y, p)
    return float(np.mean((p - y) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    y, p = _check(y, p)
    q = np.clip(p, _EPS, 1.0 - _EPS)
    return float(-np.mean(y * np.log(q) + (1.0 - y) * np.log(1.0 - q)))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Observed bad rate against mean predicted PD within PD quantile bins (deciles by default).

    Bin edges are quantiles of the predicted PD; rows with equal PD stay in one bin, so heavily
    tied scores can give fewer than ``bins`` rows. Rows are ordered from lowest PD to highest.
    """
    y, p = _check(y, p)
    inner = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    index = np.searchsorted(inner, p, side="left")
    rows: list[dict[str, float]] = []
    for b in np.unique(index):
        mask = index == b
        count = int(mask.sum())
        bads = int(y[mask].sum())
        rows.append(
            {
                "bin": len(rows) + 1,
                "count": count,
                "bads": bads,
                "pd_min": float(p[mask].min()),
                "pd_max": float(p[mask].max()),
                "predicted": float(p[mask].mean()),
                "observed": bads / count,
            }
        )
    return rows


def expected_calibration_error(table: list[dict[str, float]]) -> float:
    """Row-weighted mean absolute gap between observed and predicted in a calibration table."""
    total = sum(row["count"] for row in table)
    return float(
        sum(row["count"] * abs(row["observed"] - row["predicted"]) for row in table) / total
    )


def summary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The card's headline numbers for one set of labelled scores."""
    y, p = _check(y, p)
    return {
        "auc": auc(y, p),
        "ks": ks(y, p),
        "gini": gini(y, p),
        "brier": brier(y, p),
        "log_loss": log_loss(y, p),
        "ece": expected_calibration_error(calibration_table(y, p)),
        "bad_rate": float(y.mean()),
        "mean_pd": float(p.mean()),
        "rows": int(y.size),
    }


def decile_edges(values: np.ndarray) -> list[float]:
    """``[-inf, d1 ... d9, +inf]`` from the non-missing values, duplicates removed."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    # inverted_cdf keeps edges on observed values, so a count feature gets one bin per value
    # instead of edges interpolated between integers.
    deciles = np.arange(1, 10) / 10.0
    inner = np.quantile(present, deciles, method="inverted_cdf") if present.size else []
    return [-np.inf, *(float(e) for e in np.unique(inner)), np.inf]


def bin_shares(values: np.ndarray, edges: list[float]) -> tuple[list[float], float]:
    """Share of non-missing values in each right-closed bin, and the share of missing rows."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    present = values[~missing]
    bins = len(edges) - 1
    nan_share = float(missing.mean()) if values.size else 0.0
    if present.size == 0:
        return [0.0] * bins, nan_share
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), present, side="left") - 1
    counts = np.bincount(np.clip(index, 0, bins - 1), minlength=bins)
    return [float(c) for c in counts / present.size], nan_share


def reference_distribution(values: np.ndarray) -> dict[str, Any]:
    """Decile bins of ``values`` and their shares: the baseline for later PSI drift checks."""
    edges = decile_edges(values)
    proportions, nan_share = bin_shares(values, edges)
    return {
        "edges": edges,
        "proportions": proportions,
        "nan_share": nan_share,
        "closed": "right",
    }


def hosmer_lemeshow(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Hosmer-Lemeshow goodness of fit over PD deciles: the chi-square of observed against
    expected bads and goods per decile, on ``deciles - 2`` degrees of freedom. A small p-value
    says the PDs are miscalibrated somewhere; ``p_value > 0.05`` is the usual pass."""
    from scipy.stats import chi2

    table = calibration_table(y, p, bins)
    statistic = 0.0
    for row in table:
        expected_bads = row["predicted"] * row["count"]
        expected_goods = row["count"] - expected_bads
        statistic += (row["bads"] - expected_bads) ** 2 / max(expected_bads, _EPS)
        statistic += ((row["count"] - row["bads"]) - expected_goods) ** 2 / max(
            expected_goods, _EPS
        )
    df = max(len(table) - 2, 1)
    return {"statistic": float(statistic), "df": df, "p_value": float(chi2.sf(statistic, df))}


def bootstrap_auc(
    y: np.ndarray,
    p: np.ndarray,
    baselines: dict[str, np.ndarray] | None = None,
    *,
    rounds: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Percentile bootstrap interval of the AUC, and of its lift over each baseline score.

    Bads and goods are resampled separately (the held-out set's class counts stay fixed, as
    the stratified split fixed them), and every baseline is scored on the same resample as the
    model, so a lift's interval is a paired one. With ~100 bad loans held out the AUC's own
    sampling error is a few hundredths: the interval says how far a held-out figure can be
    trusted against a target.
    """
    y, p = _check(y, p)
    _both_classes(y)
    baselines = baselines or {}
    rng = np.random.default_rng(seed)
    bad_rows = np.flatnonzero(y == 1.0)
    good_rows = np.flatnonzero(y == 0.0)
    aucs = np.empty(rounds)
    lifts = {name: np.empty(rounds) for name in baselines}
    for r in range(rounds):
        rows = np.concatenate(
            [rng.choice(bad_rows, bad_rows.size), rng.choice(good_rows, good_rows.size)]
        )
        aucs[r] = auc(y[rows], p[rows])
        for name, score in baselines.items():
            lifts[name][r] = aucs[r] - auc(y[rows], np.asarray(score, dtype=np.float64)[rows])
    tail = (1.0 - level) / 2.0 * 100.0

    def interval(values: np.ndarray) -> dict[str, float]:
        low, high = np.percentile(values, [tail, 100.0 - tail])
        return {"low": float(low), "high": float(high)}

    return {
        "level": level,
        "rounds": rounds,
        "auc": interval(aucs),
        "lift": {name: interval(values) for name, values in lifts.items()},
    }
