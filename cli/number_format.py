"""Numbers as people read them: compact amounts (``197K``), money and percentages.

Formatting goes through Babel (CLDR data) rather than hand-made scaling: its compact patterns
pick the unit and carry rounding over to the next one (999,999 is ``1M``, not ``1000K``), which
is where hand-written scaling went wrong before. One fixed locale keeps output the same on
every machine, whatever the user's own locale.
"""

from __future__ import annotations

import math

from babel.numbers import (
    format_compact_currency,
    format_compact_decimal,
    format_currency,
    format_decimal,
    format_percent,
    format_scientific,
)

LOCALE = "en_US"
# Compact amounts keep three significant digits, as Grafana shows them (1.23M, 19.7K, 197K).
SIGNIFICANT = 3
# Below this a value rounded to three significant digits stays under 1,000 and shows in full.
_COMPACT_FROM = 999.5
# Outside this range compact units run out (1000T) or zeros pile up: scientific notation.
_SCIENTIFIC_BELOW, _SCIENTIFIC_FROM = 1e-3, 1e15


def _fraction_digits(whole: str) -> int:
    """Fraction digits that bring a compact string's integer part to three significant digits."""
    digits = sum(ch.isdigit() for ch in whole.split(".")[0])
    return max(0, SIGNIFICANT - digits)


def compact_number(value: float) -> str:
    """``0``, ``0.0123``, ``999``, ``1K``, ``19.7K``, ``197K``, ``1.5B``: three significant
    digits."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if not _SCIENTIFIC_BELOW <= abs(value) < _SCIENTIFIC_FROM:
        return format_scientific(value, "0.##E0", locale=LOCALE)
    if abs(value) < _COMPACT_FROM:
        return format_decimal(value, "@##", locale=LOCALE)
    # Babel compacts from 1,000 on; 999.5 to 1,000 rounds to 1K at three significant digits.
    value = math.copysign(max(abs(value), 1000.0), value)
    # First pass finds how many integer digits the chosen unit leaves, second sets the rest.
    whole = format_compact_decimal(value, locale=LOCALE, fraction_digits=0)
    return format_compact_decimal(value, locale=LOCALE, fraction_digits=_fraction_digits(whole))


def compact_money(value: float, currency: str = "USD") -> str:
    """``$45.68``, ``-$999.60``, ``$1K``, ``$197K``, ``$1.23M``."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= _SCIENTIFIC_FROM:
        return ("-$" if value < 0 else "$") + format_scientific(abs(value), "0.##E0", locale=LOCALE)
    value += 0.0  # -0.0 shows as $0.00
    if abs(value) < 1000:
        return format_currency(value, currency, locale=LOCALE)
    whole = format_compact_currency(value, currency, locale=LOCALE, fraction_digits=0)
    return format_compact_currency(
        value, currency, locale=LOCALE, fraction_digits=_fraction_digits(whole)
    )


def money(value: float, currency: str = "USD") -> str:
    """Whole currency units with grouping, for table cells: ``$32,007``, ``-$6,045``."""
    if not (math.isfinite(value) and abs(value) < _SCIENTIFIC_FROM):
        return compact_money(value, currency)
    return format_currency(
        round(value), currency, format="¤#,##0", locale=LOCALE, currency_digits=False
    )


def percent(value: float, decimals: int = 2) -> str:
    """A fraction as a percentage with fixed decimals: ``0.0412`` is ``4.12%``, ``1`` is
    ``100.00%``."""
    if not (math.isfinite(value) and abs(value) < _SCIENTIFIC_FROM / 100):
        return compact_number(value * 100) + "%"
    pattern = "#,##0." + "0" * decimals + "%" if decimals else "#,##0%"
    return format_percent(value + 0.0, pattern, locale=LOCALE)


def grouped(value: float | int) -> str:
    """A plain number with thousands separators and at most six decimals,
    ``1,234.5``; scientific notation where that would hide the value. Integers stay exact."""
    if isinstance(value, int):
        return format_decimal(value, "#,##0", locale=LOCALE)
    if value != 0 and not (_SCIENTIFIC_BELOW <= abs(value) < _SCIENTIFIC_FROM):
        return compact_number(value)
    return format_decimal(value + 0.0, "#,##0.######", locale=LOCALE)
