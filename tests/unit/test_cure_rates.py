"""The three rates outside the bad loans' chain (training/arrears_chain.py CURE_RATES): each
from a published figure (training/published_rolls.py), solved in closed form with openintro's
status shares held (training/cure_calibration.py), and the closed forms' reading of arrears
checked against the waterfall the state machine runs (flows/loan/state.py)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.events import LoanApplication, LoanRepayment
from flows.loan.labels import dpd_bucket
from flows.loan.schedule import amortization_schedule, due_date
from flows.loan.state import apply_repayment, days_past_due, open_loan
from training.arrears_chain import CURE_RATES, UNPAID_BEFORE_CHARGE_OFF, CureRates
from training.calibration_check import calibration_plan
from training.cure_calibration import PUBLISHED, cure_figures, solve_cure_rates
from training.dataset import LendingClub
from training.published_rolls import pooled
from training.repayment_calibration import arrears_bucket
from training.replay import application_events

# the values set by hand before they were solved from the published figures
HAND_SET = CureRates(good_miss=0.003, good_cure=0.85, bad_redefault=0.35)


def _bad_share(data: LendingClub) -> float:
    return float(data.labels.mean())


def test_good_loans_cure_as_prosper_1_29_loans_that_did_not_get_worse() -> None:
    row = pooled("1-29")
    assert CURE_RATES.good_cure == row.better / (row.better + row.same)
    assert CURE_RATES.good_cure == pytest.approx(250 / 392)
    assert CURE_RATES.good_step.roll == 0.0


def test_miss_and_redefault_rates_are_solved_from_the_published_figures(
    lending_club: LendingClub,
) -> None:
    """Solved again from a start far from the answer, the rates are the ones the generator
    draws with, and at those the closed forms give LendingClub's grace-period loss rate and
    the re-aged accounts' re-default rate."""
    start = dataclasses.replace(CURE_RATES, good_miss=0.001, bad_redefault=0.6)
    solution = solve_cure_rates(_bad_share(lending_club), start)
    assert max(abs(r) for r in solution.residuals) < 1e-6
    assert CURE_RATES.good_miss == pytest.approx(solution.rates.good_miss, rel=1e-3)
    assert CURE_RATES.bad_redefault == pytest.approx(solution.rates.bad_redefault, rel=1e-3)
    figures = cure_figures(_bad_share(lending_club), CURE_RATES)
    assert figures.grace_loss == pytest.approx(PUBLISHED.grace_loss, abs=5e-4)
    assert figures.redefault == pytest.approx(PUBLISHED.redefault, abs=5e-4)


def test_lendingclubs_grace_recovery_rate_picks_the_root(lending_club: LendingClub) -> None:
    """The two figures have a second root with cured bad loans missing again at about 7 %;
    LendingClub's 83 % of In Grace Period loans brought current within six months, not solved
    for, comes out nearer at the rates the generator uses, within half a point."""
    bad_share = _bad_share(lending_club)
    low = dataclasses.replace(CURE_RATES, good_miss=0.0012, bad_redefault=0.05)
    other = solve_cure_rates(bad_share, low)
    assert max(abs(r) for r in other.residuals) < 1e-6
    assert other.rates.bad_redefault < 0.5 * CURE_RATES.bad_redefault
    ours = cure_figures(bad_share, CURE_RATES)
    target = PUBLISHED.grace_recovery
    assert abs(ours.grace_recovery - target) < abs(other.figures.grace_recovery - target)
    assert ours.grace_recovery == pytest.approx(target, abs=5e-3)


def test_the_hand_set_rates_leave_openintros_shares_out_of_reach(lending_club: LendingClub) -> None:
    """Read as the waterfall reads arrears, good loans missing 0.3 % of installments and
    staying behind 15 % of the time fill openintro's Late (16-30 days) share on their own."""
    with pytest.raises(ValueError, match="cannot be met"):
        cure_figures(_bad_share(lending_club), HAND_SET)


_APPLICATION = msgspec.json.Decoder(LoanApplication)


@pytest.fixture(scope="module")
def application(lending_club: LendingClub) -> LoanApplication:
    return _APPLICATION.decode(
        next(iter(application_events(lending_club, calibration_plan(lending_club, seed=3))))
    )


STEP = st.sampled_from(["pay", "cure", "stay", "roll"])


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(STEP, min_size=1, max_size=14),
    u=st.integers(min_value=3, max_value=27),
)
def test_the_closed_forms_read_arrears_as_the_waterfall_does(
    application: LoanApplication, steps: list[str], u: int
) -> None:
    """Any path of the chain's moves (a miss is a roll from current), replayed through the
    state machine: ``u`` days into the last installment's cycle the loan is in the bucket the
    closed forms give its installments behind. A loan one behind that paid the installment
    just due is 1-29 days past due, not 31+."""
    app = application
    schedule = amortization_schedule(app.funded_amnt, app.int_rate, app.term_months)
    origination = app.event_time.date()
    behind = 0
    state = open_loan(app, 0.05)
    events = []
    for n, step in enumerate(steps, start=1):
        due = due_date(origination, n)
        amount = schedule[n - 1][1]
        if step == "roll" or (step == "cure" and not behind):
            paid, behind = 0.0, behind + 1
        elif step == "cure":
            paid, behind = round(amount * (behind + 1), 2), 0
        else:  # pay, or stay: the installment due
            paid = amount
        events.append(
            LoanRepayment(
                schema_version=1,
                event_type="loan_repayment",
                event_id=f"rep-{app.loan_id}-{n}",
                loan_id=app.loan_id,
                event_time=app.event_time + timedelta(days=(due - origination).days),
                installment_number=n,
                due_date=due,
                amount_due=amount,
                amount_paid=paid,
                payment_date=due if paid else None,
                outstanding_balance=app.funded_amnt,
            )
        )
        if behind >= UNPAID_BEFORE_CHARGE_OFF:
            break
    snapshot = events[-1].due_date + timedelta(days=u)
    for event in events:
        state = apply_repayment(state, event)
    bucket = dpd_bucket(days_past_due(state, snapshot))
    assert bucket == (arrears_bucket(behind) if behind else "current")
