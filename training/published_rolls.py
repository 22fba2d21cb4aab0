"""Published delinquency transitions and loss rates of US unsecured consumer instalment loans.

Source: the *Prosper collections reports* on the Prosperous Land blog, which compared a snapshot
of every Prosper loan (3-year unsecured consumer instalment loans, fixed rate, amortizing) with
the same loans about one month later, from Prosper's public loan data:

* January 2008 (1 Jan -> 1 Feb): http://prosperousland.blogspot.com/2008/02
* February 2008 (1 Feb -> 3 Mar):
  http://prosperousland.blogspot.com/2008/04/february-prosper-collections-report.html
* March 2008 (3 Mar -> 1 Apr):
  http://prosperousland.blogspot.com/2008/04/march-prospercom-collections-update.html
* April 2008 (1 Apr -> 2 May):
  http://prosperousland.blogspot.com/2008/05/april-prospercom-collections-update.html

Each table gives, per status at the first snapshot, the loans and how many "got better" (a less
delinquent status a month later), "stayed the same" or "got worse". Prosper's statuses map to
the project's buckets (:func:`flows.loan.labels.dpd_bucket`): Late (under a month) is 1-29,
1 month late 30-59, 2 months late 60-89, 3 months late (90-119 days) 90+. The counts are copied
as published; pooling the four months gives one row per bucket.

LendingClub's loss rates by loan status (:data:`LENDINGCLUB_LOSS_RATES_2014`, below) say what
share of the loans in a late status at a snapshot LendingClub's history shows charged off
within nine months; they fix the chain's step from 1-29 days (training/repayment_calibration.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# {month: {bucket: (loans, got better, stayed the same, got worse)}}
PROSPER_2008: Mapping[str, Mapping[str, tuple[int, int, int, int]]] = {
    "2008-01": {
        "current": (12620, 182, 12122, 316),
        "1-29": (265, 82, 33, 150),
        "30-59": (304, 51, 12, 241),
        "60-89": (249, 16, 16, 217),
        "90+": (271, 12, 10, 249),
    },
    "2008-02": {
        "current": (13271, 241, 12719, 311),
        "1-29": (228, 58, 36, 134),
        "30-59": (297, 22, 19, 256),
        "60-89": (265, 11, 14, 240),
        "90+": (229, 5, 6, 218),
    },
    "2008-03": {
        "current": (13772, 214, 13243, 315),
        "1-29": (203, 54, 42, 107),
        "30-59": (281, 34, 35, 212),
        "60-89": (273, 11, 23, 239),
        "90+": (254, 4, 25, 225),
    },
    "2008-04": {
        "current": (14456, 226, 13895, 335),
        "1-29": (223, 56, 31, 136),
        "30-59": (292, 32, 26, 234),
        "60-89": (235, 18, 11, 206),
        "90+": (260, 7, 7, 246),
    },
}


@dataclass(frozen=True)
class PublishedRow:
    """One pooled row: loans in a bucket at a month end and what they did by the next."""

    loans: int
    better: int
    same: int
    worse: int

    def share(self, move: str) -> float:
        """The share of ``move`` (``better``, ``same`` or ``worse``)."""
        count: int = getattr(self, move)
        return count / self.loans


def pooled(bucket: str) -> PublishedRow:
    """The four months of :data:`PROSPER_2008` pooled for ``bucket``."""
    rows = [month[bucket] for month in PROSPER_2008.values()]
    return PublishedRow(*(sum(column) for column in zip(*rows, strict=True)))


# LendingClub's historical loss rates by loan status: the share of the outstanding principal of
# loans in a status that LendingClub's history shows charged off within the horizon, which it
# deducted from its Adjusted Net Annualized Return ("we apply an estimated loss rate to the
# outstanding principal of a Note for which the corresponding member loan is past due but not
# charged off", quoted at https://debanked.com/p2pforum/index.php?topic=21647.0). The rates as
# LendingClub reported them in 2012 (6-month) and 2014 (9-month), copied side by side by the
# PeerCube blog, "Lending Club Loan Default Rate and Returns: Two Years is a long time in the life
# of a Loan", 2014 (a third party's copy; LendingClub's own page is not at hand):
# https://www.peercube.com/blog/post/lending-club-loan-default-rate-and-returns-two-years-is-a-long-time-in-the-life-of-a-loan
@dataclass(frozen=True)
class LossRates:
    """Published loss rates by LendingClub status over ``horizon_months``."""

    published: str
    horizon_months: int
    rates: Mapping[str, float]


LENDINGCLUB_LOSS_RATES_2014 = LossRates(
    published="2014",
    horizon_months=9,
    rates={"In Grace Period": 0.23, "Late (16-30 days)": 0.49, "Late (31-120 days)": 0.72},
)
LENDINGCLUB_LOSS_RATES_2012 = LossRates(
    published="2012",
    horizon_months=6,
    rates={"In Grace Period": 0.16, "Late (16-30 days)": 0.23, "Late (31-120 days)": 0.47},
)


# LendingClub's recovery rates (its performance page, March 2011, as reported by Lend Academy,
# "Lending Club Stats Now Include Recovery Rate", 18 March 2011,
# https://www.lendacademy.com/lending-club-stats-now-include-recovery-rate/): "83% of loans that
# were officially In Grace Period at the end of August had been fully or partially recovered by
# the end of February 2011"; recovered means every past-due payment was made (LendingClub to the
# author), so the loan was brought current within six month ends.
@dataclass(frozen=True)
class RecoveryRate:
    """Share of the loans in a status at a month end brought current within the horizon."""

    status: str
    share: float
    horizon_months: int


LENDINGCLUB_GRACE_RECOVERY_2010 = RecoveryRate(
    status="In Grace Period", share=0.83, horizon_months=6
)


# Re-aged credit-card accounts (delinquent accounts brought back to current under a forbearance
# programme) that defaulted again: "about 22% of the re-aged accounts default again, mostly in
# the first 24 months after reinstatement" (abstract of "Do Forbearance Plans Help Mitigate Credit
# Card Losses?", SSRN 754825, https://papers.ssrn.com/sol3/papers.cfm?abstract_id=754825). The
# nearest published re-default rate of cured US unsecured consumer debt found; it is a card
# portfolio, not instalment loans, and its cures were the lender's re-aging, not the borrower's.
@dataclass(frozen=True)
class RedefaultRate:
    """Share of cured accounts that default again within ``horizon_months`` of the cure."""

    share: float
    horizon_months: int


REAGED_CARDS_REDEFAULT = RedefaultRate(share=0.22, horizon_months=24)
