"""The derived repayment histories measured the way openintro's loans were observed.

The closed forms of :mod:`training.repayment_calibration` leave out month lengths and a few
second-order paths, so :func:`measure_calibration` checks the result on the histories
themselves: it issues every real loan once, spread evenly over January-March 2018 like
openintro's loans, replays its derived events up to :data:`SNAPSHOT_DATE` through
:mod:`flows.loan.state` and counts each loan's :func:`~flows.loan.labels.loan_status`. The test
requires each share within three standard errors of the difference of two independent shares
(9,857 derived loans against 10,000 observed ones). Measured with seed 7: docs/repayments.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from flows.events import LoanApplication, LoanRepayment
from flows.loan.labels import LOAN_STATUSES, loan_status
from flows.loan.state import apply_repayment, open_loan
from training.dataset import LendingClub
from training.repayment_calibration import (
    OPENINTRO_MONTHS_ON_BOOK,
    OPENINTRO_STATUS_COUNTS,
    SNAPSHOT_DATE,
    Calibration,
    calibration_for,
)
from training.repayments import bad_rows, repayment_history, row_number
from training.replay import ReplayPlan, application_events

ISSUE_START = datetime(2018, 1, 1, tzinfo=UTC)
ISSUE_END = datetime(2018, 4, 1, tzinfo=UTC)
_APPLICATION = msgspec.json.Decoder(LoanApplication)


@dataclass(frozen=True)
class CalibrationCheck:
    """Derived loan-status shares at the snapshot against openintro's."""

    calibration: Calibration
    loans: int
    counts: dict[str, int]
    shares: dict[str, float]
    targets: dict[str, float]
    tolerances: dict[str, float]

    def misses(self) -> dict[str, tuple[float, float, float]]:
        """``{status: (derived, target, tolerance)}`` for shares outside their tolerance."""
        return {
            s: (self.shares[s], self.targets[s], self.tolerances[s])
            for s in LOAN_STATUSES
            if abs(self.shares[s] - self.targets[s]) > self.tolerances[s]
        }


def calibration_plan(data: LendingClub, seed: int) -> ReplayPlan:
    """Every real loan once, issued evenly over January-March 2018 like openintro's loans."""
    return ReplayPlan(
        max_events=len(data),
        seed=seed,
        start=ISSUE_START,
        spacing=(ISSUE_END - ISSUE_START) / len(data),
    )


def measure_calibration(data: LendingClub, seed: int = 7) -> CalibrationCheck:
    """Replay every loan's derived history up to :data:`SNAPSHOT_DATE` and count its status."""
    cal = calibration_for(data)
    bad = bad_rows(data)
    # origination PD does not enter the status; the portfolio's default rate stands in for it
    prior = len(bad) / len(data)
    counts = dict.fromkeys(LOAN_STATUSES, 0)
    months = max(OPENINTRO_MONTHS_ON_BOOK) + 1
    for raw in application_events(data, calibration_plan(data, seed)):
        app = _APPLICATION.decode(raw)
        history = repayment_history(
            app, row_number(app.loan_id) in bad, cal, seed=seed, months=months
        )
        state = open_loan(app, prior)
        events = [msgspec.convert(r, LoanRepayment) for r in history]
        for event in sorted(events, key=lambda e: e.event_time):
            if event.event_time.date() <= SNAPSHOT_DATE:
                state = apply_repayment(state, event)
        counts[loan_status(state, SNAPSHOT_DATE)] += 1
    n = len(data)
    observed = sum(OPENINTRO_STATUS_COUNTS.values())
    shares = {s: counts[s] / n for s in LOAN_STATUSES}
    targets = {s: OPENINTRO_STATUS_COUNTS[s] / observed for s in LOAN_STATUSES}
    tolerances = {}
    for s in LOAN_STATUSES:
        # three standard errors of the difference of two independent shares, at the target
        p = targets[s]
        tolerances[s] = 3.0 * math.sqrt(p * (1.0 - p) * (1.0 / n + 1.0 / observed))
    return CalibrationCheck(cal, n, counts, shares, targets, tolerances)
