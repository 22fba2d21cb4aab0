"""Query results as ClickHouse itself renders them, with their ClickHouse types.

The Arrow format loses types on the way (a second-precision DateTime arrives as a bare UInt32,
an Enum as its number, IPv4 as an integer, Int128 as 16 bytes), so results meant for people and
for other programs are read in ClickHouse's ``JSONCompactEachRowWithNamesAndTypes`` format:
ClickHouse renders every type itself (maps as JSON objects, enums by name, IP addresses, UUIDs,
dates as dates) and names each column's type, which is all the rendering here needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flows.sql_literal import sql_string
from flows.store import Store, StoreError

FORMAT = "JSONCompactEachRowWithNamesAndTypes"
# The outer wrappers that do not change how a value is written.
_WRAPPERS = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")
_DATETIME = re.compile(r"^DateTime(?:64)?(?:\((?:\d+)?(?:,\s*)?(?:'([^']*)')?\))?$")
_NUMERIC = re.compile(r"^(?:U?Int\d+|Float\d+|BFloat16|Decimal.*|Bool)$")
# Servers may quote these in JSON (output_format_json_quote_64bit_integers); they are numbers.
_WIDE_INT = re.compile(r"^U?Int(?:64|128|256)$")


class StatementError(StoreError):
    """The SQL is not exactly one statement ClickHouse can parse."""


@dataclass(frozen=True)
class Result:
    """Column names, their ClickHouse types, and rows of JSON values (times as ISO 8601)."""

    names: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> Result:
        """Rows built in Python (not read from ClickHouse), typed by their first row's values."""
        if not records:
            return cls((), (), ())
        names = tuple(records[0])
        kinds = {bool: "Bool", int: "Int64", float: "Float64", list: "Array(String)"}
        types = tuple(kinds.get(type(records[0][n]), "String") for n in names)
        return cls(names, types, tuple(tuple(r[n] for n in names) for r in records))

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.names, row, strict=True)) for row in self.rows]

    def is_numeric(self, index: int) -> bool:
        return bool(_NUMERIC.match(base_type(self.types[index])))


def base_type(kind: str) -> str:
    """``Nullable(LowCardinality(String))`` is ``String``."""
    while match := _WRAPPERS.match(kind):
        kind = match.group(1)
    return kind


def one_statement(store: Store, sql: str) -> str:
    """The SQL if ClickHouse's own parser reads it as exactly one statement.

    ``formatQuerySingleLine`` parses without running anything and refuses a second statement,
    so ``SELECT 1; DROP TABLE t`` is rejected here before any of it runs.
    """
    try:
        # A literal, not a parameter: parameter values must escape newlines themselves.
        store.query_bytes(f"SELECT formatQuerySingleLine({sql_string(sql)})", "TSV")
    except StoreError as exc:
        raise StatementError(f"not one SQL statement: {exc}") from exc
    return sql


def _unescaped(value: Any) -> Any:
    """Strings carrying bytes that are not UTF-8 (decoded with surrogateescape) as ``\\xNN``
    escapes, so binary data prints readably and never stops the output."""
    if isinstance(value, str):
        if any("\udc80" <= ch <= "\udcff" for ch in value):
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return value
    if isinstance(value, list):
        return [_unescaped(v) for v in value]
    if isinstance(value, dict):
        return {_unescaped(k): _unescaped(v) for k, v in value.items()}
    return value


def _iso(text: str, zone: ZoneInfo) -> str:
    """ClickHouse's ``2026-12-01 10:00:00[.fff]`` in ``zone`` as ISO 8601 with its offset."""
    moment = datetime.fromisoformat(text).replace(tzinfo=zone)
    offset = moment.isoformat()[-6:]
    return text.replace(" ", "T", 1) + ("Z" if offset == "+00:00" else offset)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise StoreError(f"unknown time zone {name!r} in a result column") from exc


def parse(raw: bytes, session_zone: str | None = None) -> Result:
    """A ``JSONCompactEachRowWithNamesAndTypes`` output as a :class:`Result`.

    Top-level DateTime columns become ISO 8601 strings with the offset of the column's zone
    (or of ``session_zone``, the session's, for a DateTime without its own).
    """
    # Bytes that are not UTF-8 survive decoding as lone surrogates and are escaped afterwards.
    lines = raw.decode("utf-8", "surrogateescape").splitlines()
    if not lines:
        return Result((), (), ())
    names = tuple(_unescaped(json.loads(lines[0])))
    types = tuple(json.loads(lines[1])) if len(lines) > 1 else ("",) * len(names)
    zones: dict[int, ZoneInfo] = {}
    wide_ints = []
    for index, kind in enumerate(types):
        match = _DATETIME.match(base_type(kind))
        if match:
            zones[index] = _zone(match.group(1) or session_zone or "UTC")
        elif _WIDE_INT.match(base_type(kind)):
            wide_ints.append(index)
    rows = []
    for line in lines[2:]:
        row = [_unescaped(v) for v in json.loads(line)]
        for index, zone in zones.items():
            if isinstance(row[index], str):
                row[index] = _iso(row[index], zone)
        for index in wide_ints:
            if isinstance(row[index], str):
                row[index] = int(row[index])
        rows.append(tuple(row))
    return Result(names, types, tuple(rows))


def needs_session_zone(raw: bytes) -> bool:
    """Whether a result has a DateTime column without a zone of its own."""
    lines = raw.split(b"\n", 2)
    if len(lines) < 2 or not lines[1]:
        return False
    for kind in json.loads(lines[1]):
        match = _DATETIME.match(base_type(kind))
        if match and not match.group(1):
            return True
    return False


def query_result(store: Store, sql: str, params: Mapping[str, Any] | None = None) -> Result:
    """Run a statement and read its result with types; an empty result for a statement that
    returns nothing (DDL or INSERT with ``sql --write``)."""
    raw = store.query_bytes(sql, FORMAT, dict(params) if params else None)
    zone = None
    if needs_session_zone(raw):
        zone = store.query_bytes("SELECT timezone()", "TSV").decode().strip()
    return parse(raw, zone)
