"""The pure feature formulas, including zero income and missing optional fields."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.events import LoanApplication
from flows.features import (
    FEATURE_NAMES,
    FEATURES,
    application_features,
    guarded_ratio,
    monthly_installment,
)

BASE = {
    "schema_version": 1,
    "event_type": "loan_application",
    "event_id": "app-1",
    "loan_id": "L1",
    "borrower_id": "B1",
    "event_time": datetime(2024, 3, 1, tzinfo=UTC),
    "funded_amnt": 12000.0,
    "term_months": 36,
    "int_rate": 12.0,
    "sub_grade": "B3",
    "addr_state": "CA",
    "verification_status": "verified",
    "annual_inc": 60000.0,
    "emp_length_years": 5,
    "delinq_2yrs": 1,
    "inq_last_6mths": 2,
    "revol_util": 50.0,
    "acc_now_delinq": 0,
    "open_il_6m": 1,
    "open_il_12m": 1,
    "open_il_24m": 2,
    "total_bal_il": 18000.0,
    "all_util": 60.0,
    "inq_fi": 1,
    "inq_last_12m": 3,
    "delinq_amnt": 0.0,
    "num_il_tl": 4,
    "total_il_high_credit_limit": 24000.0,
}


def features(**changes: object) -> dict[str, float]:
    app = msgspec.convert({**BASE, **changes}, LoanApplication)
    return dict(zip(FEATURE_NAMES, application_features(app), strict=True))


def test_every_feature_has_a_documented_formula() -> None:
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES))
    assert all(f.formula.strip() for f in FEATURES)
    assert len(application_features(msgspec.convert(BASE, LoanApplication))) == len(FEATURES)


def test_installment_matches_a_known_amortization_schedule() -> None:
    # 10,000 at 12% a year over 36 months: the textbook payment is 332.14.
    assert monthly_installment(10_000, 12.0, 36) == pytest.approx(332.1431, abs=1e-4)
    assert monthly_installment(3_600, 0.0, 36) == pytest.approx(100.0)


def test_ratios_for_a_typical_loan() -> None:
    f = features()
    installment = monthly_installment(12000, 12.0, 36)
    assert f["loan_to_income"] == pytest.approx(0.2)
    assert f["installment_to_income"] == pytest.approx(12 * installment / 60000)
    assert f["debt_to_income"] == pytest.approx((18000 + 12000) / 60000)
    assert f["installment_utilization"] == pytest.approx(0.75)
    assert f["revolving_utilization"] == pytest.approx(0.5)
    assert f["total_utilization"] == pytest.approx(0.6)
    assert f["interest_rate"] == pytest.approx(0.12)
    assert f["sub_grade_rank"] == 8.0
    assert f["term_60"] == 0.0
    assert f["income_verified"] == 1.0
    assert f["income_stability"] == pytest.approx(0.7 * 0.5 + 0.3)


def test_zero_income_gives_the_capped_ratio_not_an_error() -> None:
    f = features(annual_inc=0.0)
    assert f["income_zero"] == 1.0
    assert f["loan_to_income"] == 10.0
    assert f["installment_to_income"] == 5.0
    assert f["debt_to_income"] == 20.0
    assert f["annual_income_log"] == 0.0


def test_missing_optional_fields_become_nan_for_the_imputer() -> None:
    f = features(
        emp_length_years=None,
        revol_util=None,
        total_bal_il=None,
        total_il_high_credit_limit=None,
        delinq_2yrs=None,
    )
    assert math.isnan(f["revolving_utilization"])
    assert math.isnan(f["debt_to_income"])
    assert math.isnan(f["installment_utilization"])
    assert math.isnan(f["delinquencies_2y"])
    assert math.isnan(f["employment_years"])
    assert f["employment_unknown"] == 1.0
    assert f["income_stability"] == pytest.approx(0.3)
    assert not math.isnan(f["loan_to_income"])


def test_zero_credit_limit_with_no_balance_is_zero_utilization() -> None:
    assert (
        features(total_bal_il=0.0, total_il_high_credit_limit=0.0)["installment_utilization"] == 0.0
    )
    assert (
        features(total_bal_il=10.0, total_il_high_credit_limit=0.0)["installment_utilization"]
        == 2.0
    )


@pytest.mark.parametrize(
    ("opened_24m", "accounts", "share"),
    [
        (2, 4, 0.5),  # half the installment accounts are new
        (0, 0, 0.0),  # no installment accounts: none of them is new
        (3, 0, 1.0),  # inconsistent bureau counts: the cap, the riskiest value
        (6, 4, 1.0),  # more opened than held (closed since): capped at all of them
        (None, 4, math.nan),  # a count not supplied: its own missing bin, never a guess
        (2, None, math.nan),
    ],
)
def test_recent_installment_share(
    opened_24m: int | None, accounts: int | None, share: float
) -> None:
    value = features(open_il_24m=opened_24m, num_il_tl=accounts)["recent_installment_share"]
    assert value == share or (math.isnan(share) and math.isnan(value))


@given(
    numerator=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    denominator=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    cap=st.floats(min_value=0.1, max_value=100),
)
def test_guarded_ratio_is_always_finite_and_within_its_cap(
    numerator: float, denominator: float, cap: float
) -> None:
    value = guarded_ratio(numerator, denominator, cap)
    assert 0.0 <= value <= cap


@given(
    amount=st.floats(min_value=500, max_value=1e6),
    income=st.floats(min_value=0, max_value=1e7),
    rate=st.floats(min_value=0, max_value=40),
    term=st.sampled_from([36, 60]),
)
def test_features_are_never_infinite(amount: float, income: float, rate: float, term: int) -> None:
    f = features(funded_amnt=amount, annual_inc=income, int_rate=rate, term_months=term)
    assert all(not math.isinf(v) for v in f.values())
