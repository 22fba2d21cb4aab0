"""The Markov chain on installments behind that the derived repayment histories run loans
through once they miss (docs/repayments.md, "Where the transition shares come from").

A loan in arrears does one of three things at each due date: pays everything owed (cure), pays
the installment due only (stays behind) or pays nothing or a token (rolls one installment
further behind). At :data:`UNPAID_BEFORE_CHARGE_OFF` installments behind it is charged off.
The steps from 2 and 3 behind are Prosper's published month-to-month rows; the step from 1
behind is solved from LendingClub's published loss rates by :mod:`training.repayment_calibration`
and travels in its :class:`~training.repayment_calibration.Calibration`. Good loans' misses and
cures and cured bad loans' re-defaults (:data:`CURE_RATES`) come from published figures too
(:mod:`training.cure_calibration`). Pure: no data, no I/O.
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


@dataclass(frozen=True)
class CureRates:
    """The three rates outside the bad loans' chain (solved in :mod:`training.cure_calibration`
    from LendingClub's published loss rates and re-aged accounts' re-default rate).

    ``good_miss``: a good loan (real outcome: paid) misses an installment (a failed direct
    debit, a changed bank account); ``good_cure``: at each later due date it then pays
    everything owed, else the installment due only (good loans never roll past one installment
    behind); ``bad_redefault``: a bad loan that cured misses again, at each later due date.
    """

    good_miss: float
    good_cure: float
    bad_redefault: float

    @property
    def good_step(self) -> Transition:
        """Good loans' step from one installment behind: cure, or stay; never roll."""
        return Transition(cure=self.good_cure, stay=1.0 - self.good_cure, roll=0.0)


# Good loans never get worse (their real outcome is paid): their step from one behind is
# Prosper's pooled 1-29 row given that the loan did not get worse, better : same (the split the
# bad loans' first step keeps too). The miss and re-default rates are solved from published
# figures by training.cure_calibration.solve_cure_rates (closed forms at openintro's shares);
# tests/unit/test_cure_rates.py solves again and requires these values.
_NOT_WORSE = pooled("1-29")
CURE_RATES = CureRates(
    good_miss=0.002207,
    good_cure=_NOT_WORSE.better / (_NOT_WORSE.better + _NOT_WORSE.same),
    bad_redefault=0.2326,
)
GOOD_MISS_RATE = CURE_RATES.good_miss
GOOD_CURE = CURE_RATES.good_cure
BAD_REDEFAULT_HAZARD = CURE_RATES.bad_redefault
GOOD_STEP = CURE_RATES.good_step


def bad_transitions(first_step: Transition) -> dict[int, Transition]:
    """Bad loans' steps by installments behind: ``first_step`` from 1, the published rows after."""
    return {1: first_step, **PUBLISHED_STEPS}


# A loan in arrears at a due date: (installments behind, whether the installment just due is
# among the unpaid). "Open" is (1, True): days past due count from that installment, 0-29.
ArrearsState = tuple[int, bool]
OPEN: ArrearsState = (1, True)
CHARGED_OFF: ArrearsState = (UNPAID_BEFORE_CHARGE_OFF, True)


def arrears_paths(
    steps_by_behind: Mapping[int, Transition] | None,
    steps: int,
    start: ArrearsState = OPEN,
    rates: CureRates = CURE_RATES,
) -> list[dict[ArrearsState, float]]:
    """Distribution of the arrears state at 0 .. ``steps`` due dates after ``start`` (by
    default a first missed installment): bad loans' chain with ``steps_by_behind``
    (:func:`bad_transitions`), good loans' with ``None``.

    ``(0, False)`` is current, :data:`CHARGED_OFF` absorbing; a cured bad loan misses again
    with ``rates.bad_redefault``, a cured good one with ``rates.good_miss``; good loans behind
    step with ``rates.good_step``.
    """
    again = rates.good_miss if steps_by_behind is None else rates.bad_redefault
    good_step = rates.good_step
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
                step = good_step if steps_by_behind is None else steps_by_behind[behind]
                nxt[(0, False)] += p * step.cure
                nxt[(behind, False)] += p * step.stay
                if step.roll:
                    nxt[(behind + 1, True)] += p * step.roll
        dist = dict(nxt)
        out.append(dist)
    return out


def charged_off_within(
    steps_by_behind: Mapping[int, Transition],
    due_dates: int,
    start: ArrearsState = OPEN,
    rates: CureRates = CURE_RATES,
) -> float:
    """The chance a bad loan in ``start`` at a month end (by default open: its oldest unpaid
    installment 1-29 days past due) is charged off within ``due_dates`` further due dates."""
    paths = arrears_paths(steps_by_behind, due_dates, start, rates)
    return paths[due_dates].get(CHARGED_OFF, 0.0)
