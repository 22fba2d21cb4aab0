"""The reason-code table: what a lender may tell an applicant for each characteristic.

Each characteristic has two codes: its name, cited when its value cost points against the best
attainable attribute, and ``<name>_not_supplied``, cited when the value was missing and the
missing bin itself cost the points. The texts follow the direction documented in ``FEATURES``
(a characteristic whose higher values raise PD is cited as "too high"). The table is written
into every model card, where scoring, the watchlist and the dashboards read it.
"""

from __future__ import annotations

from collections.abc import Sequence

NOT_SUPPLIED = "_not_supplied"

# characteristic -> (what it is, the adverse-action reason when its value cost points)
REASON_TEXTS: dict[str, tuple[str, str]] = {
    "loan_amount_log": ("Loan amount", "Amount requested is too high"),
    "annual_income_log": ("Annual income", "Income is insufficient for the amount of credit"),
    "loan_to_income": ("Income", "Amount requested is too high relative to income"),
    "installment_to_income": ("Income", "Payment on this loan is too high relative to income"),
    "debt_to_income": ("Installment debt balances", "Debt obligations too high for income"),
    "revolving_utilization": (
        "Revolving credit utilization",
        "Proportion of revolving balances to credit limits is too high",
    ),
    "total_utilization": (
        "Credit utilization",
        "Proportion of balances to credit limits on all accounts is too high",
    ),
    "installment_utilization": (
        "Installment loan balances",
        "Proportion of installment loan balances to original amounts is too high",
    ),
    "interest_rate": ("Interest rate", "Interest rate of the loan indicates higher risk"),
    "sub_grade_rank": ("Loan grade", "Loan grade indicates higher risk"),
    "term_60": ("Loan term", "Loan term requested is too long"),
    "delinquencies_2y": (
        "Delinquency history",
        "Delinquencies in the last two years on credit accounts",
    ),
    "accounts_delinquent": ("Delinquent accounts", "Credit accounts now delinquent"),
    "delinquent_amount_log": ("Delinquent amount", "Amount past due on delinquent accounts"),
    "inquiries_6m": ("Recent credit inquiries", "Too many credit inquiries in the last 6 months"),
    "inquiries_12m": (
        "Credit inquiries in the last 12 months",
        "Too many credit inquiries in the last 12 months",
    ),
    "finance_inquiries": ("Personal finance inquiries", "Too many personal finance inquiries"),
    # LendingClub's open_il_6m counts the currently active installment accounts, not openings
    "installment_opened_6m": (
        "Active installment accounts",
        "Too many active installment accounts",
    ),
    "installment_opened_12m": (
        "Installment accounts opened in the last 12 months",
        "Too many installment accounts opened in the last 12 months",
    ),
    "installment_opened_24m": (
        "Installment accounts opened in the last 24 months",
        "Too many installment accounts opened in the last 24 months",
    ),
    "installment_accounts": ("Installment accounts", "Too many installment accounts"),
    "employment_years": ("Length of employment", "Length of employment is too short"),
    "income_verified": ("Income verification", "Income could not be verified"),
    "recent_installment_share": (
        "Share of recently opened installment accounts",
        "Too many of the installment accounts were opened in the last 24 months",
    ),
}


def reason_table(characteristics: Sequence[str]) -> tuple[list[str], list[str]]:
    """Codes and texts, first one per characteristic, then each one's "not supplied" code:
    the order :meth:`flows.model.ScoringModel.explain` indexes."""
    missing = [name for name in characteristics if name not in REASON_TEXTS]
    if missing:
        raise KeyError(f"no reason text for {', '.join(missing)}")
    codes = [*characteristics, *(f"{name}{NOT_SUPPLIED}" for name in characteristics)]
    texts = [
        *(REASON_TEXTS[name][1] for name in characteristics),
        *(f"{REASON_TEXTS[name][0]} not supplied" for name in characteristics),
    ]
    return codes, texts
