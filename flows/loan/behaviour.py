"""The behavioural features: what a loan's state says about its risk on a given day.

:func:`behaviour_features` turns a :class:`~flows.loan.state.LoanState` into model inputs in
:data:`BEHAVIOUR_FEATURE_NAMES` order. Each formula is described once, in
:data:`BEHAVIOUR_FEATURES`; training replays histories through this code. The dataflow's
one-pass repayment (:mod:`flows.loan.observe`) writes the formulas out again for the in-order
case, held equal to this function by a property test. ``as_of`` is the date the features
describe; the dataflow passes the triggering event's date. Payments already received count
even if ``as_of`` is earlier. Pure.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date
from operator import mul

from flows.loan.schedule import months_on_book
from flows.loan.state import CENT, MISSED, NAN, ON_TIME, LoanState, LoanStateError, dpd_on_day

PAID_TO_DUE_CAP = 2.0


@dataclass(frozen=True)
class BehaviourFeature:
    name: str
    formula: str


BEHAVIOUR_FEATURES: tuple[BehaviourFeature, ...] = (
    BehaviourFeature(
        "days_past_due",
        "(as_of - due date of the oldest installment not covered by cumulative payments) in "
        "days, at least 0; 0 once the balance is 0",
    ),
    BehaviourFeature(
        "worst_days_past_due",
        "max(days_past_due, the worst days past due seen at any repayment event: its own "
        "lateness, or days past due right after it was applied)",
    ),
    BehaviourFeature(
        "installments_in_arrears",
        "max(0, installment * installments due on or before as_of - total paid) / installment "
        "(owed on as_of, today's installment included); 0 once the balance is 0",
    ),
    BehaviourFeature("missed_last_3", "installments with nothing paid among the last 3 recorded"),
    BehaviourFeature("missed_last_6", "installments with nothing paid among the last 6 recorded"),
    BehaviourFeature("missed_last_12", "installments with nothing paid among the last 12 recorded"),
    BehaviourFeature(
        "on_time_ratio",
        "installments paid in full on or before their due date / installments recorded; NaN "
        "before the first",
    ),
    BehaviourFeature(
        "paid_to_due_ratio",
        "total paid / total due over recorded installments, capped at 2 (early payoffs); NaN "
        "before the first",
    ),
    BehaviourFeature(
        "outstanding_balance",
        "principal owed after the highest-numbered installment recorded; funded_amnt before",
    ),
    BehaviourFeature("balance_share", "outstanding_balance / funded_amnt"),
    BehaviourFeature("months_on_book", "whole calendar months from the origination date to as_of"),
    BehaviourFeature(
        "full_on_time_share_6",
        "share of the last 6 recorded installments paid in full on or before their due date "
        "(payment regularity, a proxy for income stability); NaN before the first",
    ),
    BehaviourFeature(
        "paid_amount_cv_6",
        "standard deviation / mean of amount_paid over the last 6 recorded installments "
        "(irregular amounts suggest irregular income); 0 for one installment or when nothing "
        "was paid; NaN before the first",
    ),
    BehaviourFeature(
        "origination_pd_logit",
        "ln(pd / (1 - pd)) of the origination PD, pd clipped to [1e-6, 1 - 1e-6]",
    ),
)
BEHAVIOUR_FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in BEHAVIOUR_FEATURES)
# One observation's features as bytes, little-endian doubles in BEHAVIOUR_FEATURE_NAMES order.
# The flow keeps each repayment's features from the loan book to the live model: as bytes they
# are an object the cyclic garbage collector never tracks (a tuple of floats stays tracked until
# a collection has examined it, and one per repayment kept the collector busy), and a batch of
# them joins into the model's input matrix in one copy.
FEATURE_ROW = struct.Struct(f"<{len(BEHAVIOUR_FEATURE_NAMES)}d")


def behaviour_features(state: LoanState, as_of: date) -> tuple[float, ...]:
    """Behavioural model inputs on ``as_of``, in :data:`BEHAVIOUR_FEATURE_NAMES` order.

    The first element is :func:`days_past_due` on ``as_of`` (as a float), so a caller that needs
    both reads it here instead of computing it twice.
    """
    origination = state.origination_date
    if origination is None:
        raise LoanStateError(f"loan {state.loan_id} has no application yet: nothing to score")
    # months on book written out with the loan's schedule rather than months_on_book: this
    # runs once per repayment. Dates are day numbers (LoanState.due_days).
    balance = state.outstanding_balance
    total_paid = state.total_paid_cents
    term = state.term_months
    dues = state.due_days
    day = as_of.toordinal()
    # installments due on or before as_of (months_on_book while within the schedule): what the
    # borrower owes on as_of, today's installment included, so a loan one behind that paid one
    # installment today still owes one
    months = bisect_right(dues, day) - 1
    if months >= term:
        # the schedule has ended: every installment is due; count months on the calendar
        due_now = term
        months = months_on_book(origination, as_of)
    elif months > 0:
        due_now = months
    else:
        months = due_now = 0
    dpd = dpd_on_day(state, day, total_paid, balance)
    if balance <= CENT:
        arrears = 0.0
    else:
        installment = state.installment_cents
        owed = installment * due_now - total_paid
        arrears = owed / installment if owed > 0 else 0.0

    outcomes = state.outcomes
    last6 = outcomes[-6:]
    recorded = state.installments_recorded
    if recorded:
        on_time_ratio = state.installments_on_time / recorded
        due = state.total_due_cents
        if due > 0:
            paid_to_due = total_paid / due
            if paid_to_due > PAID_TO_DUE_CAP:
                paid_to_due = PAID_TO_DUE_CAP
        else:
            paid_to_due = PAID_TO_DUE_CAP
        paid6 = state.paid_window[-6:]
        count6 = len(paid6)
        full_share = last6.count(ON_TIME) / count6
        if paid6.count(paid6[0]) == count6:
            # equal amounts (the usual regular payer): the formula below gives exactly 0.0
            cv = 0.0
        else:
            s1 = sum(paid6)
            # whole cents, so n * sum(x^2) - sum(x)^2 is exact and never negative
            spread = count6 * sum(map(mul, paid6, paid6)) - s1 * s1
            cv = math.sqrt(spread) / s1 if s1 > 0 else 0.0
    else:
        on_time_ratio = paid_to_due = full_share = cv = NAN

    if MISSED in outcomes:
        missed3 = outcomes[-3:].count(MISSED) + 0.0
        missed6 = last6.count(MISSED) + 0.0
        missed12 = outcomes.count(MISSED) + 0.0
    else:  # the usual case: one scan instead of three counts
        missed3 = missed6 = missed12 = 0.0
    worst = state.worst_dpd
    # int + 0.0 is exactly float(int), without a call per feature
    return (
        dpd + 0.0,
        (worst if worst > dpd else dpd) + 0.0,
        arrears,
        missed3,
        missed6,
        missed12,
        on_time_ratio,
        paid_to_due,
        balance,
        balance / state.funded_amnt,
        months + 0.0,
        full_share,
        cv,
        state.origination_logit,
    )
