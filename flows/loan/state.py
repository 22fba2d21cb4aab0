"""The per-loan repayment state machine: applications open loans, repayments move them.

A loan's PD at origination is only the start: every installment paid late, short, missed or in
full moves it. :func:`open_loan` starts the state from the application and
:func:`apply_repayment` folds in one :class:`~flows.events.LoanRepayment`; the behavioural
features (:mod:`flows.loan.behaviour`) and reporting labels (:mod:`flows.loan.labels`) read it.
Everything here is pure (no I/O, no clock) and runs once per repayment on the hot path, so the
state is small and its update does a bounded amount of work.

Contract and conventions
    * Installments fall due on the loan's calendar (:mod:`flows.loan.schedule`); every
      installment is ``installment``, the amortized payment rounded to cents.
    * Payments are applied to the oldest unpaid installment first (the servicing waterfall), so
      days past due count from the due date of the oldest installment that cumulative payments
      do not cover yet (:func:`dpd_on_day`, the one place that formula is written). A short
      payment followed by a catch-up is therefore cured, and paying one installment a month
      while one behind keeps the loan in arrears.
    * Money is counted in whole cents, so totals are exact and the same in any arrival order.

Arrival order is not contract order. A repayment for a loan whose application has not arrived
yet is held as pending on a placeholder state and applied when the application opens the loan.
Installments may arrive in any order (they are keyed by ``installment_number``) and give the
in-order state: the worst days past due are read at each event with the payments of the
installments up to it, and read again for the later ones when an out-of-order event fills a
gap (until then, events above the gap wait for their reading). A repeated
``event_id`` is a no-op; a second event for an installment already recorded (a correction, or a
missed installment later paid) replaces the first while that installment is within the last
:data:`HISTORY_WINDOW`, and the worst days past due keep what happened before the correction.
An event for an installment older than the window that was already recorded is dropped and
counted in ``stale_events``: per-installment detail is kept only for the window, which bounds the
state's size and its snapshot cost.
"""

from __future__ import annotations

import math
from datetime import date, datetime

import msgspec

from flows.events import LoanApplication, LoanRepayment
from flows.features import monthly_installment
from flows.loan.schedule import due_date, due_days

NAN = float("nan")
HISTORY_WINDOW = 12
# Balances below half a cent are zero.
CENT = 0.005
_PD_CLIP = 1e-6

# Installment outcome codes kept in the compact history; one character each so the window's
# outcomes are also a short string whose slices count in C (see LoanState.outcomes).
ON_TIME = "P"  # paid in full on or before the due date
LATE = "L"  # paid in full after the due date
PARTIAL = "S"  # short: paid something, less than due
MISSED = "M"  # nothing paid



# One recorded installment: (installment_number, event_id, amount due in cents, amount paid in
# cents, outcome, event date as an ordinal). Money is counted in whole cents so that totals are
# exact and do not depend on the order events arrive in.
Installment = tuple[int, str, int, int, str, int]


class LoanStateError(ValueError):
    """A state operation that cannot be meaningful (wrong loan, loan not opened)."""


