"""Reporting labels for a loan's delinquency: the industry's buckets and LendingClub's statuses.

Delinquency buckets (:func:`dpd_bucket`) are the industry's reporting buckets: ``current`` (0
days past due), ``1-29``, ``30-59``, ``60-89`` and ``90+``. :func:`loan_status` maps the same
days to LendingClub's ``loan_status`` labels (grace period 1-15 days, late 16-30 and 31-120,
charged off beyond 120: LendingClub's "Default" status at 121-150 days ends in a charge-off and
is not a label of its own in the openintro data the repayment histories are calibrated on).
"""

from __future__ import annotations

from datetime import date

from flows.loan.state import CENT, LoanState, LoanStateError, days_past_due

LOAN_STATUSES: tuple[str, ...] = (
    "Current",
    "Fully Paid",
    "In Grace Period",
    "Late (16-30 days)",
    "Late (31-120 days)",
    "Charged Off",
)
GRACE_DAYS = 15
CHARGE_OFF_AFTER_DAYS = 120
# The first day past due of each bucket, in order; ``dpd_bucket`` names them.
BUCKET_STARTS: tuple[int, ...] = (0, 1, 30, 60, 90)


def dpd_bucket(days: int) -> str:
    """The delinquency bucket of ``days`` past due: current, 1-29, 30-59, 60-89 or 90+."""
    if days < 0:
        raise ValueError(f"days past due cannot be negative: {days}")
    if days == 0:
        return "current"
    if days < 30:
        return "1-29"
    if days < 60:
        return "30-59"
    if days < 90:
        return "60-89"
    return "90+"


def loan_status(state: LoanState, as_of: date) -> str:
    """LendingClub's ``loan_status`` label for the loan on ``as_of`` (see the module notes)."""
    if not state.is_open:
        raise LoanStateError(f"loan {state.loan_id} has no application yet")
    if state.outstanding_balance <= CENT:
        return "Fully Paid"
    days = days_past_due(state, as_of)
    if days == 0:
        return "Current"
    if days <= GRACE_DAYS:
        return "In Grace Period"
    if days <= 30:
        return "Late (16-30 days)"
    if days <= CHARGE_OFF_AFTER_DAYS:
        return "Late (31-120 days)"
    return "Charged Off"


DPD_BUCKETS: tuple[str, ...] = tuple(dpd_bucket(d) for d in BUCKET_STARTS)
