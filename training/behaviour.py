"""The behavioural (live PD) model: a loan's PD updated from its origination score and payments.

Observations
    Every real LendingClub loan is issued once, at a seeded time in :data:`ISSUE_START` to
    :data:`ISSUE_END` (:func:`behaviour_plan`), and gets its derived repayment history
    (:func:`training.repayments.repayment_history`, same seed). Its events are replayed in
    stream order (event time, then installment number, as ``mixed_events`` merges them)
    through the same pure code the dataflow runs: :func:`~flows.loan.state.open_loan` with the
    PD the current origination model gives the application, then
    :func:`~flows.loan.state.apply_repayment` per event. Each event of installments
    ``1 .. months`` is one observation: ``behaviour_features(state, event date)`` with the state
    right after that event, exactly what the dataflow scores. Features therefore only ever see
    the events up to the observation.

Label (``horizon_months`` = :data:`HORIZON_MONTHS`)
    A loan is *in default* on day ``d`` when its days past due on ``d``, read from the payments
    of every event dated on or before ``d``, are at least :data:`DEFAULT_DAYS_PAST_DUE` (90+).
    Its default date ``D`` is the first such day (days past due grow by one a day between
    events, so ``D`` is found exactly from the state between consecutive event dates). An
    observation dated ``t`` is labelled 1 when ``t < D <= add_months(t, horizon_months)``, else 0.
    Observations of loans already in default (``D <= t``) are left out: default is absorbing, and
    the model ranks loans that have not defaulted yet. Charge-off (beyond 120 days) needs 90+
    days first, so "90+ or charged off" is the same event as "90+".

    The outcome window needs events after the observation window: histories are derived for
    ``months + horizon_months + 1`` installments. A payment is never dated before its due date,
    so installment ``k``'s event falls on or after ``due_date(k)``; a history that has not ended
    on its own (paid off or charged off) is complete up to the day before the next installment's
    due date, and :func:`observe_loan` refuses a label window that reaches past that.

Out-of-time split
    The test months start on :func:`split_date` ``S``: the first day of the month by which
    :data:`TRAIN_SHARE` of the observation dates have passed. Observations dated on or after
    ``S`` test the model. Training takes the observations whose whole label window closes
    before ``S``: ``add_months(t, horizon_months) < S``, i.e. ``t < add_months(S,
    -horizon_months)`` (``S`` is a month's first day). So every training label was known on
    ``S``, and no default is counted in both sets: a training label's default is dated before
    ``S``, a test label's after its observation, on or after ``S``. Without that gap a loan
    defaulting in the test months would also label its own earlier training observations.
    The observations in between (the embargo) are used by neither.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from sklearn.pipeline import Pipeline

from flows.errors import RiskctlError
from flows.events import LoanApplication, LoanRepayment
from flows.features import FEATURE_NAMES, application_features
from flows.loan.behaviour import BEHAVIOUR_FEATURE_NAMES, behaviour_features
from flows.loan.schedule import add_months, due_date
from flows.loan.state import LoanState, apply_repayment, days_past_due, open_loan
from flows.model import ScoringModel, load_model
from flows.model_cards import ModelError
from flows.times import iso_utc
from training import metrics
from training.dataset import SOURCE, LendingClub, loan_id_for
from training.defaults import BEHAVIOUR_SEED as DEFAULT_SEED
from training.defaults import HORIZON_MONTHS as HORIZON_MONTHS
from training.defaults import MAX_MONTHS as MAX_MONTHS
from training.monotone import Sign, fit_sign_constrained
from training.repayments import (
    DEFAULT_MONTHS,
    Calibration,
    bad_rows,
    calibration_for,
    repayment_history,
)
from training.replay import ReplayPlan, application_events

DEFAULT_DAYS_PAST_DUE = 90
# The loans are issued over two calendar years, so with a 12-month label window the training
# months (whose labels close before the test months start) still hold a third of the data.
ISSUE_START = datetime(2015, 1, 1, tzinfo=UTC)
ISSUE_END = datetime(2017, 1, 1, tzinfo=UTC)
TRAIN_SHARE = 0.7
LABEL_DEFINITION = (
    f"1 when t < D <= t + {HORIZON_MONTHS} calendar months, 0 otherwise; t is the observation's "
    "event date and D the loan's default date, the first day its days past due (read from the "
    f"payments of the events dated up to that day) reach {DEFAULT_DAYS_PAST_DUE}; charge-off, "
    "beyond 120 days, comes after D. Observations with D <= t (already in default) are left out."
)
MODEL_PARAMS: dict[str, Any] = {"C": 1.0}
# The direction each feature may move the live PD (training/monotone.py): more days past due,
# arrears, recent misses or balance never lower it; more on-time payments, more paid or more
# months on book never raise it. The model is Markov-like, as collections read a loan: its
# position now and its misses of the last three installments, adjusted by the origination score.
# Not used (0): features that remember a cured miss for 6, 12 installments or for good
# (worst_days_past_due, missed_last_6/12, full_on_time_share_6), which kept a cured loan's PD
# several times its pre-miss level long after the cure, and paid_amount_cv_6, which a catch-up
# payment raises, making a cure look worse than staying behind.
FEATURE_SIGNS: dict[str, Sign] = {
    "days_past_due": 1,
    "worst_days_past_due": 0,
    "installments_in_arrears": 1,
    "missed_last_3": 1,
    "missed_last_6": 0,
    "missed_last_12": 0,
    "on_time_ratio": -1,
    "paid_to_due_ratio": -1,
    "outstanding_balance": 1,
    "balance_share": 1,
    "months_on_book": -1,
    "full_on_time_share_6": 0,
    "paid_amount_cv_6": 0,
    "origination_pd_logit": 1,
}

_APPLICATION = msgspec.json.Decoder(LoanApplication)
_REPAYMENT = msgspec.json.Decoder(LoanRepayment)
_ENCODER = msgspec.json.Encoder()
_DAY = timedelta(days=1)


class BehaviourError(RiskctlError):
    """The behavioural model cannot be trained from what was given."""


@dataclass(frozen=True)
class LoanObservation:
    """One repayment event of one loan as the model sees it, with its label."""

    event_id: str
    as_of: date
    features: tuple[float, ...]
    label: int


@dataclass(frozen=True)
class LoanOutcome:
    """A loan's observations and its default date (``None``: no default in the window)."""

    observations: list[LoanObservation]
    default_date: date | None
    # observations left out because the loan was already in default on their date
    excluded: int