class LoanState(msgspec.Struct, frozen=True, gc=False):
    """Everything the behavioural features need about one loan, and nothing more.

    Immutable: every function here returns a new state. A frozen Struct because one is built per
    repayment: ~0.12 µs against ~0.22 µs for a slots dataclass of this width and ~2 µs for a
    frozen one (one ``object.__setattr__`` per field). ``gc=False`` keeps states out of the
    cyclic garbage collector: they hold only scalars, tuples and events, never anything that
    refers back to a state, so they cannot be part of a cycle, and a collector tracking every
    state kept by the book and its observations spent ~2 µs a repayment in full collections.

    Fields from ``balance_installment`` on start empty: a new loan (or placeholder) has no
    history yet.

    A placeholder (``origination_date is None``) exists only to hold repayments that arrived
    before their application; it carries no contract terms yet.
    """

    loan_id: str
    funded_amnt: float
    term_months: int
    installment: float
    origination_pd: float
    # the logit feature, computed once at origination rather than per repayment
    origination_logit: float
    origination_time: datetime | None
    origination_date: date | None
    outstanding_balance: float
    # installment number the balance was read from: out-of-order events must not regress it
    balance_installment: int = 0
    # the last HISTORY_WINDOW recorded installments, ascending by number
    recent: tuple[Installment, ...] = ()
    # the outcome codes of ``recent``, in the same order ("PPLPSPMM")
    outcomes: str = ""
    # bit n set once installment n is recorded: exact idempotence for every installment
    recorded_mask: int = 0
    installments_recorded: int = 0
    installments_on_time: int = 0
    total_due_cents: int = 0
    total_paid_cents: int = 0
    worst_dpd: int = 0
    stale_events: int = 0
    pending: tuple[LoanRepayment, ...] = ()
    # Derived from the contract terms once at open, so a repayment neither rounds the
    # installment nor does calendar arithmetic: the installment in cents (the waterfall's
    # divisor) and, at index n, the day number (``date.toordinal``) installment n falls due on,
    # index 0 being the origination date. Placeholders hold 0 and ().
    installment_cents: int = 0
    due_days: tuple[int, ...] = ()
    # the amounts paid (cents) of ``recent``, in the same order: the payment-regularity
    # features read their window here without unpacking the installments
    paid_window: tuple[int, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.origination_date is not None


def pd_logit(pd: float) -> float:
    """``ln(pd / (1 - pd))`` with ``pd`` clipped to ``[1e-6, 1 - 1e-6]`` (finite for 0 and 1)."""
    pd = min(max(pd, _PD_CLIP), 1.0 - _PD_CLIP)
    return math.log(pd / (1.0 - pd))


def _placeholder(loan_id: str, pending: tuple[LoanRepayment, ...]) -> LoanState:
    return LoanState(
        loan_id=loan_id,
        funded_amnt=0.0,
        term_months=0,
        installment=0.0,
        origination_pd=NAN,
        origination_logit=NAN,
        origination_time=None,
        origination_date=None,
        outstanding_balance=0.0,
        pending=pending,
    )


def _cents(amount: float) -> int:
    return round(amount * 100.0)


def dpd_on_day(state: LoanState, day: int, paid_cents: int, balance: float) -> int:
    """Days past due on day number ``day``: counted from the due date of the oldest installment
    that ``paid_cents`` do not cover (the waterfall), 0 once all are covered or ``balance`` is
    paid. The one place this formula is written; it runs twice per repayment, so the common
    case (0 <= covered < term) comes first. A placeholder holds a zero balance: 0.
    """
    if balance <= CENT:
        return 0
    covered = paid_cents // state.installment_cents
    if 0 <= covered < state.term_months:
        days = day - state.due_days[covered + 1]
    elif covered >= state.term_months:
        return 0
    else:
        # covered < 0 only with negative payments, which validation rejects: answered exactly
        origination = state.origination_date
        if origination is None:
            return 0
        days = day - due_date(origination, covered + 1).toordinal()
    return days if days > 0 else 0


def open_loan(
    app: LoanApplication, origination_pd: float, state: LoanState | None = None
) -> LoanState:
    """The state of a newly originated loan, with any repayments that arrived before it.

    ``state`` is what the key held before the application: ``None`` or a placeholder with
    pending repayments. An application for a loan already open (a replayed event) returns the
    open state unchanged.
    """
    if state is not None:
        if state.loan_id != app.loan_id:
            raise LoanStateError(f"state of {state.loan_id} given for loan {app.loan_id}")
        if state.is_open:
            return state
    amount = app.funded_amnt
    if app.int_rate is None:  # the scoring step dead-letters these before they get here
        raise LoanStateError(f"loan {app.loan_id} has no int_rate to schedule installments")
    # a cent at least: the waterfall divides by it
    installment = max(round(monthly_installment(amount, app.int_rate, app.term_months), 2), 0.01)
    origination = app.event_time.date()
    opened = LoanState(
        loan_id=app.loan_id,
        funded_amnt=amount,
        term_months=app.term_months,
        installment=installment,
        origination_pd=origination_pd,
        origination_logit=pd_logit(origination_pd),
        origination_time=app.event_time,
        origination_date=origination,
        outstanding_balance=amount,
        installment_cents=_cents(installment),
        due_days=due_days(origination, app.term_months),
    )
    if state is not None:
        # contract order, so the worst-days-past-due readings match an in-order stream
        for event in sorted(state.pending, key=lambda e: e.installment_number):
            opened = apply_repayment(opened, event)
    return opened


def apply_repayment(state: LoanState | None, event: LoanRepayment) -> LoanState:
    """``state`` with one repayment folded in (a new state; ``state`` itself is unchanged).

    ``None`` or a placeholder: the event is held as pending until :func:`open_loan`. A repeated
    ``event_id`` returns ``state`` itself.
    """
    if state is None:
        return _placeholder(event.loan_id, (event,))
    if state.loan_id != event.loan_id:
        raise LoanStateError(f"repayment for {event.loan_id} applied to loan {state.loan_id}")
    event_id = event.event_id
    if state.origination_date is None:
        if any(p.event_id == event_id for p in state.pending):
            return state
        return _placeholder(state.loan_id, (*state.pending, event))

    n = event.installment_number
    recent = state.recent
    size = len(recent)
    bit = 1 << n
    mask = state.recorded_mask
    replaced: Installment | None = None
    position = size
    if mask & bit:
        for i, rec in enumerate(recent):
            if rec[0] == n:
                if rec[1] == event_id:
                    return state
                replaced, position = rec, i
                break
        else:
            # recorded long ago, left the window: a duplicate or a correction we cannot undo
            return _with_stale(state)
    else:
        while position and recent[position - 1][0] > n:
            position -= 1

    # _cents and the outcome rules written out: this runs once per repayment
    due_cents = round(event.amount_due * 100.0)
    paid_cents = round(event.amount_paid * 100.0)
    day = event.event_time.toordinal()  # the event's date, as a day number
    pay_date = event.payment_date
    if paid_cents <= 0 or pay_date is None:
        outcome, late = MISSED, day - event.due_date.toordinal()
    else:
        late = (pay_date - event.due_date).days
        if paid_cents < due_cents:
            outcome = PARTIAL
        elif late > 0:
            outcome = LATE
        else:
            outcome, late = ON_TIME, 0
    record: Installment = (n, event_id, due_cents, paid_cents, outcome, day)
    recorded = state.installments_recorded
    on_time = state.installments_on_time
    total_due = state.total_due_cents + due_cents
    total_paid = state.total_paid_cents + paid_cents
    # recent, outcomes and paid stay aligned: the same edit on each
    outcomes = state.outcomes
    paid = state.paid_window
    if replaced is not None:
        total_due -= replaced[2]
        total_paid -= replaced[3]
        if replaced[4] == ON_TIME:
            on_time -= 1
        after = position + 1
        recent = (*recent[:position], record, *recent[after:])
        outcomes = outcomes[:position] + outcome + outcomes[after:]
        paid = (*paid[:position], paid_cents, *paid[after:])
    else:
        recorded += 1
        # a full window drops its oldest installment; its totals stay in the aggregates
        if position == size:
            # the usual case, the next installment: append without slicing around it
            if size < HISTORY_WINDOW:
                recent += (record,)
                outcomes += outcome
                paid += (paid_cents,)
            else:
                recent = (*recent[1:], record)
                outcomes = outcomes[1:] + outcome
                paid = (*paid[1:], paid_cents)
        else:
            recent = (*recent[:position], record, *recent[position:])
            outcomes = outcomes[:position] + outcome + outcomes[position:]
            paid = (*paid[:position], paid_cents, *paid[position:])
            if size >= HISTORY_WINDOW:
                recent = recent[1:]
                outcomes = outcomes[1:]
                paid = paid[1:]
    if outcome == ON_TIME:
        on_time += 1

    if n >= state.balance_installment:
        balance, balance_n = event.outstanding_balance, n
    else:
        balance, balance_n = state.outstanding_balance, state.balance_installment
    mask |= bit
    worst = state.worst_dpd
    if late > worst:
        worst = late
    below = bit - 2  # installments 1 .. n-1
    if mask & below == below:
        if mask < bit << 1:
            # the in-order path: nothing above n yet, so every payment so far was made by now
            dpd = dpd_on_day(state, day, total_paid, balance)
        else:
            dpd = _replayed_worst(state, recent, n, total_paid, balance)
        if dpd > worst:
            worst = dpd
    # with a gap below n, the reading waits for the gap: _replayed_worst takes it then
    # an open state holds no pending repayments: open_loan applied them
    return msgspec.structs.replace(
        state,
        outstanding_balance=balance,
        balance_installment=balance_n,
        recent=recent,
        outcomes=outcomes,
        recorded_mask=mask,
        installments_recorded=recorded,
        installments_on_time=on_time,
        total_due_cents=total_due,
        total_paid_cents=total_paid,
        worst_dpd=worst,
        paid_window=paid,
    )


def _replayed_worst(
    state: LoanState, recent: tuple[Installment, ...], n: int, total_paid: int, balance: float
) -> int:
    """Worst days past due read at the events of installments n, n+1, ... as an in-order stream.

    Runs only when installment ``n`` arrived after higher ones (out of order). Each reading uses
    the payments of the installments up to that one, so a payment that arrived early does not
    hide the arrears its predecessors left, and stops at the next gap (that gap's own arrival
    replays the rest).
    """
    position = next((i for i, rec in enumerate(recent) if rec[0] == n), None)
    if position is None:
        return 0  # older than the whole window: no later events to read
    paid = total_paid - sum(rec[3] for rec in recent[position + 1 :])
    worst = 0
    previous = n - 1
    for rec in recent[position:]:
        if rec[0] != previous + 1:
            break
        if rec[0] != n:
            paid += rec[3]
        worst = max(worst, dpd_on_day(state, rec[5], paid, balance))
        previous = rec[0]
    return worst


def _with_stale(state: LoanState) -> LoanState:
    return msgspec.structs.replace(state, stale_events=state.stale_events + 1)


def days_past_due(state: LoanState, as_of: date) -> int:
    """Days past due on ``as_of`` (see :data:`BEHAVIOUR_FEATURES`)."""
    return dpd_on_day(state, as_of.toordinal(), state.total_paid_cents, state.outstanding_balance)
