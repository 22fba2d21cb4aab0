"""Origination features: the one pure function that turns a loan application into model inputs.

Training, the streaming dataflow, replay and ``riskctl score`` all call
:func:`application_features`; nothing else computes a feature. Each feature's formula is written
once, in :data:`FEATURES`, beside the direction its effect on PD must have. The stream evaluates
the same formulas over a whole batch at once (:func:`feature_matrix`, one numpy expression per
feature, keyed by the table's names); a property test holds it equal to the per-event function
bit for bit. A missing optional
field gives NaN, which the models score in a bin of its own (never an imputed value). Ratios
over income are guarded: zero income with a positive numerator gives the ratio's cap (the
riskiest value), never a division error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

import numpy as np

from flows.events import SUB_GRADES, LoanApplication

NAN = float("nan")
# keyed by object: the batch formulas look up raw column values, None among them
_SUB_GRADE_RANK: dict[object, float] = {
    grade: float(rank) for rank, grade in enumerate(SUB_GRADES, start=1)
}


# A feature's documented direction: how PD may move as the feature's value rises, all else fixed.
RAISES = 1  # higher never lowers PD
LOWERS = -1  # higher never raises PD


@dataclass(frozen=True)
class Feature:
    name: str
    formula: str
    # Every model must respect it: a fitted effect against it is a defect, not a finding.
    direction: int
    # Computed from LendingClub's own pricing (int_rate or sub_grade), which a lender scoring
    # its own applicants does not have; only the priced model may use it.
    priced: bool = False


FEATURES: tuple[Feature, ...] = (
    Feature("loan_amount_log", "ln(1 + funded_amnt)", RAISES),
    Feature("annual_income_log", "ln(1 + annual_inc)", LOWERS),
    Feature("income_zero", "1 if annual_inc <= 0 else 0", RAISES),
    Feature(
        "loan_to_income",
        "funded_amnt / annual_inc, capped at 10 (the loans are unsecured, so there is no "
        "loan-to-value; loan-to-income is its unsecured counterpart)",
        RAISES,
    ),
    Feature(
        "installment_to_income",
        "12 * installment / annual_inc, capped at 5; installment = amortized monthly payment "
        "of funded_amnt at int_rate over term_months",
        RAISES,
        priced=True,
    ),
    Feature(
        "debt_to_income",
        "(total_bal_il + funded_amnt) / annual_inc, capped at 20 (proxy: the data has "
        "installment balances, not the full bureau debt)",
        RAISES,
    ),
    Feature("revolving_utilization", "revol_util / 100", RAISES),
    Feature("total_utilization", "all_util / 100", RAISES),
    Feature(
        "installment_utilization", "total_bal_il / total_il_high_credit_limit, capped at 2", RAISES
    ),
    Feature("interest_rate", "int_rate / 100", RAISES, priced=True),
    Feature("sub_grade_rank", "A1 = 1 ... G5 = 35", RAISES, priced=True),
    Feature("term_60", "1 if term_months == 60 else 0", RAISES),
    Feature("delinquencies_2y", "delinq_2yrs", RAISES),
    Feature("accounts_delinquent", "acc_now_delinq", RAISES),
    Feature("delinquent_amount_log", "ln(1 + delinq_amnt)", RAISES),
    Feature("inquiries_6m", "inq_last_6mths", RAISES),
    Feature("inquiries_12m", "inq_last_12m", RAISES),
    Feature("finance_inquiries", "inq_fi", RAISES),
    Feature(
        "installment_opened_6m",
        "open_il_6m: despite both names, LendingClub's count of currently active installment "
        "accounts (it exceeds open_il_12m for 74% of the loans)",
        RAISES,
    ),
    Feature("installment_opened_12m", "open_il_12m", RAISES),
    Feature("installment_opened_24m", "open_il_24m", RAISES),
    Feature("installment_accounts", "num_il_tl", RAISES),
    Feature("employment_years", "emp_length_years (0 = under a year, 10 = ten or more)", LOWERS),
    Feature("employment_unknown", "1 if emp_length_years is missing else 0", RAISES),
    Feature(
        "income_stability",
        "0.7 * min(emp_length_years, 10) / 10 + 0.3 * income_verified; employment unknown "
        "counts as 0 years",
        LOWERS,
    ),
    Feature(
        "income_verified", "1 if verification_status is verified or source_verified else 0", LOWERS
    ),
    Feature(
        "recent_installment_share",
        "open_il_24m / num_il_tl, capped at 1: the share of the installment accounts opened in "
        "the last 24 months, a file made mostly of new credit (0 with no account and no "
        "opening; openings without accounts give the cap)",
        RAISES,
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)


def monthly_installment(amount: float, annual_rate_pct: float, term_months: int) -> float:
    """The level monthly payment that amortizes ``amount`` over ``term_months``."""
    r = annual_rate_pct / 100.0 / 12.0
    # Below ~1e-12 a month, (1 + r) ** -n rounds to 1 and the annuity formula divides by zero.
    if r < 1e-12:
        return amount / term_months
    return amount * r / (1.0 - (1.0 + r) ** -term_months)


def guarded_ratio(numerator: float | None, denominator: float | None, cap: float) -> float:
    """``numerator / denominator`` clipped to ``[0, cap]``; NaN when either side is missing.

    A non-positive denominator means the ratio is unbounded: it gives ``cap`` for a positive
    numerator and 0 when there is nothing to divide.
    """
    if numerator is None or denominator is None:
        return NAN
    if denominator <= 0.0:
        return cap if numerator > 0.0 else 0.0
    ratio = numerator / denominator
    return cap if ratio > cap else (0.0 if ratio < 0.0 else ratio)


def application_features(app: LoanApplication) -> tuple[float, ...]:
    """Model inputs for one application, in :data:`FEATURE_NAMES` order."""
    # Optional fields are unpacked inline: this runs once per event on the hot path.
    income = app.annual_inc
    amount = app.funded_amnt
    rate = app.int_rate
    sub_grade = app.sub_grade
    bal_il = app.total_bal_il
    years = app.emp_length_years
    verified = 0.0 if app.verification_status == "not_verified" else 1.0
    stability = 0.7 * (min(years, 10) / 10.0 if years is not None else 0.0) + 0.3 * verified
    revol = app.revol_util
    util = app.all_util
    delinq_amnt = app.delinq_amnt
    d2y = app.delinq_2yrs
    acc = app.acc_now_delinq
    i6 = app.inq_last_6mths
    i12 = app.inq_last_12m
    ifi = app.inq_fi
    o6 = app.open_il_6m
    o12 = app.open_il_12m
    o24 = app.open_il_24m
    ntl = app.num_il_tl
    return (
        math.log1p(amount),
        math.log1p(income),
        1.0 if income <= 0.0 else 0.0,
        guarded_ratio(amount, income, 10.0),
        NAN
        if rate is None
        else guarded_ratio(12.0 * monthly_installment(amount, rate, app.term_months), income, 5.0),
        NAN if bal_il is None else guarded_ratio(bal_il + amount, income, 20.0),
        NAN if revol is None else revol / 100.0,
        NAN if util is None else util / 100.0,
        guarded_ratio(bal_il, app.total_il_high_credit_limit, 2.0),
        NAN if rate is None else rate / 100.0,
        NAN if sub_grade is None else _SUB_GRADE_RANK[sub_grade],
        1.0 if app.term_months == 60 else 0.0,
        NAN if d2y is None else float(d2y),
        NAN if acc is None else float(acc),
        NAN if delinq_amnt is None else math.log1p(delinq_amnt),
        NAN if i6 is None else float(i6),
        NAN if i12 is None else float(i12),
        NAN if ifi is None else float(ifi),
        NAN if o6 is None else float(o6),
        NAN if o12 is None else float(o12),
        NAN if o24 is None else float(o24),
        NAN if ntl is None else float(ntl),
        NAN if years is None else float(years),
        1.0 if years is None else 0.0,
        stability,
        verified,
        NAN if o24 is None or ntl is None else guarded_ratio(o24, ntl, 1.0),
    )


# The batch evaluation. Columns are the applications' fields transposed (``None`` as given);
# NaN stands for a missing value in the float arrays, as it does in the features.
Columns = dict[str, tuple[object, ...]]
_FIELDS: tuple[str, ...] = LoanApplication.__struct_fields__


_GETTERS = tuple((name, attrgetter(name)) for name in _FIELDS)


def application_columns(apps: Sequence[LoanApplication]) -> Columns:
    """The applications' fields as columns, one tuple per field in struct order."""
    # one C-level pass per field: half the cost of transposing per-event tuples
    return {name: tuple(map(get, apps)) for name, get in _GETTERS}


