"""Days past due is one formula (flows.loan.state.dpd_on_day) read by the state update, the
features and the labels: every reader agrees with the servicing waterfall walked installment by
installment, on any calendar, term, installment, payments and day, the schedule's end and a
paid-off balance included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.loan.behaviour import behaviour_features
from flows.loan.schedule import due_date, due_days
from flows.loan.state import CENT, LoanState, days_past_due, dpd_on_day


def waterfall_dpd(
    origination: date,
    term: int,
    installment_cents: int,
    paid_cents: int,
    balance: float,
    as_of: date,
) -> int:
    """The oldest installment the payments do not cover, found by paying installments in turn."""
    if balance <= CENT:
        return 0
    left = paid_cents
    for n in range(1, term + 1):
        if left < installment_cents:
            return max(0, (as_of - due_date(origination, n)).days)
        left -= installment_cents
    return 0


def loan(
    origination: date, term: int, installment_cents: int, paid_cents: int, balance: float
) -> LoanState:
    return LoanState(
        loan_id="L",
        funded_amnt=max(balance, 1.0),
        term_months=term,
        installment=installment_cents / 100,
        origination_pd=0.05,
        origination_logit=-2.9,
        origination_time=datetime.combine(origination, datetime.min.time(), UTC),
        origination_date=origination,
        outstanding_balance=balance,
        total_paid_cents=paid_cents,
        installment_cents=installment_cents,
        due_days=due_days(origination, term),
    )


@settings(max_examples=400, deadline=None)
@given(
    origination=st.dates(date(2007, 1, 1), date(2030, 12, 31)),
    term=st.integers(1, 84),
    installment_cents=st.integers(1, 500_000),
    paid_share=st.floats(0.0, 1.2),
    balance=st.sampled_from([0.0, 0.004, CENT, 0.006, 1.0, 12_345.67]),
    offset=st.integers(-40, 84 * 31 + 400),
)
def test_every_reader_of_days_past_due_follows_the_waterfall(
    origination: date,
    term: int,
    installment_cents: int,
    paid_share: float,
    balance: float,
    offset: int,
) -> None:
    paid = int(paid_share * term * installment_cents)
    as_of = origination + timedelta(days=offset)
    expected = waterfall_dpd(origination, term, installment_cents, paid, balance, as_of)
    state = loan(origination, term, installment_cents, paid, balance)
    assert dpd_on_day(state, as_of.toordinal(), paid, balance) == expected
    assert days_past_due(state, as_of) == expected
    assert behaviour_features(state, as_of)[0] == expected


def test_a_placeholder_is_never_past_due() -> None:
    """A repayment waiting for its application: no schedule yet, nothing past due."""
    placeholder = msgspec.structs.replace(
        loan(date(2024, 1, 15), 36, 33_214, 0, 0.0),
        origination_date=None,
        origination_time=None,
        term_months=0,
        installment_cents=0,
        due_days=(),
    )
    assert days_past_due(placeholder, date(2025, 1, 1)) == 0
