"""Per-loan repayment state: amortization, state updates in any arrival order, the behavioural
feature formulas on hand-built installment histories (the loan terms are a plain 10,000 at 12 %
over 36 months so every expected number can be checked by hand)."""

from __future__ import annotations

import itertools
import math
import pickle
import random
import statistics
from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from flows.events import LoanApplication, LoanRepayment
from flows.features import monthly_installment
from flows.loan.behaviour import BEHAVIOUR_FEATURE_NAMES, BEHAVIOUR_FEATURES, behaviour_features
from flows.loan.book import LoanBook, LoanEvent, Observation, Opened, Repaid
from flows.loan.labels import dpd_bucket, loan_status
from flows.loan.schedule import (
    add_months,
    amortization_schedule,
    due_date,
    installments_due,
    months_on_book,
)
from flows.loan.state import (
    CENT,
    HISTORY_WINDOW,
    MISSED,
    ON_TIME,
    LoanState,
    LoanStateError,
    apply_repayment,
    days_past_due,
    open_loan,
    pd_logit,
)
from training.dataset import LendingClub
from training.repayments import mixed_events
from training.replay import ReplayPlan

ORIGINATED = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)
ORIGIN_DATE = ORIGINATED.date()
INSTALLMENT = 332.14
SCHEDULE = amortization_schedule(10_000.0, 12.0, 36)

APP = msgspec.convert(
    {
        "schema_version": 1,
        "event_type": "loan_application",
        "event_id": "app-L1",
        "loan_id": "L1",
        "borrower_id": "B1",
        "event_time": ORIGINATED,
        "funded_amnt": 10_000.0,
        "term_months": 36,
        "int_rate": 12.0,
        "sub_grade": "B3",
        "addr_state": "CA",
        "verification_status": "verified",
        "annual_inc": 60_000.0,
    },
    LoanApplication,
)


def rep(
    n: int,
    paid: float | None = INSTALLMENT,
    late_days: int = 0,
    *,
    event_id: str | None = None,
    balance: float | None = None,
    reported_after: int = 30,
) -> LoanRepayment:
    """Installment ``n`` of APP: ``paid=None`` is missed (reported ``reported_after`` days on)."""
    due = due_date(ORIGIN_DATE, n)
    if paid is None:
        pay_date, amount, happened = None, 0.0, due + timedelta(days=reported_after)
    else:
        pay_date = due + timedelta(days=late_days)
        amount, happened = paid, pay_date
    return LoanRepayment(
        schema_version=1,
        event_type="loan_repayment",
        event_id=event_id or f"rep-L1-{n}",
        loan_id="L1",
        event_time=datetime.combine(happened, ORIGINATED.timetz()),
        installment_number=n,
        due_date=due,
        amount_due=INSTALLMENT,
        amount_paid=amount,
        payment_date=pay_date,
        outstanding_balance=SCHEDULE[n - 1][4] if balance is None else balance,
    )


def run(*events: LoanRepayment, pd: float = 0.1) -> LoanState:
    state = open_loan(APP, pd)
    for event in events:
        state = apply_repayment(state, event)
    return state


def features(state: LoanState, as_of: date) -> dict[str, float]:
    return dict(zip(BEHAVIOUR_FEATURE_NAMES, behaviour_features(state, as_of), strict=True))


