"""The Markov chain on installments behind that the derived repayment histories run loans
through once they miss (docs/repayments.md, "Where the transition shares come from").

A loan in arrears does one of three things at each due date: pays everything owed (cure), pays
the installment due only (stays behind) or pays nothing or a token (rolls one installment
further behind). At :data:`UNPAID_BEFORE_CHARGE_OFF` installments behind it is charged off.
The steps from 2 and 3 behind are Prosper's published month-to-month rows; the step from 1
behind is solved from LendingClub's published loss rates by :mod:`training.repayment_calibration`
and travels in its :class:`~training.repayment_calibration.Calibration`. Pure: no data, no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from training.published_rolls import pooled

# Closed-end retail loans are charged off at 120 days past due (FFIEC Uniform Retail Credit
# Classification policy; LendingClub: "typically ... 120 days or more past due"): four unpaid
# installments.
UNPAID_BEFORE_CHARGE_OFF = 4


@dataclass(frozen=True)
class Transition:
    """What a loan ``behind`` installments in arrears does at its next due date (shares sum
    to 1): pays everything owed (cure), pays the installment due only (stays behind), or pays
    nothing or a token (rolls one installment further behind)."""

    cure: float
    stay: float
    roll: float


def published_step(bucket: str) -> Transition:
    """The pooled published row of ``bucket`` (training/published_rolls.py) as a step of the
    chain: got better -> cure, stayed the same -> stay, got worse -> roll."""
    row = pooled(bucket)
    return Transition(cure=row.share("better"), stay=row.share("same"), roll=row.share("worse"))


# A loan 2 behind at a due date sat 30-59 days past due at the month end before, 3 behind 60-89:
# those steps are Prosper's published rows for the buckets, and the roll from 3 is the charge-off.
PUBLISHED_STEPS: Mapping[int, Transition] = {2: published_step("30-59"), 3: published_step("60-89")}
# A bad loan that cured misses again with this probability at each later due date.
BAD_REDEFAULT_HAZARD = 0.35
# Good loans (real outcome: paid) miss an installment now and then (a failed direct debit, a
# changed bank account) and always cure: at each later due date they pay everything with
# GOOD_CURE, else the installment due only; they never roll past one installment behind.
GOOD_MISS_RATE = 0.003
GOOD_CURE = 0.85
GOOD_STEP = Transition(cure=GOOD_CURE, stay=1.0 - GOOD_CURE, roll=0.0)


def bad_transitions(first_step: Transition) -> dict[int, Transition]:
    """Bad loans' steps by installments behind: ``first_step`` from 1, the published rows after."""
    return {1: first_step, **PUBLISHED_STEPS}


# A loan in arrears at a due date: (installments behind, whether the installment just due is
# among the unpaid). "Open" is (1, True): days past due count from that installment, 0-29.
ArrearsState = tuple[int, bool]
OPEN: ArrearsState = (1, True)
CHARGED_OFF: ArrearsState = (UNPAID_BEFORE_CHARGE_OFF, True)


def arrears_paths(
    steps_by_behind: Mapping[int, Transition] | None, steps: int, start: ArrearsState = OPEN
) -> list[dict[ArrearsState, float]]:
    """Distribution of the arrears state at 0 .. ``steps`` due dates after ``start`` (by
    default a first missed installment): bad loans' chain with ``steps_by_behind``
    (:func:`bad_transitions`), good loans' with ``None``.

    ``(0, False)`` is current, :data:`CHARGED_OFF` absorbing; a cured bad loan misses again
    with :data:`BAD_REDEFAULT_HAZARD`, a cured good one with :data:`GOOD_MISS_RATE`.
    """
    again = GOOD_MISS_RATE if steps_by_behind is None else BAD_REDEFAULT_HAZARD
    dist: dict[ArrearsState, float] = {start: 1.0}
    out = [dist]
    for _ in range(steps):
        nxt: dict[ArrearsState, float] = defaultdict(float)
        for (behind, _open), p in dist.items():
            if behind >= UNPAID_BEFORE_CHARGE_OFF:
                nxt[CHARGED_OFF] += p
            elif behind == 0:
                nxt[OPEN] += p * again
                nxt[(0, False)] += p * (1.0 - again)
            else:
                step = GOOD_STEP if steps_by_behind is None else steps_by_behind[behind]
                nxt[(0, False)] += p * step.cure
                nxt[(behind, False)] += p * step.stay
                if step.roll:
                    nxt[(behind + 1, True)] += p * step.roll
        dist = dict(nxt)
        out.append(dist)
    return out


def charged_off_within(steps_by_behind: Mapping[int, Transition], due_dates: int) -> float:
    """The chance a bad loan open at a month end (its oldest unpaid installment 1-29 days past
    due) is charged off within ``due_dates`` further due dates."""
    return arrears_paths(steps_by_behind, due_dates)[due_dates].get(CHARGED_OFF, 0.0)