@dataclass(frozen=True)
class Observations:
    """Every loan's observations, stacked."""

    features: np.ndarray  # (n, len(BEHAVIOUR_FEATURE_NAMES)) float64
    labels: np.ndarray  # (n,) int8
    dates: np.ndarray  # (n,) datetime64[D], the observation's event date
    loan_ids: np.ndarray  # (n,) str
    event_ids: np.ndarray  # (n,) str
    origination_pd: np.ndarray  # (n,) float64, the loan's origination PD
    loans: int
    defaults: int  # loans with a default date inside some observation's window
    excluded: int

    def __len__(self) -> int:
        return len(self.labels)


def behaviour_plan(data: LendingClub, seed: int) -> ReplayPlan:
    """Every real loan once, issued evenly over :data:`ISSUE_START` to :data:`ISSUE_END`.

    The seed shuffles which loan is issued when (:func:`training.replay.application_events`).
    """
    return ReplayPlan(
        max_events=len(data),
        seed=seed,
        start=ISSUE_START,
        spacing=(ISSUE_END - ISSUE_START) / len(data),
    )


def stream_order(events: Iterable[LoanRepayment]) -> list[LoanRepayment]:
    """Events in the order the replayed stream delivers them: event time, then installment."""
    return sorted(events, key=lambda e: (e.event_time, e.installment_number))


def _first_default_day(state: LoanState, start: date, end: date) -> date | None:
    """The first day in ``[start, end]`` with 90+ days past due, no event in between.

    With the payments fixed, days past due grow by exactly one a day once positive, so the
    reading at ``end`` tells the day the threshold was crossed.
    """
    if end < start:
        return None
    dpd = days_past_due(state, end)
    if dpd < DEFAULT_DAYS_PAST_DUE:
        return None
    return max(start, end - timedelta(days=dpd - DEFAULT_DAYS_PAST_DUE))


def observe_loan(
    app: LoanApplication,
    origination_pd: float,
    events: Sequence[LoanRepayment],
    *,
    months: int = DEFAULT_MONTHS,
    horizon_months: int = HORIZON_MONTHS,
    known_until: date | None = None,
) -> LoanOutcome:
    """The labelled observations of one loan (see the module notes for the label).

    ``events`` is the loan's whole known history; ``known_until`` is the last day it is known
    to be complete (``None``: the history ended, nothing more will come). A label window that
    reaches past ``known_until`` is an error, not a guess.
    """
    ordered = stream_order(events)
    state = open_loan(app, origination_pd)
    observed: list[tuple[str, date, tuple[float, ...]]] = []
    default_on: date | None = None
    # the last day whose events are all applied (the loan's state at the end of that day)
    settled = app.event_time.date()
    for i, event in enumerate(ordered):
        day = event.event_time.date()
        if default_on is None and day > settled:
            default_on = _first_default_day(state, settled + _DAY, day - _DAY)
        state = apply_repayment(state, event)
        if event.installment_number <= months:
            observed.append((event.event_id, day, behaviour_features(state, day)))
        if i + 1 == len(ordered) or ordered[i + 1].event_time.date() != day:
            settled = day
            if default_on is None and days_past_due(state, day) >= DEFAULT_DAYS_PAST_DUE:
                default_on = day
    if not observed:
        return LoanOutcome([], None, 0)
    until = add_months(observed[-1][1], horizon_months)
    if known_until is not None and until > known_until:
        raise BehaviourError(
            f"loan {app.loan_id}: the label window ends {until}, after its history ({known_until})"
        )
    if default_on is None:
        default_on = _first_default_day(state, settled + _DAY, until)
    outcomes: list[LoanObservation] = []
    excluded = 0
    for event_id, day, features in observed:
        if default_on is not None and default_on <= day:
            excluded += 1
            continue
        label = int(default_on is not None and default_on <= add_months(day, horizon_months))
        outcomes.append(LoanObservation(event_id, day, features, label))
    return LoanOutcome(outcomes, default_on, excluded)


