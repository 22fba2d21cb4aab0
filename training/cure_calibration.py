"""Two of the three rates of the derived histories outside the bad loans' chain, solved from
published figures (docs/repayments.md, "Good loans' misses and cured bad loans"). Pure: closed
forms only.

:class:`~training.arrears_chain.CureRates` holds them: ``good_miss`` (a good loan misses an
installment), ``good_cure`` (it then pays everything owed at a later due date; Prosper's 1-29
row given not worse, set in :mod:`training.arrears_chain`) and ``bad_redefault`` (a cured bad
loan misses again). :func:`solve_cure_rates` solves ``good_miss`` and ``bad_redefault``
together from two published figures, with every other rate re-solved by
:func:`training.repayment_calibration.calibrate` at each step, so openintro's status shares
hold throughout:

* LendingClub's 9-month loss rate of loans **In Grace Period**, 23 % (2014,
  :data:`~training.published_rolls.LENDINGCLUB_LOSS_RATES_2014`). The bucket holds late payers
  and good loans one installment behind, never charged off, and bad loans one behind or paying
  the installment before their first miss 1-15 days late, charged off with the chain's
  probability. More good misses make more of the bucket good.
* Re-aged credit-card accounts that **default again**, 22 % within 24 months
  (:data:`~training.published_rolls.REAGED_CARDS_REDEFAULT`): of the derived cures (good loans'
  and bad loans', counted per first miss over a 36-month term), the share charged off within 24
  due dates. Good loans' cures never are; a cured bad loan is with the chain's probability,
  which rises with how soon it misses again.

A third figure checks the result: LendingClub's **recovery rate** of loans In Grace Period, 83 %
brought current within six months
(:data:`~training.published_rolls.LENDINGCLUB_GRACE_RECOVERY_2010`). Late payers and stressed
bad loans pay within the month; a good loan one behind cures within six due dates with
``1 - (1 - good_cure)^6``, a bad one with the chain's chance of a first cure.

The snapshot is openintro's (:mod:`training.repayment_calibration`): ``u`` days into the
current installment's cycle, a loan ``b`` installments behind ``30 (b - 1) + u`` days past due
(the waterfall), 8 due dates to LendingClub's 9-month charge-off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.optimize import least_squares

from training.arrears_chain import (
    CURE_RATES,
    UNPAID_BEFORE_CHARGE_OFF,
    ArrearsState,
    CureRates,
    Transition,
    arrears_paths,
    charged_off_within,
)
from training.published_rolls import (
    LENDINGCLUB_GRACE_RECOVERY_2010,
    LENDINGCLUB_LOSS_RATES_2014,
    REAGED_CARDS_REDEFAULT,
)
from training.repayment_calibration import (
    CYCLE_DAYS,
    LOSS_DUE_DATES,
    OPEN_BUCKET,
    OPENINTRO_MONTHS_ON_BOOK,
    OPENINTRO_STATUS_COUNTS,
    STRESS_LATE_DAYS,
    STRESS_SHARE,
    arrears_bucket,
    calibrate,
)

GRACE = "In Grace Period"
# a cure is followed over the loan's term: LendingClub's shorter term, 36 installments
TERM_DUE_DATES = 36
# a loan one behind is in grace (1-15 days past due) on 15 of the cycle's 30 days
BEHIND_ONE_IN_GRACE = 15 / CYCLE_DAYS


@dataclass(frozen=True)
class CureFigures:
    """The published figures as the closed forms give them at one set of rates."""

    grace_loss: float
    grace_recovery: float
    redefault: float

    def residuals(self, published: CureFigures) -> list[float]:
        """The solved figures less the published ones: grace loss, re-default."""
        return [
            self.grace_loss - published.grace_loss,
            self.redefault - published.redefault,
        ]


PUBLISHED = CureFigures(
    grace_loss=LENDINGCLUB_LOSS_RATES_2014.rates[GRACE],
    grace_recovery=LENDINGCLUB_GRACE_RECOVERY_2010.share,
    redefault=REAGED_CARDS_REDEFAULT.share,
)


def _behind_one(
    steps: Mapping[int, Transition] | None, rates: CureRates, w: Mapping[int, float]
) -> float:
    """Per first miss a month: the chance a loan is one installment behind at the snapshot,
    over its installments due (weights ``w``)."""
    paths = arrears_paths(steps, max(w), rates=rates)
    return sum(
        wh * p
        for h, wh in w.items()
        for j in range(h)
        for (behind, _), p in paths[j].items()
        if behind and arrears_bucket(behind) == OPEN_BUCKET
    )


def _cures_per_first_miss(steps: Mapping[int, Transition] | None, rates: CureRates) -> float:
    """Expected cures (back to current from behind) over the term after a first miss."""
    good_step = rates.good_step
    cures = 0.0
    for dist in arrears_paths(steps, TERM_DUE_DATES, rates=rates)[:-1]:
        for (behind, _), p in dist.items():
            if 1 <= behind < UNPAID_BEFORE_CHARGE_OFF:
                step = good_step if steps is None else steps[behind]
                cures += p * step.cure
    return cures


def cure_figures(
    bad_share: float,
    rates: CureRates,
    targets: Mapping[str, int] = OPENINTRO_STATUS_COUNTS,
    months_on_book: Mapping[int, int] = OPENINTRO_MONTHS_ON_BOOK,
) -> CureFigures:
    """The three published figures in closed form at ``rates`` (openintro's shares held; a
    ``ValueError`` when they cannot be)."""
    cal = calibrate(bad_share, targets, months_on_book, rates)
    chain = cal.bad_transitions
    loans = sum(months_on_book.values())
    w = {h: n / loans for h, n in months_on_book.items()}
    good = (1.0 - bad_share) * rates.good_miss
    bad = bad_share / cal.onset_months
    grace = targets[GRACE] / sum(targets.values())

    # In Grace Period: bad loans one behind, and stressed ones (the installment before the
    # onset unpaid 1-15 days), whose first miss takes one due date of the horizon
    bad_grace = bad * _behind_one(chain, rates, w) * BEHIND_ONE_IN_GRACE
    low, high = STRESS_LATE_DAYS
    stress_days = sum(d - 1 for d in range(low, high + 1)) / (high - low + 1)
    stressed = bad * STRESS_SHARE * stress_days / CYCLE_DAYS
    charged_off = bad_grace * charged_off_within(chain, LOSS_DUE_DATES, rates=rates)
    charged_off += stressed * charged_off_within(chain, LOSS_DUE_DATES - 1, rates=rates)
    # recovered within six month ends: everyone in the bucket but the loans one behind pays
    # within the month; those cure with the chain's chance of a first cure (none re-missed)
    months = LENDINGCLUB_GRACE_RECOVERY_2010.horizon_months
    good_grace = good * _behind_one(None, rates, w) * BEHIND_ONE_IN_GRACE
    first_cure = CureRates(rates.good_miss, rates.good_cure, bad_redefault=0.0)
    bad_cured = arrears_paths(chain, months, rates=first_cure)[months].get((0, False), 0.0)
    good_cured = 1.0 - (1.0 - rates.good_cure) ** months
    recovered = grace - bad_grace * (1.0 - bad_cured) - good_grace * (1.0 - good_cured)
    # re-default: cures per loan-month, good and bad; a cured bad loan's charge-off
    good_cures = good * _cures_per_first_miss(None, rates)
    bad_cures = bad * _cures_per_first_miss(chain, rates)
    start: ArrearsState = (0, False)
    cured_off = charged_off_within(chain, REAGED_CARDS_REDEFAULT.horizon_months, start, rates)
    redefault = bad_cures * cured_off / (good_cures + bad_cures)
    return CureFigures(charged_off / grace, recovered / grace, redefault)


@dataclass(frozen=True)
class CureSolution:
    """The solved rates and the figures the closed forms give at them."""

    rates: CureRates
    figures: CureFigures

    @property
    def residuals(self) -> list[float]:
        return self.figures.residuals(PUBLISHED)


def solve_cure_rates(bad_share: float, start: CureRates = CURE_RATES) -> CureSolution:
    """``good_miss`` and ``bad_redefault`` that meet :data:`PUBLISHED`'s grace loss and
    re-default (least squares from ``start``, ``good_cure`` kept; rates where openintro's
    shares cannot be met count as far off)."""

    def residuals(x: Sequence[float]) -> list[float]:
        rates = CureRates(good_miss=x[0], good_cure=start.good_cure, bad_redefault=x[1])
        try:
            return cure_figures(bad_share, rates).residuals(PUBLISHED)
        except ValueError:
            return [1.0, 1.0]

    fit = least_squares(
        residuals,
        [start.good_miss, start.bad_redefault],
        bounds=([1e-4, 0.01], [0.02, 0.99]),
        diff_step=1e-3,
    )
    rates = CureRates(float(fit.x[0]), start.good_cure, float(fit.x[1]))
    return CureSolution(rates, cure_figures(bad_share, rates))
