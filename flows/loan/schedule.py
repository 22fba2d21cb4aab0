"""A loan's calendar and amortization: when each installment falls due and what it is.

Installment ``n`` falls due ``n`` calendar months after the origination date (the UTC date of
the application's ``event_time``), the day clamped to the month's end: :func:`due_date`. Every
installment is the amortized payment rounded to cents (:func:`amortization_schedule`), the last
one adjusted so the balance ends at zero. Pure: no I/O, no clock.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from flows.features import monthly_installment

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def add_months(start: date, months: int) -> date:
    """``start`` moved by whole calendar months, the day clamped to the target month's end."""
    y, m0 = divmod(start.month - 1 + months, 12)
    year = start.year + y
    last = 29 if m0 == 1 and _is_leap(year) else _DAYS_IN_MONTH[m0]
    return date(year, m0 + 1, min(start.day, last))


@lru_cache(maxsize=1 << 16)
def due_date(origination: date, installment_number: int) -> date:
    """The contractual due date of installment ``installment_number`` (1-based).

    Cached: loans originated on the same day share their due dates.
    """
    return add_months(origination, installment_number)


@lru_cache(maxsize=1 << 12)
def due_days(origination: date, term_months: int) -> tuple[int, ...]:
    """``due_date(origination, n).toordinal()`` for n = 0 .. term_months (see LoanState).

    Cached so that loans opened on the same day with the same term share one tuple.
    """
    return tuple(due_date(origination, n).toordinal() for n in range(term_months + 1))


def months_on_book(origination: date, as_of: date) -> int:
    """Whole calendar months from ``origination`` to ``as_of`` (0 before the first due date)."""
    months = (as_of.year - origination.year) * 12 + as_of.month - origination.month
    if months > 0 and due_date(origination, months) > as_of:
        months -= 1
    return months if months > 0 else 0


def installments_due(origination: date, as_of: date, term_months: int) -> int:
    """How many installments have fallen due on or before ``as_of`` (0 to ``term_months``)."""
    return min(months_on_book(origination, as_of), term_months)


def amortization_schedule(
    amount: float, rate_pct: float, term_months: int
) -> list[tuple[int, float, float, float, float]]:
    """The level-payment schedule as ``(n, payment, interest, principal, balance)`` rows.

    The payment is :func:`~flows.features.monthly_installment` rounded to cents; each month's
    interest is the balance times the monthly rate, rounded to cents; the last payment is
    adjusted so the balance ends at exactly zero (rounding leaves a few cents either way).
    """
    r = rate_pct / 100.0 / 12.0
    payment = round(monthly_installment(amount, rate_pct, term_months), 2)
    balance = round(amount, 2)
    rows: list[tuple[int, float, float, float, float]] = []
    for n in range(1, term_months + 1):
        interest = round(balance * r, 2)
        if n == term_months:
            principal = balance
            pay = round(principal + interest, 2)
        else:
            pay = payment
            principal = round(pay - interest, 2)
        balance = round(balance - principal, 2)
        rows.append((n, pay, interest, principal, balance))
    return rows