def history_installments(months: int, horizon_months: int = HORIZON_MONTHS) -> int:
    """Installments to derive so every label window of the first ``months`` is fully known."""
    return months + horizon_months + 1


def loan_events(
    app: LoanApplication, bad: bool, seed: int, months: int, calibration: Calibration
) -> tuple[list[LoanRepayment], date | None]:
    """The loan's derived events, decoded from JSON as the dataflow decodes them, and the last
    day the history is known to be complete (``None`` once it ended by payoff or charge-off)."""
    installments = history_installments(months)
    history = repayment_history(app, bad, calibration, seed=seed, months=installments)
    events = [_REPAYMENT.decode(_ENCODER.encode(record)) for record in history]
    if len(events) < installments:
        return events, None
    origination = app.event_time.date()
    return events, due_date(origination, installments + 1) - _DAY


def applications(data: LendingClub, seed: int) -> list[LoanApplication]:
    """The plan's application events, decoded as the dataflow decodes them."""
    events = application_events(data, behaviour_plan(data, seed))
    return [_APPLICATION.decode(raw) for raw in events]


def load_origination(models_dir: Path, kind: str | None = None) -> ScoringModel:
    """The current origination model (of ``kind``), whose PD opens every replayed loan."""
    try:
        return load_model(models_dir, kind=kind)
    except ModelError as exc:
        raise BehaviourError(f"the behavioural model needs an origination model: {exc}") from None


def origination_pds(model: ScoringModel, apps: Sequence[LoanApplication]) -> np.ndarray:
    """The origination model's PD of each application, in one batch as the flow scores."""
    matrix = np.array([application_features(a) for a in apps], dtype=np.float64)
    return model.predict_pd(matrix.reshape(len(apps), len(FEATURE_NAMES)))


def build_observations(
    data: LendingClub,
    origination: ScoringModel,
    *,
    seed: int = DEFAULT_SEED,
    months: int = DEFAULT_MONTHS,
) -> Observations:
    """Labelled observations of every real loan."""
    if not 1 <= months <= MAX_MONTHS:
        raise BehaviourError(f"months must be between 1 and {MAX_MONTHS}, got {months}")
    apps = applications(data, seed)
    pds = origination_pds(origination, apps)
    calibration = calibration_for(data)
    bad_ids = {loan_id_for(r) for r in bad_rows(data)}
    rows: list[tuple[float, ...]] = []
    labels: list[int] = []
    days: list[date] = []
    loan_ids: list[str] = []
    event_ids: list[str] = []
    pd_rows: list[float] = []
    defaults = excluded = 0
    for app, pd in zip(apps, pds, strict=True):
        events, known_until = loan_events(app, app.loan_id in bad_ids, seed, months, calibration)
        outcome = observe_loan(app, float(pd), events, months=months, known_until=known_until)
        excluded += outcome.excluded
        defaults += any(o.label for o in outcome.observations)
        for o in outcome.observations:
            rows.append(o.features)
            labels.append(o.label)
            days.append(o.as_of)
            event_ids.append(o.event_id)
        loan_ids.extend([app.loan_id] * len(outcome.observations))
        pd_rows.extend([float(pd)] * len(outcome.observations))
    n = len(labels)
    return Observations(
        features=np.asarray(rows, dtype=np.float64).reshape(n, len(BEHAVIOUR_FEATURE_NAMES)),
        labels=np.asarray(labels, dtype=np.int8),
        dates=np.asarray(days, dtype="datetime64[D]"),
        loan_ids=np.asarray(loan_ids),
        event_ids=np.asarray(event_ids),
        origination_pd=np.asarray(pd_rows, dtype=np.float64),
        loans=len(apps),
        defaults=defaults,
        excluded=excluded,
    )


