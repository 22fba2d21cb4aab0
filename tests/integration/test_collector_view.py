"""The live PD from a collections team's point of view (issue 14), on the exported ONNX graph
with real loans and their real origination PDs: a cured miss comes back down, a loan that stays
behind is always riskier than its cured twin, more arrears never lower the PD."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flows.events import LoanApplication, LoanRepayment
from flows.loan.behaviour import BEHAVIOUR_FEATURE_NAMES, behaviour_features
from flows.loan.schedule import amortization_schedule
from flows.loan.state import apply_repayment, open_loan
from flows.model import ScoringModel, load_live_model
from tests.integration.test_behaviour import repayment
from training.behaviour import FEATURE_SIGNS, BehaviourResult, applications, origination_pds
from training.dataset import LendingClub

LOANS = 400


def _paid(app: LoanApplication, n: int, amount: float, balance: float) -> LoanRepayment:
    return repayment(app, n, amount, balance=balance)


def cured_history(app: LoanApplication) -> list[LoanRepayment]:
    """The issue's table: installment 1 paid, 2 missed, 3 pays both, 4-8 on time."""
    rows = amortization_schedule(app.funded_amnt, app.int_rate, app.term_months)
    events = [_paid(app, 1, rows[0][1], rows[0][4]), repayment(app, 2, 0.0, balance=rows[0][4])]
    events.append(_paid(app, 3, round(rows[1][1] + rows[2][1], 2), rows[2][4]))
    events += [_paid(app, n, rows[n - 1][1], rows[n - 1][4]) for n in range(4, 9)]
    return events


def behind_history(app: LoanApplication) -> list[LoanRepayment]:
    """Its twin: the same miss, then one installment a month, so always one behind."""
    rows = amortization_schedule(app.funded_amnt, app.int_rate, app.term_months)
    events = [_paid(app, 1, rows[0][1], rows[0][4]), repayment(app, 2, 0.0, balance=rows[0][4])]
    events += [_paid(app, n, rows[n - 1][1], rows[n - 2][4]) for n in range(3, 9)]
    return events


def scored_path(
    live: ScoringModel, app: LoanApplication, pd: float, events: list[LoanRepayment]
) -> dict[int, float]:
    """Live PD after each event, by installment number, in the stream's order."""
    state = open_loan(app, pd)
    numbers, rows = [], []
    for event in sorted(events, key=lambda e: (e.event_time, e.installment_number)):
        state = apply_repayment(state, event)
        numbers.append(event.installment_number)
        rows.append(behaviour_features(state, event.event_time.date()))
    return dict(zip(numbers, live.predict_pd(np.array(rows)), strict=True))


@pytest.fixture(scope="module")
def live(behaviour_model_home: Path) -> ScoringModel:
    model = load_live_model(behaviour_model_home / "models")
    assert model is not None
    return model


@pytest.fixture(scope="module")
def twins(
    live: ScoringModel, lending_club: LendingClub, model: ScoringModel
) -> list[tuple[dict[int, float], dict[int, float]]]:
    apps = applications(lending_club, 42)[:LOANS]
    pds = origination_pds(model, apps)
    return [
        (scored_path(live, a, float(p), cured_history(a)),
         scored_path(live, a, float(p), behind_history(a)))
        for a, p in zip(apps, pds, strict=True)
    ]  # fmt: skip


def test_a_cured_loan_is_back_within_twice_its_pre_miss_pd_in_three_installments(
    twins: list,
) -> None:
    for cured, _ in twins:
        assert cured[6] <= 2.0 * cured[1], cured


def test_a_cured_loan_is_below_its_still_behind_twin_at_every_step(twins: list) -> None:
    for cured, behind in twins:
        for n in range(3, 9):
            assert cured[n] < behind[n], (n, cured, behind)


def test_each_on_time_payment_after_the_cure_lowers_the_pd(twins: list) -> None:
    for cured, _ in twins:
        assert all(cured[n + 1] < cured[n] for n in range(3, 8)), cured


def test_no_loan_sits_near_certain_default_after_one_cured_miss(twins: list) -> None:
    after_cure = np.array([[cured[n] for n in range(3, 9)] for cured, _ in twins])
    assert (after_cure >= 0.99).mean() == 0.0
    # nor at the miss itself: one missed installment is not a default
    assert max(cured[2] for cured, _ in twins) < 0.99


ARREARS = ("days_past_due", "worst_days_past_due", "installments_in_arrears",
           "missed_last_3", "missed_last_6", "missed_last_12")  # fmt: skip


@pytest.mark.parametrize("feature", ARREARS)
def test_more_arrears_never_lower_the_pd(
    feature: str, live: ScoringModel, behaviour_result: BehaviourResult
) -> None:
    """A grid of values of one arrears feature, all else held at 200 real test rows."""
    j = BEHAVIOUR_FEATURE_NAMES.index(feature)
    base = behaviour_result.x_test[:: max(1, len(behaviour_result.x_test) // 200)][:200]
    top = {"days_past_due": 120, "worst_days_past_due": 120, "installments_in_arrears": 4}
    grid = np.linspace(0.0, top.get(feature, 12 if feature.endswith("12") else 6), 13)
    pds = []
    for value in grid:
        rows = base.copy()
        rows[:, j] = value
        pds.append(live.predict_pd(rows))
    steps = np.diff(np.array(pds), axis=0)
    assert (steps >= 0.0).all()
    # and the model uses it: the PD rises somewhere along the grid
    if FEATURE_SIGNS[feature] == 1 and live.card["reasons"]["coef"][j] > 0:
        assert (steps > 0).any()


def test_every_coefficient_has_the_sign_risk_requires(live: ScoringModel) -> None:
    coef = dict(zip(BEHAVIOUR_FEATURE_NAMES, live.card["reasons"]["coef"], strict=True))
    for name, sign in FEATURE_SIGNS.items():
        if sign is not None:
            assert coef[name] * sign >= 0.0, name
            if sign == 0:
                assert coef[name] == 0.0, name
    # arrears and recent misses carry the delinquency (days past due move with arrears)
    assert coef["installments_in_arrears"] > 0 and coef["missed_last_3"] > 0
