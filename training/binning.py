"""Monotone weight-of-evidence binning of one feature: the characteristic of a scorecard.

A feature is first cut into fine classes at quantiles of its present values; then the bad rate
of adjacent classes is forced monotone in the feature's documented direction by isotonic
regression (pool-adjacent-violators, scikit-learn's ``IsotonicRegression`` weighted by class
size) and classes it pools become one bin; bins smaller than ``min_share`` of the rows, or
without a single bad or good loan, merge into their closer neighbour (which keeps the order).
A bad rate against the documented direction therefore cannot survive: at worst the feature
ends as one bin and carries no weight.

Why not optbinning: it installs here, but it brings a 30 MB mixed-integer solver (OR-Tools)
into every deployment for a problem isotonic regression solves exactly when the trend is given,
and its binning objects cannot be converted to ONNX either, so the scorecard graph is written
from the bin edges whatever fits them (:mod:`training.scorecard_onnx`).

Bins are right-closed: value ``x`` falls in bin ``sum(x > edge)``, the same comparison the
ONNX graph makes. Edges are float32 values because the graph compares float32 inputs; a
missing value (NaN) is a bin of its own.

Weight of evidence here is ``ln(bad share / good share)`` of a bin, so higher means riskier and
every fitted coefficient must be non-negative. The missing bin's weight is shrunk toward 0 (the
portfolio's own odds) by ``MISSING_PRIOR_ROWS`` pseudo-rows at the portfolio bad rate: with no
missing training rows it is exactly 0, with a few it stays near 0 (a handful of rows cannot
carry extreme evidence), and with many it approaches its own WoE. An application that leaves
the bureau fields out therefore scores near the portfolio's PD, not as the riskiest applicant
on every field at once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression

DEFAULT_PREBINS = 20
DEFAULT_MIN_SHARE = 0.05
# The missing bin counts as if this many more rows at the portfolio bad rate were in it.
MISSING_PRIOR_ROWS = 100
# Added to each count of the WoE ratio so a bin with no bads (or goods) stays finite.
_SMOOTHING = 0.5


@dataclass(frozen=True)
class Binning:
    """One characteristic: bin edges, counts and weight of evidence per bin."""

    name: str
    direction: int  # +1: a higher value never lowers PD; -1: never raises it
    edges: tuple[float, ...]  # float32-exact inner edges; len(edges) + 1 bins
    counts: tuple[int, ...]
    bads: tuple[int, ...]
    woe: tuple[float, ...]
    missing_count: int
    missing_bads: int
    missing_woe: float
    iv: float  # information value over the present bins and the missing bin

    @property
    def n_bins(self) -> int:
        return len(self.woe)

    def bin_index(self, values: np.ndarray) -> np.ndarray:
        """Each value's bin (``-1`` for missing), compared in float32 as the ONNX graph does."""
        x = np.asarray(values, dtype=np.float32)
        edges = np.asarray(self.edges, dtype=np.float32)
        index = (x[:, None] > edges[None, :]).sum(axis=1)
        return np.where(np.isnan(x), -1, index)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Each value's weight of evidence."""
        index = self.bin_index(values)
        woe = np.asarray(self.woe, dtype=np.float64)
        return np.where(index < 0, self.missing_woe, woe[np.maximum(index, 0)])

    def labels(self) -> list[str]:
        """Readable bin ranges, ``(a, b]``, lowest first."""
        bounds = [-np.inf, *self.edges, np.inf]
        return [f"({lo:.6g}, {hi:.6g}]" for lo, hi in itertools.pairwise(bounds)]


def _woe(bads: np.ndarray, goods: np.ndarray, total_bads: float, total_goods: float) -> np.ndarray:
    # Unsmoothed whenever every bin has bads and goods (the merges ensure it for present bins),
    # so the WoE order is exactly the bad-rate order; smoothing only keeps an empty side finite.
    smooth = _SMOOTHING if (bads == 0).any() or (goods == 0).any() else 0.0
    bad_share = (bads + smooth) / (total_bads + smooth)
    good_share = (goods + smooth) / (total_goods + smooth)
    return np.log(bad_share / good_share)


