"""Numbers on screen: compact amounts, money and percentages, checked at known values across
magnitudes and, for any value, by reading the shown string back."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.number_format import compact_money, compact_number, grouped, money, percent
from cli.report_html import format_value

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
_SHOWN = re.compile(r"^(-?)\$?([0-9,]*\.?[0-9]*)(?:E(-?\d+))?([KMBT]?)$")


def read_back(shown: str) -> tuple[float, float]:
    """The value a compact string stands for, and half a unit of its last digit (its rounding)."""
    match = _SHOWN.match(shown)
    assert match, f"not a compact number: {shown!r}"
    sign, digits, exponent, suffix = match.groups()
    digits = digits.replace(",", "")
    decimals = len(digits.partition(".")[2])
    scale = _SUFFIX[suffix] * (10.0 ** int(exponent) if exponent else 1.0)
    value = float(digits) * scale
    return (-value if sign else value), 0.5 * 10.0**-decimals * scale


@pytest.mark.parametrize(
    ("value", "number", "usd"),
    [
        (0, "0", "$0.00"),
        (0.0123, "0.0123", "$0.01"),
        (45.678, "45.7", "$45.68"),
        (999, "999", "$999.00"),
        (999.6, "1K", "$999.60"),
        (1_000, "1K", "$1K"),
        (1_500, "1.5K", "$1.5K"),
        (10_000, "10K", "$10K"),
        (19_697, "19.7K", "$19.7K"),
        (196_973, "197K", "$197K"),
        (999_999, "1M", "$1M"),
        (1e6, "1M", "$1M"),
        (1_234_567, "1.23M", "$1.23M"),
        (1.5e9, "1.5B", "$1.5B"),
        (-196_973, "-197K", "-$197K"),
        (-999, "-999", "-$999.00"),
        (-1.5e9, "-1.5B", "-$1.5B"),
    ],
)
def test_compact_values_across_magnitudes(value: float, number: str, usd: str) -> None:
    assert compact_number(value) == number
    assert compact_money(value) == usd
    assert format_value(value, "short") == number
    assert format_value(value, "currencyUSD") == usd


@pytest.mark.parametrize("value", [0.125, 0.00123, 999.4, 12.5])
def test_small_values_keep_three_significant_digits(value: float) -> None:
    assert compact_number(value) == f"{value:.3g}"


def test_ten_thousand_loans_are_not_shown_as_one_thousand() -> None:
    # The scale the report once got wrong: everything from 10,000 to 999,999 a tenth too small.
    for value in (10_000, 54_321, 196_973, 999_000):
        shown, rounding = read_back(compact_number(value))
        assert abs(shown - value) <= rounding


FINITE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@given(FINITE)
def test_a_compact_number_reads_back_within_its_rounding(value: float) -> None:
    shown = compact_number(value)
    parsed, rounding = read_back(shown)
    assert abs(parsed - value) <= rounding * (1 + 1e-9) + 1e-300, shown
    # At most three significant digits (leading zeros are not), so the string stays short.
    significant = re.sub(r"\D", "", shown.split("E")[0]).lstrip("0")
    assert len(significant) <= 3 or shown.endswith("T"), shown


@given(FINITE)
def test_compact_money_reads_back_within_its_rounding(value: float) -> None:
    shown = compact_money(value)
    assert shown.lstrip("-").startswith("$"), shown
    parsed, rounding = read_back(shown)
    assert abs(parsed - value) <= rounding * (1 + 1e-9) + 1e-300, shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (32007.3, "$32,007"),
        (6045.17, "$6,045"),
        (0, "$0"),
        (-6045.5, "-$6,046"),
        (1e6, "$1,000,000"),
    ],
)
def test_money_in_tables_is_whole_dollars(value: float, shown: str) -> None:
    assert money(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"), [(1, "100.00%"), (0.0412, "4.12%"), (0, "0.00%"), (0.00004, "0.00%")]
)
def test_pd_is_a_percentage_with_fixed_decimals(value: float, shown: str) -> None:
    assert percent(value) == shown


@given(st.floats(min_value=0, max_value=1))
def test_every_pd_has_the_same_shape(value: float) -> None:
    assert re.fullmatch(r"\d{1,3}\.\d\d%", percent(value))
    assert math.isclose(float(percent(value)[:-1]) / 100, value, abs_tol=0.00005 + 1e-12)


@pytest.mark.parametrize(
    ("value", "shown"), [(2**62, "4,611,686,018,427,387,904"), (1234.5, "1,234.5"), (0, "0")]
)
def test_plain_numbers_are_grouped_and_integers_exact(value: float, shown: str) -> None:
    assert grouped(value) == shown
