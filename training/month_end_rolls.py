"""Month-end to month-end delinquency moves of repayment histories, measured the way the
published roll rates were (training/published_rolls.py): each loan's bucket at a month end
against its bucket at the next, counted as better, same or worse.

Positions come from :func:`flows.loan.state.days_past_due` on the events dated by each month
end, the computation the ``loan_month_end`` view is tested against.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, timedelta
from itertools import pairwise

from flows.events import LoanApplication, LoanRepayment
from flows.loan.labels import DPD_BUCKETS, dpd_bucket
from flows.loan.schedule import add_months
from flows.loan.state import apply_repayment, days_past_due, open_loan

MOVES = ("better", "same", "worse")
# a loan whose history stops this far behind was charged off: its next month end still counts
_STOPPED_BEHIND_DAYS = 90


def _month_end(day: date) -> date:
    return add_months(day.replace(day=1), 1) - timedelta(days=1)


def month_end_buckets(app: LoanApplication, events: list[LoanRepayment]) -> list[str]:
    """The loan's bucket at every month end its history covers, in order.

    A history covers month ends up to its last installment's due date (beyond it the schedule
    runs on but the derived history says nothing), and one more when it stopped at 90 days past
    due or more (the charge-off), so the last roll is seen.
    """
    if not events:
        return []
    ordered = sorted(events, key=lambda e: (e.event_time, e.installment_number))
    last_due = max(e.due_date for e in events)
    state = open_loan(app, 0.05)
    for event in ordered:
        state = apply_repayment(state, event)
    end = last_due
    if days_past_due(state, last_due) >= _STOPPED_BEHIND_DAYS:
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