def shrunk_missing_woe(
    count: int, bads: int, total_bads: float, total_goods: float,
    prior_rows: float = MISSING_PRIOR_ROWS,
) -> float:
    """The missing bin's WoE with ``prior_rows`` pseudo-rows at the portfolio bad rate added:
    0 without rows, tending to the bin's own WoE as its rows grow."""
    total = total_bads + total_goods
    if total_bads <= 0.0 or total_goods <= 0.0:
        return 0.0  # one class only: no evidence of anything
    prior_bads = prior_rows * total_bads / total
    bad_share = (bads + prior_bads) / total_bads
    good_share = (count - bads + prior_rows - prior_bads) / total_goods
    return float(np.log(bad_share / good_share))


def _fine_classes(present: np.ndarray, prebins: int) -> np.ndarray:
    """Candidate inner edges: distinct quantiles of the present values, in float32."""
    if present.size == 0:
        return np.empty(0, dtype=np.float32)
    quantiles = np.quantile(present, np.linspace(0.0, 1.0, prebins + 1)[1:-1], method="lower")
    edges = np.unique(quantiles.astype(np.float32))
    # an edge at the maximum would leave its upper bin empty
    return edges[edges < np.float32(present.max())]


def _group(counts: np.ndarray, bads: np.ndarray, groups: list[list[int]]) -> tuple:
    n = np.asarray([counts[g].sum() for g in groups], dtype=np.float64)
    b = np.asarray([bads[g].sum() for g in groups], dtype=np.float64)
    return n, b


def fit_binning(
    name: str,
    values: np.ndarray,
    labels: np.ndarray,
    direction: int,
    *,
    prebins: int = DEFAULT_PREBINS,
    min_share: float = DEFAULT_MIN_SHARE,
) -> Binning:
    """Monotone bins of ``values`` against the 0/1 ``labels`` (1 = bad)."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    x = np.asarray(values, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    missing = np.isnan(x)
    present, y_present = x[~missing].astype(np.float32), y[~missing]
    edges = _fine_classes(present, prebins)
    index = (present[:, None] > edges[None, :]).sum(axis=1)
    counts = np.bincount(index, minlength=edges.size + 1).astype(np.float64)
    bads = np.bincount(index, weights=y_present, minlength=edges.size + 1)

    groups = [[i] for i in range(edges.size + 1)]
    if edges.size:
        rates = bads / np.maximum(counts, 1.0)
        fitted = IsotonicRegression(increasing=direction > 0).fit_transform(
            np.arange(rates.size), rates, sample_weight=np.maximum(counts, 1e-9)
        )
        groups = []
        for i, value in enumerate(fitted):
            if groups and np.isclose(value, fitted[groups[-1][-1]], rtol=0.0, atol=1e-12):
                groups[-1].append(i)
            else:
                groups.append([i])
    min_rows = min_share * x.size
    while len(groups) > 1:
        n, b = _group(counts, bads, groups)
        weak = (n < min_rows) | (b == 0) | (b == n)
        if not weak.any():
            break
        i = int(np.argmax(weak))  # the first weak bin, merged into its closer neighbour
        rate = b / n
        if i == 0:
            j = 1
        elif i == len(groups) - 1:
            j = i - 1
        else:
            j = i - 1 if abs(rate[i - 1] - rate[i]) <= abs(rate[i + 1] - rate[i]) else i + 1
        lo, hi = min(i, j), max(i, j)
        groups[lo:hi + 1] = [groups[lo] + groups[hi]]

    n, b = _group(counts, bads, groups)
    kept_edges = tuple(float(edges[g[-1]]) for g in groups[:-1])
    total_bads = float(y.sum())
    total_goods = float(y.size) - total_bads
    woe = _woe(b, n - b, total_bads, total_goods)
    missing_count = int(missing.sum())
    missing_bads = int(y[missing].sum())
    missing_woe = shrunk_missing_woe(missing_count, missing_bads, total_bads, total_goods)
    bad_share = np.append(b, missing_bads) / max(total_bads, 1.0)
    good_share = np.append(n - b, missing_count - missing_bads) / max(total_goods, 1.0)
    iv = float(np.sum((bad_share - good_share) * np.append(woe, missing_woe)))
    return Binning(
        name=name,
        direction=direction,
        edges=kept_edges,
        counts=tuple(int(c) for c in n),
        bads=tuple(int(c) for c in b),
        woe=tuple(float(w) for w in woe),
        missing_count=missing_count,
        missing_bads=missing_bads,
        missing_woe=missing_woe,
        iv=iv,
    )
