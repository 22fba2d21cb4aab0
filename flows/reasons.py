"""Why the typed decoder refused a payload, found with the project's own rules.

The typed msgspec decoder is the hot path and the one judge of validity; this module runs only
after it refused a payload, to name the reason. It parses the text with the standard library's
JSON parser and checks each field against the event struct's own definitions (the types and
constraints ``msgspec.inspect`` reports for it), so no reason code depends on the wording of a
library's error messages.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from functools import cache

import msgspec
import msgspec.inspect as mi

Problem = tuple[str, str]  # (reason code, readable detail)

# The JSON kinds a value of each checked type may have; bool is its own kind, never an int.
_NUMBER = (int, float)


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> float:
    raise _NotJson(f"{name} is not a JSON number")


def _untyped(text: str) -> object:
    """The JSON document as plain Python values; NaN and infinities are not JSON."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _NotJson(f"not JSON: {exc.msg} at character {exc.pos}") from None


@cache
def _fields(struct: type[msgspec.Struct]) -> tuple[mi.Field, ...]:
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    # The event type first: a payload of another event type is that, whatever else it holds.
    return tuple(sorted(info.fields, key=lambda f: f.encode_name != "event_type"))


@cache
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def _kind(value: object) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)  # fmt: skip


def _bounds(value: float | int, t: mi.IntType | mi.FloatType) -> str | None:
    """The first numeric bound the value breaks, as text, or None."""
    for bound, holds, sign in (
        (t.gt, lambda b: value > b, ">"),
        (t.ge, lambda b: value >= b, ">="),
        (t.lt, lambda b: value < b, "<"),
        (t.le, lambda b: value <= b, "<="),
    ):
        if bound is not None and not holds(bound):
            return f"{sign} {bound}"
    return None


def _check_int(value: object, t: mi.IntType) -> Problem | None:
    if type(value) is not int:
        return "wrong_type", f"expected an integer, got {_kind(value)}"
    broken = _bounds(value, t)
    return None if broken is None else ("out_of_range", f"must be {broken}, got {value}")


def _check_float(value: object, t: mi.FloatType) -> Problem | None:
    if type(value) not in _NUMBER:
        return "wrong_type", f"expected a number, got {_kind(value)}"
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:
        return "out_of_range", "number too large for a float"
    if not math.isfinite(number):
        return "out_of_range", "number too large for a float"
    broken = _bounds(number, t)
    return None if broken is None else ("out_of_range", f"must be {broken}, got {value}")


def _check_str(value: object, t: mi.StrType) -> Problem | None:
    if type(value) is not str:
        return "wrong_type", f"expected a string, got {_kind(value)}"
    if t.min_length is not None and len(value) < t.min_length:
        return "invalid_value", f"must have at least {t.min_length} characters"
    if t.max_length is not None and len(value) > t.max_length:
        return "invalid_value", f"must have at most {t.max_length} characters"
    return None if t.pattern is None else _pattern_problem(value, t.pattern, whole=False)


def _pattern_problem(value: str, pattern: str, *, whole: bool) -> Problem | None:
    # msgspec searches its own patterns; the ones checked after decoding must match the whole
    # value, as JSON Schema reads "$" (the end, never before a trailing newline)
    compiled = _pattern(pattern)
    found = compiled.fullmatch(value) if whole else compiled.search(value)
    return None if found is not None else ("invalid_value", f"must match {pattern}")


def _check_literal(value: object, t: mi.LiteralType, name: str) -> Problem | None:
    kinds = {_kind(v) for v in t.values}
    if _kind(value) not in kinds:
        return "wrong_type", f"expected {' or '.join(sorted(kinds))}, got {_kind(value)}"
    if value not in t.values:
        reason = "unknown_event_type" if name == "event_type" else "unknown_category"
        return reason, f"{value!r} is not one of {list(t.values)}"
    return None


def _check_time(value: object, t: mi.DateTimeType | mi.DateType) -> Problem | None:
    if type(value) is not str:
        return "wrong_type", f"expected an RFC 3339 string, got {_kind(value)}"
    target = datetime if isinstance(t, mi.DateTimeType) else date
    try:
        # msgspec's own parser, so that a time is read exactly as the hot path reads it; only
        # whether it raises matters here, never what it says
        parsed = msgspec.convert(value, target)
    except msgspec.ValidationError:
        return "invalid_value", f"{value!r} is not an RFC 3339 {target.__name__}"
    # a datetime type converts to a datetime: the isinstance only narrows the union
    naive = isinstance(parsed, datetime) and parsed.tzinfo is None
    if isinstance(t, mi.DateTimeType) and t.tz and naive:
        return "wrong_type", "expected a time with a UTC offset"
    return None


def _check(value: object, t: mi.Type, name: str) -> Problem | None:
    if isinstance(t, mi.Metadata):  # a description for the schema; the type is inside
        problem = _check(value, t.type, name)
        # a pattern published in the schema but checked after decoding (flows.events.Id)
        pattern = (t.extra_json_schema or {}).get("pattern")
        if problem is None and pattern is not None and isinstance(value, str):
            return _pattern_problem(value, pattern, whole=True)
        return problem
    if isinstance(t, mi.UnionType):
        problems = [_check(value, member, name) for member in t.types]
        if any(p is None for p in problems):
            return None
        # the first member that is not null names the problem (fields are `T | None`)
        return next(
            (p for m, p in zip(t.types, problems, strict=True) if not isinstance(m, mi.NoneType)),
            problems[0],
        )
    if isinstance(t, mi.NoneType):
        return None if value is None else ("wrong_type", f"expected null, got {_kind(value)}")
    if isinstance(t, mi.LiteralType):
        return _check_literal(value, t, name)
    if isinstance(t, mi.StrType):
        return _check_str(value, t)
    if isinstance(t, mi.IntType):
        return _check_int(value, t)
    if isinstance(t, mi.FloatType):
        return _check_float(value, t)
    if isinstance(t, mi.DateTimeType | mi.DateType):
        return _check_time(value, t)
    raise TypeError(f"no check for field type {t!r}")  # a new field type needs a check here


def find_problem(text: str, struct: type[msgspec.Struct]) -> Problem | None:
    """The first problem of a JSON text as an event of the given struct, or None if its
    fields all hold (the caller then falls back to a generic reason)."""
    try:
        document = _untyped(text)
    except _NotJson as exc:
        return "malformed_json", str(exc)
    except RecursionError:  # callers limit nesting first; this keeps the check total
        return "too_deep", "nesting too deep to parse"
    if type(document) is not dict:
        return "not_an_object", f"expected an object, got {_kind(document)}"
    for field in _fields(struct):
        where = f"`$.{field.encode_name}`"
        if field.encode_name not in document:
            if field.required:
                return "missing_field", f"{where} is required"
            continue
        problem = _check(document[field.encode_name], field.type, field.encode_name)
        if problem is not None:
            return problem[0], f"{where} {problem[1]}"
    return None
