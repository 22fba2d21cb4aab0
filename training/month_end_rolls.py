"""Month-end delinquency of repayment histories, measured the way the published figures were
(training/published_rolls.py): each loan's bucket at a month end against its bucket at the
next, counted as better, same or worse (Prosper's rows), and each loan's LendingClub status at a
month end against whether it is charged off a horizon later (LendingClub's loss rates).

Positions come from :func:`flows.loan.state.days_past_due` on the events dated by each month
end, the computation the ``loan_month_end`` view is tested against.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, timedelta
from itertools import pairwise

from flows.events import LoanApplication, LoanRepayment
from flows.loan.labels import DPD_BUCKETS, dpd_bucket, loan_status
from flows.loan.schedule import add_months
from flows.loan.state import CENT, LoanState, apply_repayment, days_past_due, open_loan

MOVES = ("better", "same", "worse")
LATE_STATUSES = ("In Grace Period", "Late (16-30 days)", "Late (31-120 days)")
CHARGED_OFF = "Charged Off"
# a history that stops this many installments behind was charged off (the derived histories stop
# at the fourth unpaid installment): its later month ends still count
_STOPPED_BEHIND = 3


def _month_end(day: date) -> date:
    return add_months(day.replace(day=1), 1) - timedelta(days=1)


def _charged_off(state: LoanState, events: list[LoanRepayment]) -> bool:
    """Whether the history stopped with its last :data:`_STOPPED_BEHIND` installments unpaid:
    counted from the due dates, not in days, so a February in between does not hide it."""
    dues = {e.installment_number: e.due_date for e in events}
    last = max(dues)
    first_unpaid = dues.get(last - _STOPPED_BEHIND)
    if first_unpaid is None:
        return False
    return days_past_due(state, dues[last]) >= (dues[last] - first_unpaid).days


def month_end_buckets(app: LoanApplication, events: list[LoanRepayment]) -> list[str]:
    """The loan's bucket at every month end its history covers, in order.

    A history covers month ends up to its last installment's due date (beyond it the schedule
    runs on but the derived history says nothing), and one more when it stopped three
    installments past due (the charge-off), so the last roll is seen.
    """
    if not events:
        return []
    ordered = sorted(events, key=lambda e: (e.event_time, e.installment_number))
    last_due = max(e.due_date for e in events)
    state = open_loan(app, 0.05)
    for event in ordered:
        state = apply_repayment(state, event)
    end = last_due
    if _charged_off(state, events):
        end = _month_end(last_due)
    buckets = []
    state = open_loan(app, 0.05)
    i = 0
    month_end = _month_end(app.event_time.date())
    while month_end <= end:
        while i < len(ordered) and ordered[i].event_time.date() <= month_end:
            state = apply_repayment(state, ordered[i])
            i += 1
        buckets.append(dpd_bucket(days_past_due(state, month_end)))
        month_end = _month_end(month_end + timedelta(days=1))
    return buckets


def realised_moves(
    loans: Iterable[tuple[LoanApplication, list[LoanRepayment]]],
) -> dict[str, Counter[str]]:
    """``{bucket: Counter(better=, same=, worse=)}`` over consecutive month ends of every loan."""
    rank = {bucket: i for i, bucket in enumerate(DPD_BUCKETS)}
    moves: dict[str, Counter[str]] = {bucket: Counter() for bucket in DPD_BUCKETS}
    for app, events in loans:
        buckets = month_end_buckets(app, events)
        for before, after in pairwise(buckets):
            step = rank[after] - rank[before]
            moves[before]["better" if step < 0 else "same" if step == 0 else "worse"] += 1
    return moves


def month_end_statuses(app: LoanApplication, events: list[LoanRepayment], count: int) -> list[str]:
    """The loan's LendingClub status at its first ``count`` month ends (the first is the end of
    its origination month).

    A history that ended (paid off, or stopped three installments past due: the charge-off)
    covers every later month end; one cut at its length covers month ends up to its last
    installment's due date, and asking for more is a ``ValueError``.
    """
    ordered = sorted(events, key=lambda e: (e.event_time, e.installment_number))
    state = open_loan(app, 0.05)
    for event in ordered:
        state = apply_repayment(state, event)
    month_ends = [_month_end(app.event_time.date())]
    while len(month_ends) < count:
        month_ends.append(_month_end(month_ends[-1] + timedelta(days=1)))
    if ordered:
        last_due = max(e.due_date for e in events)
        ended = state.outstanding_balance <= CENT or _charged_off(state, events)
    if not ordered or (not ended and month_ends[-1] > last_due):
        raise ValueError(f"the history of {app.loan_id} does not cover {count} month ends")
    statuses = []
    state = open_loan(app, 0.05)
    i = 0
    for month_end in month_ends:
        while i < len(ordered) and ordered[i].event_time.date() <= month_end:
            state = apply_repayment(state, ordered[i])
            i += 1
        statuses.append(loan_status(state, month_end))
    return statuses


def realised_loss_rates(
    loans: Iterable[tuple[LoanApplication, list[LoanRepayment]]],
    horizon_months: int,
    observed_months: int,
) -> dict[str, tuple[int, int]]:
    """``{late status: (loan-month ends in it, charged off horizon_months month ends later)}``
    over each loan's first ``observed_months`` month ends: LendingClub's loss rate by status,
    counted in loans rather than principal. The same month ends for every loan, so a loan
    whose history ended early is not counted at ages the others are not."""
    seen: Counter[str] = Counter()
    charged_off: Counter[str] = Counter()
    for app, events in loans:
        statuses = month_end_statuses(app, events, observed_months + horizon_months)
        for before, after in zip(statuses, statuses[horizon_months:], strict=False):
            if before in LATE_STATUSES:
                seen[before] += 1
                charged_off[before] += after == CHARGED_OFF
    return {status: (seen[status], charged_off[status]) for status in LATE_STATUSES}