class _Batch:
    """Float views of the columns, each built once however many features read it."""

    def __init__(self, columns: Columns) -> None:
        self.columns = columns
        self.n = len(columns["funded_amnt"])
        self._floats: dict[str, np.ndarray] = {}
        self._verified: np.ndarray | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        values = self._floats.get(name)
        if values is None:
            # numpy turns None into NaN for a float array: the missing marker of the features
            values = np.array(self.columns[name], dtype=np.float64)
            self._floats[name] = values
        return values

    def verified(self) -> np.ndarray:
        """1.0 where the income is verified or source-verified (two features read it)."""
        if self._verified is None:
            status = self.columns["verification_status"]
            self._verified = np.fromiter(map("not_verified".__ne__, status), np.float64, self.n)
        return self._verified


def _flag(condition: np.ndarray) -> np.ndarray:
    return condition.astype(np.float64)


def _exact(function: Callable[[float], float], values: np.ndarray) -> np.ndarray:
    # Transcendentals go through ``math`` element by element: numpy's SIMD kernels (AVX-512
    # builds) may round differently in the last bit, and training computes with ``math``.
    return np.fromiter(map(function, values.tolist()), np.float64, len(values))


def _guarded_ratios(numerator: np.ndarray, denominator: np.ndarray, cap: float) -> np.ndarray:
    """:func:`guarded_ratio` over arrays (NaN for missing)."""
    # a zero denominator, or a tiny one that overflows, is replaced below as the scalar does
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = numerator / denominator
    clipped = np.where(ratio > cap, cap, np.where(ratio < 0.0, 0.0, ratio))
    unbounded = np.where(numerator > 0.0, cap, 0.0)
    out = np.where(denominator <= 0.0, unbounded, clipped)
    return np.where(np.isnan(numerator) | np.isnan(denominator), NAN, out)


