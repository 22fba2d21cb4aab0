"""The pure part of the repeated held-out evaluation: which splits, and how their figures
add up (training/repeated.py), and the split itself (training.train.holdout_split)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.repeated import split_seeds, spread, summarize
from training.train import holdout_split

aucs = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
shares = st.floats(min_value=0.05, max_value=0.5)


@given(value=aucs, n=st.integers(min_value=2, max_value=50), share=shares)
def test_identical_split_figures_sum_up_to_that_figure_with_no_width(
    value: float, n: int, share: float
) -> None:
    s = spread([value] * n, share)
    for key in ("mean", "low", "high", "worst", "best", "mean_low", "mean_high"):
        assert s[key] == pytest.approx(value, abs=1e-12), key
    assert s["sd"] == s["sem"] == s["corrected_se"] == 0.0


@given(value=aucs, share=shares)
def test_one_split_has_no_spread_to_measure(value: float, share: float) -> None:
    s = spread([value], share)
    assert s["mean"] == s["low"] == s["high"] == s["worst"] == s["best"] == value
    assert s["sd"] is s["sem"] is s["mean_low"] is s["mean_high"] is None


@given(values=st.lists(aucs, min_size=2, max_size=40), share=shares)
def test_the_intervals_are_ordered_and_the_overlap_widens_the_mean_interval(
    values: list[float], share: float
) -> None:
    s = spread(values, share)
    tol = 1e-12
    assert s["worst"] - tol <= s["low"] <= s["high"] <= s["best"] + tol
    assert s["worst"] - tol <= s["mean"] <= s["best"] + tol
    assert s["mean_low"] <= s["mean"] + tol and s["mean"] <= s["mean_high"] + tol
    assert s["sem"] == pytest.approx(np.std(values, ddof=1) / math.sqrt(len(values)))
    # the corrected standard error is never below the plain one: the splits share loans
    assert s["corrected_se"] >= s["sem"] - tol


def test_the_corrected_interval_is_the_nadeau_bengio_one() -> None:
    values = [0.66, 0.70, 0.68, 0.64, 0.72]
    s = spread(values, 0.2)
    sd = float(np.std(values, ddof=1))
    # t(0.975, 4 df) = 2.7764; correction sqrt(1/5 + 0.2/0.8)
    half = 2.7764451 * sd * math.sqrt(1 / 5 + 0.25)
    assert s["mean_low"] == pytest.approx(0.68 - half, abs=1e-6)
    assert s["mean_high"] == pytest.approx(0.68 + half, abs=1e-6)


@given(seed=st.integers(min_value=0, max_value=2**32 - 1), repeats=st.integers(1, 60))
def test_split_seeds_start_at_the_default_split_and_are_distinct(seed: int, repeats: int) -> None:
    seeds = split_seeds(seed, repeats)
    assert seeds[0] == seed and len(seeds) == len(set(seeds)) == repeats
    assert all(0 <= s < 2**32 for s in seeds)
    assert split_seeds(seed, repeats) == seeds


@pytest.mark.parametrize(("seed", "repeats"), [(42, 0), (42, -1), (-1, 3), (2**32, 3)])
def test_split_seeds_refuse_what_no_split_can_use(seed: int, repeats: int) -> None:
    with pytest.raises(ValueError):
        split_seeds(seed, repeats)


@given(
    records=st.lists(st.tuples(aucs, aucs, aucs), min_size=1, max_size=25),
)
def test_summary_pairs_each_lift_with_its_own_split(
    records: list[tuple[float, float, float]],
) -> None:
    splits = [
        {
            "seed": 42 + i, "auc": m, "benchmarks": {"sub_grade_rank": g, "interest_rate": r},
            "mean_pd": 0.05 + 0.01 * m, "bad_rate": 0.055, "hl_p_value": g,
        }
        for i, (m, g, r) in enumerate(records)
    ]  # fmt: skip
    out = summarize(splits, 0.2)
    assert out["repeats"] == len(records) and out["seeds"] == [s["seed"] for s in splits]
    assert out["default"]["seed"] == 42
    lifts = [m - g for m, g, _ in records]
    lift = out["benchmarks"]["sub_grade_rank"]["lift"]
    assert lift["mean"] == pytest.approx(float(np.mean(lifts)), abs=1e-12)
    assert lift["worst"] == pytest.approx(min(lifts)) and lift["best"] == pytest.approx(max(lifts))
    assert out["benchmarks"]["sub_grade_rank"]["splits_above"] == sum(x > 0 for x in lifts)
    model = [m for m, _, _ in records]
    assert out["worst"]["auc"] == min(model) and out["best"]["auc"] == max(model)
    assert splits[model.index(min(model))]["seed"] == out["worst"]["seed"]
    calibration = out["calibration"]
    ratios = [(0.05 + 0.01 * m) / 0.055 for m in model]
    assert calibration["splits_within_10pct"] == sum(abs(r - 1) <= 0.1 for r in ratios)
    assert calibration["splits_hl_p_above_005"] == sum(g > 0.05 for _, g, _ in records)


label_arrays = st.lists(st.booleans(), min_size=40, max_size=400).filter(
    lambda y: 10 <= sum(y) <= len(y) - 10
)


@settings(max_examples=60, deadline=None)
@given(labels=label_arrays, seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_each_split_is_stratified_disjoint_and_fixed_by_its_seed(
    labels: list[bool], seed: int
) -> None:
    y = np.asarray(labels, dtype=np.float64)
    train, test = holdout_split(y, 0.2, seed)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(y.size))
    # stratified: the test part holds the bads' share of 20 %, to within one loan
    assert abs(y[test].sum() - 0.2 * y.sum()) <= 1.0
    again_train, again_test = holdout_split(y, 0.2, seed)
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)