def same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Feature tuples equal, NaN equal to NaN."""
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


# --- amortization and the calendar ------------------------------------------------------------


def test_amortization_matches_the_known_schedule() -> None:
    assert len(SCHEDULE) == 36
    assert SCHEDULE[0] == (1, 332.14, 100.00, 232.14, 9767.86)
    assert SCHEDULE[1] == (2, 332.14, 97.68, 234.46, 9533.40)
    assert SCHEDULE[-1][0] == 36
    assert SCHEDULE[-1][4] == 0.0
    # rounding the payment to cents leaves 14 cents for the final payment to absorb
    assert SCHEDULE[-1][1] == 332.28
    assert round(sum(row[3] for row in SCHEDULE), 2) == 10_000.00
    for n, payment, interest, principal, _ in SCHEDULE:
        assert round(interest + principal, 2) == payment, n
    assert round(monthly_installment(10_000.0, 12.0, 36), 2) == SCHEDULE[0][1]


def test_zero_rate_schedule_is_straight_line() -> None:
    rows = amortization_schedule(5_000.0, 0.0, 36)
    assert {row[2] for row in rows} == {0.0}
    assert rows[0][1] == 138.89
    assert rows[-1] == (36, 138.85, 0.0, 138.85, 0.0)


def test_due_dates_clamp_to_month_end_and_count_months() -> None:
    jan31 = date(2024, 1, 31)
    assert [add_months(jan31, k) for k in (1, 2, 3, 13)] == [
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
        date(2025, 2, 28),
    ]
    assert due_date(ORIGIN_DATE, 1) == date(2024, 2, 15)
    assert months_on_book(ORIGIN_DATE, date(2024, 2, 14)) == 0
    assert months_on_book(ORIGIN_DATE, date(2024, 2, 15)) == 1
    assert months_on_book(ORIGIN_DATE, date(2025, 1, 14)) == 11
    assert months_on_book(ORIGIN_DATE, date(2023, 12, 1)) == 0
    assert installments_due(ORIGIN_DATE, date(2030, 1, 1), 36) == 36


BUCKET_EDGES = [
    (0, "current"),
    (1, "1-29"),
    (29, "1-29"),
    (30, "30-59"),
    (59, "30-59"),
    (60, "60-89"),
    (89, "60-89"),
    (90, "90+"),
    (400, "90+"),
]


@pytest.mark.parametrize(("days", "bucket"), BUCKET_EDGES)
def test_dpd_buckets(days: int, bucket: str) -> None:
    assert dpd_bucket(days) == bucket


def test_negative_days_past_due_is_an_error() -> None:
    with pytest.raises(ValueError, match="negative"):
        dpd_bucket(-1)


# --- state updates ----------------------------------------------------------------------------


def test_a_new_loan_has_no_history_yet() -> None:
    f = features(open_loan(APP, 0.5), ORIGIN_DATE)
    assert f["days_past_due"] == f["worst_days_past_due"] == f["installments_in_arrears"] == 0
    assert f["outstanding_balance"] == 10_000.0
    assert f["balance_share"] == 1.0
    assert f["months_on_book"] == 0
    assert f["origination_pd_logit"] == 0.0
    for name in ("on_time_ratio", "paid_to_due_ratio", "full_on_time_share_6", "paid_amount_cv_6"):
        assert math.isnan(f[name]), name


def test_on_time_payments() -> None:
    state = run(rep(1), rep(2), rep(3))
    f = features(state, due_date(ORIGIN_DATE, 3))
    assert f["days_past_due"] == f["worst_days_past_due"] == 0
    assert f["installments_in_arrears"] == 0
    assert f["on_time_ratio"] == f["paid_to_due_ratio"] == f["full_on_time_share_6"] == 1.0
    assert f["paid_amount_cv_6"] == 0.0
    assert f["outstanding_balance"] == SCHEDULE[2][4] == 9296.59
    assert f["months_on_book"] == 3
    assert loan_status(state, due_date(ORIGIN_DATE, 3)) == "Current"


def test_late_payment_counts_days_until_it_arrives() -> None:
    before = run(rep(1))
    due2 = due_date(ORIGIN_DATE, 2)
    # nothing received for installment 2 yet: the schedule alone says it is past due
    assert days_past_due(before, due2) == 0
    assert days_past_due(before, due2 + timedelta(days=12)) == 12
    assert loan_status(before, due2 + timedelta(days=12)) == "In Grace Period"
    assert loan_status(before, due2 + timedelta(days=20)) == "Late (16-30 days)"
    after = apply_repayment(before, rep(2, late_days=20))
    f = features(after, due2 + timedelta(days=20))
    assert f["days_past_due"] == 0
    assert f["worst_days_past_due"] == 20
    assert f["on_time_ratio"] == 0.5
    assert f["paid_to_due_ratio"] == 1.0


def test_partial_payment_is_in_arrears_until_caught_up() -> None:
    short = run(rep(1, paid=200.00))
    as_of = due_date(ORIGIN_DATE, 1) + timedelta(days=10)
    f = features(short, as_of)
    assert f["days_past_due"] == 10
    assert f["installments_in_arrears"] == pytest.approx((INSTALLMENT - 200.00) / INSTALLMENT)
    assert f["paid_to_due_ratio"] == pytest.approx(200.00 / INSTALLMENT)
    assert f["on_time_ratio"] == 0.0
    cured = apply_repayment(short, rep(2, paid=round(2 * INSTALLMENT - 200.00, 2)))
    g = features(cured, due_date(ORIGIN_DATE, 2))
    assert g["days_past_due"] == 0
    assert g["installments_in_arrears"] == 0
    assert g["paid_to_due_ratio"] == pytest.approx(1.0)
    assert g["worst_days_past_due"] == 0  # seen only between events: no event reported it


def test_missed_installments_roll_through_the_buckets() -> None:
    unchanged = SCHEDULE[0][4]
    state = run(rep(1), *(rep(n, None, balance=unchanged) for n in (2, 3, 4, 5)))
    due2 = due_date(ORIGIN_DATE, 2)
    for as_of, bucket, status in (
        (due2 + timedelta(days=45), "30-59", "Late (31-120 days)"),
        (due2 + timedelta(days=75), "60-89", "Late (31-120 days)"),
        (due2 + timedelta(days=100), "90+", "Late (31-120 days)"),
        (due2 + timedelta(days=121), "90+", "Charged Off"),
    ):
        days = days_past_due(state, as_of)
        assert days == (as_of - due2).days
        assert dpd_bucket(days) == bucket
        assert loan_status(state, as_of) == status
    as_of = due_date(ORIGIN_DATE, 5) + timedelta(days=30)
    f = features(state, as_of)
    assert f["missed_last_3"] == 3
    assert f["missed_last_6"] == f["missed_last_12"] == 4
    # 6 installments fell due on or before as_of (the 6th on it), one was paid
    assert f["installments_in_arrears"] == pytest.approx(6 - 1)
    assert f["worst_days_past_due"] == (as_of - due2).days
    # missed installments leave the principal where it was
    assert f["outstanding_balance"] == SCHEDULE[0][4]


def test_one_behind_stays_in_arrears_while_paying_monthly() -> None:
    # installment 2 missed, every later one paid on time: the waterfall applies each payment to
    # the oldest installment, so the loan never catches up
    state = run(rep(1), rep(2, None), rep(3), rep(4))
    as_of = due_date(ORIGIN_DATE, 4) + timedelta(days=10)
    f = features(state, as_of)
    assert f["installments_in_arrears"] == pytest.approx(1.0)
    assert f["days_past_due"] == 10
    assert f["worst_days_past_due"] == 30
    assert f["missed_last_3"] == 1


OUT_OF_ORDER_HISTORIES = {
    "late, short and caught up": (
        [rep(1), rep(2, late_days=9), rep(3, paid=150.00), rep(4, paid=514.28), rep(5)],
        "PLSPP",
        9,
    ),
    # two misses in a row: 61 days past due when the second is reported, then paid monthly
    "two missed, then paying": (
        [rep(1), rep(2, None), rep(3, None), rep(4), rep(5)],
        "PMMPP",
        61,
    ),
}


@pytest.mark.parametrize("name", OUT_OF_ORDER_HISTORIES)
def test_out_of_order_arrival_gives_the_in_order_state(name: str) -> None:
    history, outcomes, worst = OUT_OF_ORDER_HISTORIES[name]
    as_of = due_date(ORIGIN_DATE, 5) + timedelta(days=3)
    expected = behaviour_features(run(*history), as_of)
    assert expected[BEHAVIOUR_FEATURE_NAMES.index("worst_days_past_due")] == worst
    for order in itertools.permutations(history):
        state = run(*order)
        arrival = [e.installment_number for e in order]
        assert same(behaviour_features(state, as_of), expected), arrival
        assert [r[0] for r in state.recent] == [1, 2, 3, 4, 5]
        assert state.outcomes == outcomes


def test_balance_comes_from_the_latest_installment_not_the_latest_arrival() -> None:
    state = run(rep(1), rep(3), rep(2))
    assert state.outstanding_balance == SCHEDULE[2][4]


def test_repayments_before_the_application_wait_for_it() -> None:
    early = apply_repayment(None, rep(2))
    early = apply_repayment(early, rep(1))
    early = apply_repayment(early, rep(2))  # a duplicate while pending
    assert not early.is_open
    assert [e.installment_number for e in early.pending] == [2, 1]
    with pytest.raises(LoanStateError, match="no application"):
        behaviour_features(early, ORIGIN_DATE)
    opened = open_loan(APP, 0.1, early)
    assert opened.is_open and opened.pending == ()
    as_of = due_date(ORIGIN_DATE, 2)
    assert same(behaviour_features(opened, as_of), behaviour_features(run(rep(1), rep(2)), as_of))
    # a replayed application leaves the open loan alone
    assert open_loan(APP, 0.9, opened) is opened


def test_duplicate_event_ids_are_idempotent() -> None:
    state = run(rep(1), rep(2, late_days=4))
    again = apply_repayment(state, rep(2, late_days=4))
    assert again is state
    assert state.installments_recorded == 2
    assert state.total_paid_cents == 2 * 33214


def test_a_correction_replaces_the_installment_but_not_the_history() -> None:
    missed = run(rep(1), rep(2, None, reported_after=20))
    paid_late = apply_repayment(missed, rep(2, late_days=28, event_id="rep-L1-2-paid"))
    f = features(paid_late, due_date(ORIGIN_DATE, 2) + timedelta(days=28))
    assert paid_late.installments_recorded == 2
    assert paid_late.total_paid_cents == 2 * 33214
    assert f["missed_last_3"] == 0
    assert f["days_past_due"] == 0
    assert f["worst_days_past_due"] == 28  # 20 when reported missed, 28 when paid


def test_the_window_is_bounded_and_old_repeats_are_stale() -> None:
    state = run(*(rep(n) for n in range(1, HISTORY_WINDOW + 3)))
    assert len(state.recent) == HISTORY_WINDOW
    assert state.recent[0][0] == 3
    assert state.installments_recorded == HISTORY_WINDOW + 2
    for repeat in (rep(1), rep(1, event_id="rep-L1-1-fix")):
        stale = apply_repayment(state, repeat)
        assert stale.stale_events == 1
        assert stale.total_paid_cents == state.total_paid_cents
    # an installment older than the window that never arrived still counts in the totals
    gap = run(*(rep(n) for n in range(2, HISTORY_WINDOW + 4)))
    filled = apply_repayment(gap, rep(1))
    assert filled.installments_recorded == HISTORY_WINDOW + 3
    assert filled.recent == gap.recent


def test_paid_off_loan_stays_fully_paid() -> None:
    payoff = round(SCHEDULE[1][4] + SCHEDULE[2][2] + SCHEDULE[2][3], 2)
    state = run(rep(1), rep(2), rep(3, paid=payoff, balance=0.0))
    later = date(2026, 1, 1)
    f = features(state, later)
    assert f["days_past_due"] == f["installments_in_arrears"] == 0
    assert f["outstanding_balance"] == f["balance_share"] == 0
    assert f["paid_to_due_ratio"] == 2.0  # capped
    assert loan_status(state, later) == "Fully Paid"


def test_events_of_another_loan_are_refused() -> None:
    other = msgspec.structs.replace(rep(1), loan_id="L2")
    with pytest.raises(LoanStateError, match="L2"):
        apply_repayment(open_loan(APP, 0.1), other)


# --- the feature formulas, one by one ---------------------------------------------------------


def test_every_behaviour_feature_has_a_documented_formula() -> None:
    assert len(BEHAVIOUR_FEATURE_NAMES) == len(set(BEHAVIOUR_FEATURE_NAMES))
    assert all(f.formula for f in BEHAVIOUR_FEATURES)
    assert len(behaviour_features(run(rep(1)), ORIGIN_DATE)) == len(BEHAVIOUR_FEATURES)


def test_each_formula_on_a_hand_built_history() -> None:
    paid = [INSTALLMENT, INSTALLMENT, 166.07, 498.21, 0.0, INSTALLMENT]
    state = run(
        rep(1),  # on time
        rep(2, late_days=5),  # late, paid in full
        rep(3, paid=166.07),  # short by half
        rep(4, paid=498.21),  # caught up, on time
        rep(5, None),  # missed, reported 30 days on (the day installment 6 falls due)
        rep(6, balance=8_700.00),  # on time, which pays off installment 5: one behind
        pd=0.2,
    )
    as_of = date(2024, 7, 20)  # installment 6 fell due on 2024-07-15
    f = features(state, as_of)
    assert state.outcomes == "PLSPMP"
    # payments cover installments 1-5, so the oldest uncovered is 6, due 5 days ago
    assert f["days_past_due"] == 5
    # installment 5 reported missed on 2024-07-15, 30 days after it fell due
    assert f["worst_days_past_due"] == 30
    assert f["installments_in_arrears"] == pytest.approx(
        (6 * INSTALLMENT - sum(paid)) / INSTALLMENT
    )
    assert f["installments_in_arrears"] == pytest.approx(1.0)
    assert (f["missed_last_3"], f["missed_last_6"], f["missed_last_12"]) == (1, 1, 1)
    assert f["on_time_ratio"] == 3 / 6
    assert f["paid_to_due_ratio"] == pytest.approx(sum(paid) / (6 * INSTALLMENT))
    assert f["outstanding_balance"] == 8_700.00
    assert f["balance_share"] == 0.87
    assert f["months_on_book"] == 6
    assert f["full_on_time_share_6"] == 3 / 6
    assert f["paid_amount_cv_6"] == pytest.approx(statistics.pstdev(paid) / statistics.mean(paid))
    assert f["origination_pd_logit"] == pytest.approx(math.log(0.2 / 0.8))
    assert dpd_bucket(int(f["days_past_due"])) == "1-29"


def test_windows_count_only_the_most_recent_installments() -> None:
    misses = {1, 2, 3, 8, 12, 13}
    events = [rep(n, None if n in misses else INSTALLMENT) for n in range(1, 15)]
    f = features(run(*events), due_date(ORIGIN_DATE, 15))
    # recorded installments 3..14 are the window; last 3 = 12-14, last 6 = 9-14
    assert (f["missed_last_3"], f["missed_last_6"], f["missed_last_12"]) == (2, 2, 4)
    assert f["full_on_time_share_6"] == 4 / 6
    assert f["on_time_ratio"] == 8 / 14


# --- the book on a real mixed stream, against the formulas written plainly ----------------------


def reference_dpd(state: LoanState, as_of: date, paid_cents: int, balance: float) -> int:
    """Days past due the plain way: the due date of the oldest installment not covered."""
    assert state.origination_date is not None
    covered = paid_cents // round(state.installment * 100)
    if balance <= CENT or covered >= state.term_months:
        return 0
    return max(0, (as_of - due_date(state.origination_date, covered + 1)).days)


def reference_features(state: LoanState, as_of: date) -> tuple[float, ...]:
    """BEHAVIOUR_FEATURES computed the straightforward way: calendar dates from due_date, the
    windows from ``recent``, nothing cached on the state. The coefficient of variation keeps the
    exact whole-cent formula so the comparison can be exact."""
    origination = state.origination_date
    assert origination is not None
    installment = round(state.installment * 100)
    balance = state.outstanding_balance
    paid_total = state.total_paid_cents
    dpd = reference_dpd(state, as_of, paid_total, balance)
    arrears = 0.0
    if balance > CENT:
        due_by = sum(
            1 for n in range(1, state.term_months + 1) if due_date(origination, n) <= as_of
        )
        owed = installment * due_by - paid_total
        arrears = owed / installment if owed > 0 else 0.0
    outcomes = "".join(rec[4] for rec in state.recent)
    assert outcomes == state.outcomes
    if state.installments_recorded:
        paid6 = [rec[3] for rec in state.recent[-6:]]
        s1 = sum(paid6)
        spread = len(paid6) * sum(x * x for x in paid6) - s1 * s1
        due = state.total_due_cents
        on_time_ratio = state.installments_on_time / state.installments_recorded
        paid_to_due = min(paid_total / due, 2.0) if due > 0 else 2.0
        full_share = outcomes[-6:].count(ON_TIME) / len(paid6)
        cv = math.sqrt(spread) / s1 if len(paid6) > 1 and s1 > 0 else 0.0
    else:
        on_time_ratio = paid_to_due = full_share = cv = math.nan
    return (
        float(dpd),
        float(max(dpd, state.worst_dpd)),
        arrears,
        float(outcomes[-3:].count(MISSED)),
        float(outcomes[-6:].count(MISSED)),
        float(outcomes.count(MISSED)),
        on_time_ratio,
        paid_to_due,
        balance,
        balance / state.funded_amnt,
        float(months_on_book(origination, as_of)),
        full_share,
        cv,
        pd_logit(state.origination_pd),
    )


def exactly(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Same values and types, NaN equal to NaN: no tolerance."""
    return len(a) == len(b) and all(
        type(x) is type(y) and (x == y or (math.isnan(x) and math.isnan(y)))
        for x, y in zip(a, b, strict=True)
    )