def split_date(dates: np.ndarray, train_share: float = TRAIN_SHARE) -> date:
    """The first day of the first month by which ``train_share`` of ``dates`` have passed."""
    months = np.unique(dates.astype("datetime64[M]"))
    for month in months[1:]:
        if (dates < month).mean() >= train_share:
            return month.astype("datetime64[D]").astype(date)
    raise BehaviourError("observations span a single month: no later month to test on")


def train_end(split: date, horizon_months: int = HORIZON_MONTHS) -> date:
    """Training observations are dated before this day, so their label windows close before
    ``split`` (a month's first day)."""
    return add_months(split, -horizon_months)


@dataclass
class BehaviourResult:
    """A fitted behavioural model with its out-of-time evaluation."""

    model: Pipeline
    split: date  # the first test day
    train_before: date  # training observations are dated before this day
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_origination_pd: np.ndarray
    train_dates: np.ndarray  # datetime64[D] of each training observation
    test_dates: np.ndarray
    test: dict[str, float]  # behavioural model on the test months
    origination_test: dict[str, float]  # origination PD on the same test observations
    train: dict[str, float]
    calibration: list[dict[str, float]]
    data: dict[str, Any]
    origination_version: str
    seed: int
    training_seconds: float
    trained_at: str
    params: dict[str, Any]
    feature_names: tuple[str, ...] = BEHAVIOUR_FEATURE_NAMES


def _date_range(dates: np.ndarray) -> dict[str, str]:
    return {"first": str(dates.min()), "last": str(dates.max())}


def train_behaviour(
    data: LendingClub,
    origination: ScoringModel,
    *,
    seed: int = DEFAULT_SEED,
    months: int = DEFAULT_MONTHS,
) -> BehaviourResult:
    """Build the observations, split them by date, fit, and measure on the later months."""
    started = time.perf_counter()
    trained_at = datetime.now(UTC)
    obs = build_observations(data, origination, seed=seed, months=months)
    split = split_date(obs.dates)
    train_before = train_end(split)
    train_mask = obs.dates < np.datetime64(train_before, "D")
    test_mask = obs.dates >= np.datetime64(split, "D")
    x_train, y_train = obs.features[train_mask], obs.labels[train_mask]
    x_test, y_test = obs.features[test_mask], obs.labels[test_mask]
    for name, y in (("train", y_train), ("test", y_test)):
        if y.min() == y.max():
            raise BehaviourError(f"the {name} months hold only one class: too few loans")
    model = fit_sign_constrained(
        x_train, y_train, BEHAVIOUR_FEATURE_NAMES, FEATURE_SIGNS, c=MODEL_PARAMS["C"]
    )
    p_test = model.predict_proba(x_test)[:, 1]
    p_train = model.predict_proba(x_train)[:, 1]
    origination_test_pd = obs.origination_pd[test_mask]
    return BehaviourResult(
        model=model,
        split=split,
        train_before=train_before,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        test_origination_pd=origination_test_pd,
        train_dates=obs.dates[train_mask],
        test_dates=obs.dates[test_mask],
        test=metrics.summary(y_test, p_test),
        origination_test=metrics.summary(y_test, origination_test_pd),
        train=metrics.summary(y_train, p_train),
        calibration=metrics.calibration_table(y_test, p_test),
        data={
            "source": SOURCE,
            "sha256": data.sha256,
            "loans": obs.loans,
            "observations": len(obs),
            "excluded_in_default": obs.excluded,
            "defaulting_loans": obs.defaults,
            "train_rows": int(train_mask.sum()),
            "embargo_rows": int(len(obs) - train_mask.sum() - test_mask.sum()),
            "test_rows": int(test_mask.sum()),
            "train_bads": int(y_train.sum()),
            "test_bads": int(y_test.sum()),
            "train_dates": _date_range(obs.dates[train_mask]),
            "test_dates": _date_range(obs.dates[test_mask]),
            "test_loans": int(np.unique(obs.loan_ids[test_mask]).size),
            "split_date": split.isoformat(),
            "train_before": train_before.isoformat(),
            "issue_start": ISSUE_START.date().isoformat(),
            "issue_end": (ISSUE_END - _DAY).date().isoformat(),
            "months": months,
            "horizon_months": HORIZON_MONTHS,
            "history_installments": history_installments(months),
            "default_days_past_due": DEFAULT_DAYS_PAST_DUE,
            "seed": seed,
        },
        origination_version=origination.version,
        seed=seed,
        training_seconds=time.perf_counter() - started,
        trained_at=iso_utc(trained_at, "seconds"),
        params={**MODEL_PARAMS, "feature_signs": FEATURE_SIGNS},
    )
