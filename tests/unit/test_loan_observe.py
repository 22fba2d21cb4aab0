"""The one-pass repayment (flows.loan.observe) against the two functions it stands for:
apply_repayment then behaviour_features on the event's date, on random histories with
out-of-order arrivals, repeats, corrections, misses, short and catch-up payments, payoffs,
repayments before their application and windows that wrap."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.events import LoanApplication, LoanRepayment
from flows.loan import observe
from flows.loan.behaviour import FEATURE_ROW, behaviour_features
from flows.loan.schedule import amortization_schedule, due_date
from flows.loan.state import LoanState, LoanStateError, apply_repayment, open_loan

ORIGINATED = datetime(2024, 1, 31, 22, 15, tzinfo=UTC)  # a month end: due days clamp
TERM = 36
SCHEDULE = amortization_schedule(12_000.0, 14.5, TERM)
INSTALLMENT = SCHEDULE[0][1]
APP = msgspec.convert(
    {
        "schema_version": 1,
        "event_type": "loan_application",
        "event_id": "app-P1",
        "loan_id": "P1",
        "borrower_id": "B1",
        "event_time": ORIGINATED,
        "funded_amnt": 12_000.0,
        "term_months": TERM,
        "int_rate": 14.5,
        "sub_grade": "C2",
        "addr_state": "TX",
        "verification_status": "verified",
        "annual_inc": 48_000.0,
    },
    LoanApplication,
)

# share of the installment paid: missed, short, exact, a catch-up of two, a payoff-sized sum
PAID_SHARES = (0.0, 0.4, 1.0, 1.0, 1.0, 2.0, 30.0)
LATE_DAYS = (-5, 0, 0, 3, 17, 45, 95)

payment = st.tuples(
    st.integers(1, 40),  # installment number: past the term and past the window too
    st.sampled_from(PAID_SHARES),
    st.sampled_from(LATE_DAYS),
    st.booleans(),  # a paid-off balance
    st.integers(0, 3),  # 0: a correction (a new id for the installment), else its usual id
)


def repayment(n: int, share: float, late: int, paid_off: bool, variant: int) -> LoanRepayment:
    due = due_date(ORIGINATED.date(), n)
    paid = round(INSTALLMENT * share, 2)
    pay_date = None if paid == 0 else due + timedelta(days=late)
    happened = pay_date or due + timedelta(days=max(late, 1))
    balance = 0.0 if paid_off else SCHEDULE[min(n, TERM) - 1][4]
    return LoanRepayment(
        schema_version=1,
        event_type="loan_repayment",
        event_id=f"rep-P1-{n}" + (f"-fix{share}-{late}" if variant == 0 else ""),
        loan_id="P1",
        event_time=datetime.combine(happened, ORIGINATED.timetz()),
        installment_number=n,
        due_date=due,
        amount_due=INSTALLMENT,
        amount_paid=paid,
        payment_date=pay_date,
        outstanding_balance=balance,
    )


def in_order(count: int) -> list[LoanRepayment]:
    return [repayment(n, 1.0, 0, False, 1) for n in range(1, count + 1)]


def exactly(a: tuple[float, ...] | None, b: tuple[float, ...] | None) -> bool:
    """Same values and types, NaN equal to NaN: no tolerance."""
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(
        type(x) is type(y) and (x == y or (math.isnan(x) and math.isnan(y)))
        for x, y in zip(a, b, strict=True)
    )


def described(
    state: LoanState | None, event: LoanRepayment
) -> tuple[LoanState, tuple[float, ...] | None]:
    """The one pass, its packed features read back as numbers; its days past due checked
    against the first of them."""
    after, packed, dpd = observe.apply_and_describe(state, event)
    if packed is None:
        return after, None
    features = FEATURE_ROW.unpack(packed)
    assert dpd == int(features[0]) and type(dpd) is int
    return after, features


def reference(
    state: LoanState | None, event: LoanRepayment
) -> tuple[LoanState, tuple[float, ...] | None]:
    after = apply_repayment(state, event)
    if after is state or after.origination_date is None:
        return after, None
    return after, behaviour_features(after, event.event_time.date())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(payment, min_size=1, max_size=45),
    st.integers(0, 45),  # how many repayments arrive before the application
    st.integers(0, 30),  # an in-order run first, so windows fill and wrap
)
def test_one_pass_equals_apply_then_features(
    payments: list[tuple[int, float, int, bool, int]], before_app: int, run_in_order: int
) -> None:
    events = in_order(run_in_order) + [repayment(*p) for p in payments]
    # repeats: the same event again, now and then
    events += events[:: max(len(events) // 3, 1)]
    state: LoanState | None = None
    reference_state: LoanState | None = None
    for i, event in enumerate(events):
        if i == min(before_app, len(events) - 1):
            state = open_loan(APP, 0.07, state)
            reference_state = open_loan(APP, 0.07, reference_state)
        expected, expected_features = reference(reference_state, event)
        got, got_features = described(state, event)
        assert got == expected
        assert (got is state) == (expected is reference_state)
        assert exactly(got_features, expected_features)
        state, reference_state = got, expected


def test_in_order_repayments_take_the_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next installment of an open loan never goes through the two-call path; the same
    history answered by it gives the same states and features."""
    history = in_order(20)
    expected: list[tuple[LoanState, tuple[float, ...] | None]] = []
    state = open_loan(APP, 0.07)
    for event in history:
        state, features = reference(state, event)
        expected.append((state, features))

    def refused(state: LoanState | None, event: LoanRepayment) -> tuple[LoanState, None]:
        raise AssertionError(f"installment {event.installment_number} took the two-call path")

    monkeypatch.setattr(observe, "_reference", refused)
    state = open_loan(APP, 0.07)
    for event, (want_state, want_features) in zip(history, expected, strict=True):
        state, features = described(state, event)
        assert state == want_state
        assert exactly(features, want_features)
    assert state.installments_recorded == 20 and len(state.recent) < 20  # the window wrapped


def test_errors_are_the_two_call_paths_errors() -> None:
    other = msgspec.structs.replace(in_order(1)[0], loan_id="P2")
    opened = open_loan(APP, 0.07)
    for call in (apply_repayment, observe.apply_and_describe):
        with pytest.raises(LoanStateError):
            call(opened, other)