RECEIVED_US = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def messy_stream(lending_club: LendingClub) -> list[LoanEvent]:
    """A real mixed stream (40-month histories, origination dates spread over months) made
    messy: a third of the loans arrive in shuffled order (repayments before their application
    included), and repeats and corrections of earlier repayments arrive later, some of them
    after the installment has left the window."""
    plan = ReplayPlan(
        max_events=300, seed=3, start=datetime(2024, 1, 1, tzinfo=UTC), spacing=timedelta(hours=7)
    )
    decoders = (msgspec.json.Decoder(LoanRepayment), msgspec.json.Decoder(LoanApplication))
    events: list[LoanApplication | LoanRepayment] = []
    for raw in mixed_events(lending_club, plan, months=40):
        kind = decoders[0] if b'"loan_repayment"' in raw else decoders[1]
        events.append(kind.decode(raw))
    rng = random.Random(17)
    slots: dict[str, list[int]] = {}
    for i, event in enumerate(events):
        slots.setdefault(event.loan_id, []).append(i)
    for _, positions in sorted(slots.items())[::3]:
        moved = [events[i] for i in positions]
        rng.shuffle(moved)
        for i, event in zip(positions, moved, strict=True):
            events[i] = event
    late: list[tuple[int, LoanRepayment]] = []
    for i, event in enumerate(events):
        if not isinstance(event, LoanRepayment) or rng.random() > 0.1:
            continue
        if rng.random() < 0.5:
            late.append((i + rng.randint(1, 2_000), event))
            continue
        paid = rng.choice([0.0, round(event.amount_due * rng.uniform(0.2, 1.5), 2)])
        fix = msgspec.structs.replace(
            event,
            event_id=f"{event.event_id}-fix",
            amount_paid=paid,
            payment_date=None if paid == 0 else event.due_date + timedelta(days=rng.randint(0, 40)),
        )
        late.append((i + rng.randint(1, 6_000), fix))
    for position, event in sorted(late, key=lambda t: t[0], reverse=True):
        events.insert(min(position, len(events)), event)
    return [
        Opened(e, 0.08, "v1")
        if isinstance(e, LoanApplication)
        else Repaid(e, "test", RECEIVED_US, RECEIVED_US // 1000)
        for e in events
    ]


def check_observation(o: Observation) -> None:
    state = o.state
    as_of = o.repaid.event.event_time.date()
    assert exactly(o.features, reference_features(state, as_of)), o.repaid.event.event_id
    assert o.days_past_due == days_past_due(state, as_of) == int(o.features[0])
    assert type(o.days_past_due) is int
    # what the state derives once at open, or keeps beside ``recent``, agrees with its source
    assert state.origination_date is not None
    assert state.installment_cents == round(state.installment * 100)
    assert state.due_days == tuple(
        due_date(state.origination_date, n).toordinal() for n in range(state.term_months + 1)
    )
    assert state.paid_window == tuple(rec[3] for rec in state.recent)


def test_book_observations_match_the_formulas_on_a_messy_real_stream(
    messy_stream: list[LoanEvent],
) -> None:
    book = LoanBook()
    observed = book.apply(messy_stream)
    assert len(observed) > 5_000
    for o in observed:
        check_observation(o)
    states = [entry.state for entry in book.snapshot().values()]
    # the stream reaches the paths it is meant to: full windows, stale repeats, late arrivals
    assert book.pending == 0
    assert any(len(s.recent) == HISTORY_WINDOW for s in states)
    assert sum(s.stale_events for s in states) > 0
    assert any(s.worst_dpd >= 90 for s in states)
    assert any(s.outstanding_balance <= CENT for s in states)
    # any day, not just event days: before origination, around due dates, after the last one
    rng = random.Random(5)
    for state in states:
        origination = state.origination_date
        assert origination is not None
        days = [origination - timedelta(days=3), origination]
        days += [origination + timedelta(days=rng.randrange(2_300)) for _ in range(5)]
        for n in (1, 12, state.term_months - 1, state.term_months, state.term_months + 1):
            days += [due_date(origination, n) + timedelta(days=k) for k in (-1, 0, 1)]
        for as_of in days:
            assert exactly(behaviour_features(state, as_of), reference_features(state, as_of))


def test_each_loan_alone_in_a_fresh_book_reaches_the_same_state(
    messy_stream: list[LoanEvent],
) -> None:
    """Entries change in place: one loan's updates never reach another's, nor a fresh book's."""
    shared = LoanBook()
    shared.apply(messy_stream)
    by_loan: dict[str, list[LoanEvent]] = {}
    for event in messy_stream:
        loan = event.app.loan_id if isinstance(event, Opened) else event.event.loan_id
        by_loan.setdefault(loan, []).append(event)
    together = shared.snapshot()
    for loan, events in by_loan.items():
        alone = LoanBook()
        for o in alone.apply(events):
            check_observation(o)
        assert alone.snapshot()[loan].state == together[loan].state


def test_a_resumed_book_continues_exactly_and_its_snapshot_stays_put(
    messy_stream: list[LoanEvent],
) -> None:
    half = len(messy_stream) // 2
    whole = LoanBook().apply(messy_stream)
    book = LoanBook()
    first = book.apply(messy_stream[:half])
    snapshot = book.snapshot()
    frozen = pickle.dumps(snapshot)
    resumed = LoanBook(pickle.loads(frozen))
    rest = resumed.apply(messy_stream[half:])
    assert len(first) + len(rest) == len(whole)
    for a, b in zip(whole, first + rest, strict=True):
        assert a.repaid.event == b.repaid.event
        assert exactly(a.features, b.features)
        assert a.days_past_due == b.days_past_due
        assert a.state == b.state
    # the book that took the snapshot moves on; the snapshot, and the book resumed from it, do not
    book.apply(messy_stream[half:])
    assert pickle.dumps(snapshot) == frozen
    again = LoanBook(snapshot)
    again.apply(messy_stream[half:])
    assert pickle.dumps(snapshot) == frozen


def test_loans_that_arrived_in_order_fold_to_the_plainly_computed_state(
    messy_stream: list[LoanEvent],
) -> None:
    """For every loan whose repayments came in order after its application, uncorrected (repeats
    change nothing), the state's totals, window and worst days past due are recomputed event by
    event from the events alone (worst: the larger of each event's lateness and the days past
    due right after it, as BEHAVIOUR_FEATURES defines it)."""
    book = LoanBook()
    book.apply(messy_stream)
    entries = book.snapshot()
    arrivals: dict[str, list[LoanEvent]] = {}
    for event in messy_stream:
        loan = event.app.loan_id if isinstance(event, Opened) else event.event.loan_id
        arrivals.setdefault(loan, []).append(event)
    checked = delinquent = 0
    for loan, events in arrivals.items():
        # a repeat's first arrival is the one that counts; a correction breaks the order
        repayments: list[LoanRepayment] = []
        seen: set[str] = set()
        for e in events:
            if isinstance(e, Repaid) and e.event.event_id not in seen:
                seen.add(e.event.event_id)
                repayments.append(e.event)
        in_order = [r.installment_number for r in repayments] == list(range(1, len(repayments) + 1))
        if not isinstance(events[0], Opened) or not in_order:
            continue
        state = entries[loan].state
        due = paid = on_time = worst = 0
        outcomes = ""
        for r in repayments:
            due_cents = round(r.amount_due * 100)
            paid_cents = round(r.amount_paid * 100)
            if paid_cents <= 0 or r.payment_date is None:
                outcome, late = MISSED, (r.event_time.date() - r.due_date).days
            else:
                late = (r.payment_date - r.due_date).days
                outcome = "S" if paid_cents < due_cents else "L" if late > 0 else ON_TIME
            due += due_cents
            paid += paid_cents
            on_time += outcome == ON_TIME
            outcomes += outcome
            after = reference_dpd(state, r.event_time.date(), paid, r.outstanding_balance)
            worst = max(worst, late, after)
        assert state.total_due_cents == due, loan
        assert state.total_paid_cents == paid, loan
        assert state.installments_recorded == len(repayments), loan
        assert state.installments_on_time == on_time, loan
        assert state.outcomes == outcomes[-HISTORY_WINDOW:], loan
        assert state.outstanding_balance == repayments[-1].outstanding_balance, loan
        assert state.worst_dpd == worst, loan
        checked += 1
        delinquent += worst > 0
    assert checked > 40
    assert delinquent > 5


def test_observations_do_not_depend_on_when_the_application_arrives(
    lending_club: LendingClub,
) -> None:
    """Applications and repayments come from two topics, so their interleaving varies between
    runs (and after a restart): every repayment must be observed with the same features."""
    from datetime import UTC, datetime

    from flows.loan.book import LoanBook, Opened, Repaid
    from flows.validation import decode_event

    plan = ReplayPlan(max_events=3000, seed=3, start=datetime(2025, 1, 1, tzinfo=UTC))
    events = [decode_event(raw, "t", 1 << 16) for raw in mixed_events(lending_club, plan)]
    now_us = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    wrapped = [
        Opened(e, 0.05, "v1")
        if isinstance(e, LoanApplication)
        else Repaid(e, "t", now_us, now_us // 1000)
        for e in events
        if isinstance(e, LoanApplication | LoanRepayment)
    ]
    in_order = {o.repaid.event.event_id: o.features for o in LoanBook().apply(wrapped)}
    # Every application delayed until after all repayments: each loan's repayments wait.
    late = [w for w in wrapped if isinstance(w, Repaid)] + [
        w for w in wrapped if isinstance(w, Opened)
    ]
    delayed = {o.repaid.event.event_id: o.features for o in LoanBook().apply(late)}
    assert len(in_order) > 1000
    assert delayed.keys() == in_order.keys()
    assert all(same(delayed[k], in_order[k]) for k in in_order)
