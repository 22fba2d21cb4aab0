"""Monotone binning and the scorecard's ONNX graph, as properties over any data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.features import FEATURE_NAMES
from flows.model import open_session
from training.binning import MISSING_PRIOR_ROWS, fit_binning, shrunk_missing_woe
from training.onnx_export import onnx_pd
from training.scorecard import fit_scorecard
from training.scorecard_onnx import scorecard_onnx

values = st.lists(
    st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False, width=32),
        st.sampled_from([0.0, 1.0, 2.0, float("nan")]),
    ),
    min_size=40,
    max_size=400,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=values, seed=st.integers(0, 2**16), direction=st.sampled_from([1, -1]))
def test_bins_are_monotone_in_the_documented_direction(
    values: list[float], seed: int, direction: int
) -> None:
    x = np.asarray(values, dtype=np.float64)
    y = (np.random.default_rng(seed).random(x.size) < 0.3).astype(np.int8)
    binning = fit_binning("f", x, y, direction, prebins=10, min_share=0.05)
    present = ~np.isnan(x)
    # every present row is in exactly one bin, and the counts say so
    index = binning.bin_index(x)
    assert (index[present] >= 0).all() and (index[~present] == -1).all()
    assert sum(binning.counts) == present.sum()
    assert list(binning.counts) == np.bincount(index[present], minlength=binning.n_bins).tolist()
    assert binning.missing_count == (~present).sum()
    # the bad rate, and so the WoE, never moves against the direction
    woe = np.asarray(binning.woe)
    assert (np.diff(woe) * direction >= -1e-12).all()
    rates = np.asarray(binning.bads) / np.maximum(binning.counts, 1)
    assert (np.diff(rates) * direction >= -1e-12).all()
    assert list(binning.edges) == sorted(set(binning.edges))
    assert np.isfinite(woe).all() and np.isfinite(binning.missing_woe)
    if binning.missing_count == 0:
        # no evidence for a missing value: it scores at the portfolio's odds
        assert abs(binning.missing_woe) < 1e-12


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(0, 5000),
    bad_share=st.floats(0.0, 1.0),
    total_bads=st.integers(1, 10_000),
    total_goods=st.integers(1, 100_000),
)
def test_missing_woe_shrinks_toward_the_portfolio(
    count: int, bad_share: float, total_bads: int, total_goods: int
) -> None:
    """The missing bin's WoE lies between 0 and its own raw WoE, so a bin of a few rows can
    never carry extreme evidence; with many rows it approaches its own."""
    bads = round(count * bad_share)
    shrunk = shrunk_missing_woe(count, bads, total_bads, total_goods)
    assert np.isfinite(shrunk)
    if count == 0:
        assert abs(shrunk) < 1e-12
    if 0 < bads < count:
        raw = np.log((bads / total_bads) / ((count - bads) / total_goods))
        assert min(raw, 0.0) - 1e-9 <= shrunk <= max(raw, 0.0) + 1e-9
    # a single row, bad or good, moves the odds by at most one pseudo-row's worth
    for one_bad in (0, 1):
        moved = shrunk_missing_woe(1, one_bad, total_bads, total_goods)
        assert abs(moved) <= np.log(1 + 1 / (MISSING_PRIOR_ROWS * min(
            total_bads, total_goods) / (total_bads + total_goods))) + 1e-9


def test_a_few_missing_rows_cannot_give_extreme_weight() -> None:
    # 4 missing rows, all bad, in a portfolio with a 5% bad rate: unshrunk this is the
    # riskiest attribute by far (infinite WoE); shrunk it stays below twice the odds
    shrunk = shrunk_missing_woe(4, 4, total_bads=500, total_goods=9500)
    assert 0.0 < shrunk < np.log(2.0)
    # with thousands of rows the bin's own evidence wins
    assert shrunk_missing_woe(4000, 400, 500, 9500) == pytest.approx(
        np.log((400 / 500) / (3600 / 9500)), abs=0.05
    )


def test_edges_compare_as_the_float32_graph_does() -> None:
    # 0.1 is not a float32: a float64 comparison would put 0.1 in another bin than ONNX does
    x = np.array([0.1] * 50 + [0.2] * 50 + [0.30000001] * 50, dtype=np.float64)
    y = np.array([0] * 45 + [1] * 5 + [0] * 40 + [1] * 10 + [0] * 30 + [1] * 20)
    binning = fit_binning("f", x, y, 1, prebins=3, min_share=0.05)
    assert np.float32(binning.edges[0]) == binning.edges[0]
    assert binning.bin_index(np.array([0.1, 0.2, 0.30000001])).tolist() == [0, 1, 2]


@pytest.mark.training  # fits a scorecard on the real loans
def test_scorecard_graph_matches_python_on_missing_values(lending_club: object) -> None:
    from training.matrix import application_matrix

    matrix = application_matrix(lending_club)  # type: ignore[arg-type]
    x, y = matrix.features[:3000].copy(), matrix.labels[:3000]
    chars = ["revolving_utilization", "inquiries_6m", "employment_years", "term_60"]
    card = fit_scorecard(x, y, FEATURE_NAMES, chars, kind="applicant", C=1.0, prebins=20,
                         min_share=0.05)  # fmt: skip
    x[::3, FEATURE_NAMES.index("revolving_utilization")] = np.nan
    x[::5, FEATURE_NAMES.index("inquiries_6m")] = np.nan
    graph = scorecard_onnx(card, "features", "probabilities", {"": 17}).SerializeToString()
    expected = card.predict_proba(x)[:, 1]
    assert np.abs(onnx_pd(graph, x) - expected).max() < 1e-12
    # the pd is the logistic of the points: 20 more points halve the odds of default
    total = card.points(x).sum(axis=1)
    odds = expected / (1 - expected)
    shifted = total + 20.0
    halved = 1.0 / (1.0 + np.exp((shifted - 600.0 + 20.0 / np.log(2) * np.log(50.0))
                                 / (20.0 / np.log(2))))  # fmt: skip
    np.testing.assert_allclose(halved / (1 - halved), odds / 2, rtol=1e-9)


@pytest.mark.parametrize("direction", [1, -1])
def test_a_trend_against_the_direction_leaves_one_bin(direction: int) -> None:
    x = np.repeat(np.arange(10.0), 100)
    # bad rate falls as x rises: fine for -1, and merged away entirely for +1
    y = (np.tile(np.arange(100), 10) < (30 - 3 * np.repeat(np.arange(10), 100))).astype(int)
    binning = fit_binning("f", x, y, direction, prebins=10, min_share=0.02)
    if direction == 1:
        assert binning.n_bins == 1 and binning.iv == pytest.approx(0.0, abs=1e-12)
    else:
        assert binning.n_bins > 3 and binning.iv > 0.1


@pytest.mark.training  # fits a scorecard on the real loans
def test_a_loans_pd_does_not_depend_on_its_batch(lending_club: object) -> None:
    """Replays, restarts and archive rebuilds compare stored rows exactly: a loan scored alone,
    at any offset of any batch, gets bit for bit the same PD and points."""
    from training.matrix import application_matrix

    matrix = application_matrix(lending_club)  # type: ignore[arg-type]
    chars = ["revolving_utilization", "inquiries_6m", "employment_years", "term_60",
             "debt_to_income", "installment_opened_12m", "total_utilization"]  # fmt: skip
    card = fit_scorecard(matrix.features, matrix.labels, FEATURE_NAMES, chars, kind="applicant",
                         C=1.0, prebins=40, min_share=0.02)  # fmt: skip
    x = matrix.features.copy()
    x[::7, FEATURE_NAMES.index("revolving_utilization")] = np.nan
    graph = scorecard_onnx(card, "features", "probabilities", {"": 17}).SerializeToString()
    session = open_session(graph)

    def score(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pd, points = session.run(None, {"features": rows.astype(np.float32)})
        return pd[:, 1], points

    whole_pd, whole_points = score(x)
    # the graph's points are the scorecard's own, exactly (float32 holds them all)
    assert np.array_equal(whole_points, card.points(x))
    rng = np.random.default_rng(3)
    for size in (1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 100, 999, 4001):
        for start in rng.integers(0, len(x) - size, 6):
            pd, points = score(x[start : start + size])
            assert np.array_equal(pd, whole_pd[start : start + size]), (size, start)
            assert np.array_equal(points, whole_points[start : start + size]), (size, start)
