"""ClickHouse string literals built in Python, for text that cannot travel as a query
parameter (parameter values are parsed in an escaped format of their own)."""

from __future__ import annotations

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}


def sql_string(value: str) -> str:
    """A ClickHouse string literal holding exactly ``value``: backslashes, quotes and control
    characters escaped, so nothing in it ends the literal, the line or the statement."""
    return "'" + "".join(_escape(ch) for ch in value) + "'"


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ord(ch) < 0x20 or ch == "\x7f":
        return f"\\x{ord(ch):02x}"
    return ch
