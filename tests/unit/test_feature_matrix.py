"""The batch evaluation of the FEATURES formulas equals the per-event function bit for bit, on
generated applications (edges: zero income, zero or tiny rates, missing fields) and real loans."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.events import SUB_GRADES, LoanApplication
from flows.features import FEATURE_NAMES, application_features, feature_matrix
from flows.validation import decode_application
from tests.unit.test_features import BASE
from training.dataset import LendingClub
from training.replay import ReplayPlan, application_events

START = datetime(2024, 1, 1, tzinfo=UTC)


def optional(values: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.none() | values


def money(high: float) -> st.SearchStrategy[float]:
    return st.sampled_from([0.0, 1.0, high]) | st.floats(0.0, high)


COUNT = optional(st.integers(0, 1000))
PERCENT = optional(st.floats(0.0, 1000.0))
APPLICATIONS = st.fixed_dictionaries(
    {
        "funded_amnt": st.sampled_from([5e-324, 1e7]) | st.floats(1e-300, 1e7),
        "term_months": st.sampled_from([36, 60]),
        "annual_inc": money(1e9),
        "int_rate": optional(
            st.sampled_from([0.0, 5e-324, 1e-13, 1.2e-10, 100.0]) | st.floats(0.0, 100.0)
        ),
        "sub_grade": optional(st.sampled_from(SUB_GRADES)),
        "verification_status": st.sampled_from(["not_verified", "verified", "source_verified"]),
        "emp_length_years": optional(st.integers(0, 10)),
        "revol_util": PERCENT,
        "all_util": PERCENT,
        "total_bal_il": optional(money(1e9)),
        "total_il_high_credit_limit": optional(money(1e9)),
        "delinq_amnt": optional(money(1e9)),
        **{
            name: COUNT
            for name in (
                "delinq_2yrs",
                "inq_last_6mths",
                "acc_now_delinq",
                "open_il_6m",
                "open_il_12m",
                "open_il_24m",
                "inq_fi",
                "inq_last_12m",
                "num_il_tl",
            )
        },
    }
).map(lambda fields: msgspec.convert({**BASE, **fields}, LoanApplication))


def per_event(apps: list[LoanApplication]) -> np.ndarray:
    rows = [application_features(a) for a in apps]
    return np.array(rows, dtype=np.float64).reshape(len(apps), len(FEATURE_NAMES))


def assert_bit_for_bit(apps: list[LoanApplication]) -> None:
    batch, single = feature_matrix(apps), per_event(apps)
    assert batch.shape == single.shape == (len(apps), len(FEATURE_NAMES))
    # the raw bits: equal values, the same NaNs, and -0.0 apart from 0.0
    same = batch.view(np.uint64) == single.view(np.uint64)
    rows, columns = np.nonzero(~same)
    assert same.all(), [(int(r), FEATURE_NAMES[c], batch[r, c], single[r, c]) for r, c in
                        zip(rows[:5], columns[:5], strict=True)]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(apps=st.lists(APPLICATIONS, max_size=8))
def test_the_batch_formulas_equal_the_per_event_function(apps: list[LoanApplication]) -> None:
    assert_bit_for_bit(apps)


def test_real_loans_give_the_same_features_either_way(lending_club: LendingClub) -> None:
    payloads = application_events(
        lending_club, ReplayPlan(max_events=len(lending_club), start=START)
    )
    apps = [decode_application(p, "t", 1 << 16) for p in payloads]
    assert all(type(a) is LoanApplication for a in apps)
    assert_bit_for_bit(apps)  # type: ignore[arg-type]