def _installment_to_income(b: _Batch) -> np.ndarray:
    amount, rate, income = b["funded_amnt"], b["int_rate"], b["annual_inc"]
    term = b["term_months"]
    r = rate / 100.0 / 12.0
    # the annuity's discount (1 + r) ** -term through Python's float power, as
    # monthly_installment computes it (NaN for a missing rate)
    discount = np.fromiter(map(pow, (1.0 + r).tolist(), (-term).tolist()), np.float64, b.n)
    # where r is below the threshold the annuity is not used (its division may be by zero)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        annuity = amount * r / (1.0 - discount)
    installment = np.where(r < 1e-12, amount / term, annuity)
    ratio = _guarded_ratios(12.0 * installment, income, 5.0)
    return np.where(np.isnan(rate), NAN, ratio)


def _per_hundred(name: str) -> Callable[[_Batch], np.ndarray]:
    return lambda b: b[name] / 100.0


def _count(name: str) -> Callable[[_Batch], np.ndarray]:
    return lambda b: b[name]


def _stability(b: _Batch) -> np.ndarray:
    years = b["emp_length_years"]
    tenure = np.where(np.isnan(years), 0.0, np.minimum(years, 10.0) / 10.0)
    return 0.7 * tenure + 0.3 * b.verified()


_RANK_OR_NAN: dict[object, float] = {None: NAN, **_SUB_GRADE_RANK}

# One entry per row of FEATURES, the same formula over a batch's columns.
_BATCH_FORMULAS: dict[str, Callable[[_Batch], np.ndarray]] = {
    "loan_amount_log": lambda b: _exact(math.log1p, b["funded_amnt"]),
    "annual_income_log": lambda b: _exact(math.log1p, b["annual_inc"]),
    "income_zero": lambda b: _flag(b["annual_inc"] <= 0.0),
    "loan_to_income": lambda b: _guarded_ratios(b["funded_amnt"], b["annual_inc"], 10.0),
    "installment_to_income": _installment_to_income,
    "debt_to_income": lambda b: np.where(
        np.isnan(b["total_bal_il"]),
        NAN,
        _guarded_ratios(b["total_bal_il"] + b["funded_amnt"], b["annual_inc"], 20.0),
    ),
    "revolving_utilization": _per_hundred("revol_util"),
    "total_utilization": _per_hundred("all_util"),
    "installment_utilization": lambda b: _guarded_ratios(
        b["total_bal_il"], b["total_il_high_credit_limit"], 2.0
    ),
    "interest_rate": _per_hundred("int_rate"),
    "sub_grade_rank": lambda b: np.fromiter(
        map(_RANK_OR_NAN.__getitem__, b.columns["sub_grade"]), np.float64, b.n
    ),
    "term_60": lambda b: _flag(b["term_months"] == 60.0),
    "delinquencies_2y": _count("delinq_2yrs"),
    "accounts_delinquent": _count("acc_now_delinq"),
    "delinquent_amount_log": lambda b: _exact(math.log1p, b["delinq_amnt"]),
    "inquiries_6m": _count("inq_last_6mths"),
    "inquiries_12m": _count("inq_last_12m"),
    "finance_inquiries": _count("inq_fi"),
    "installment_opened_6m": _count("open_il_6m"),
    "installment_opened_12m": _count("open_il_12m"),
    "installment_opened_24m": _count("open_il_24m"),
    "installment_accounts": _count("num_il_tl"),
    "employment_years": _count("emp_length_years"),
    "employment_unknown": lambda b: _flag(np.isnan(b["emp_length_years"])),
    "income_stability": _stability,
    "income_verified": _Batch.verified,
    "recent_installment_share": lambda b: _guarded_ratios(b["open_il_24m"], b["num_il_tl"], 1.0),
}
if tuple(_BATCH_FORMULAS) != FEATURE_NAMES:
    raise RuntimeError("every feature needs its batch formula, in FEATURES order")


def columns_feature_matrix(columns: Columns) -> np.ndarray:
    """Model inputs for a batch given as columns: one row per application, one column per
    feature in :data:`FEATURE_NAMES` order; equal to :func:`application_features` row by row."""
    batch = _Batch(columns)
    matrix = np.empty((batch.n, len(FEATURE_NAMES)), dtype=np.float64)
    for j, formula in enumerate(_BATCH_FORMULAS.values()):
        matrix[:, j] = formula(batch)
    return matrix


def feature_matrix(apps: Sequence[LoanApplication]) -> np.ndarray:
    """Model inputs for a batch of applications, one row each (:func:`columns_feature_matrix`)."""
    return columns_feature_matrix(application_columns(apps))
