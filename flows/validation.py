"""Parse and validate raw event payloads. Bad input is data: every failure becomes a
:class:`DeadLetter` carrying a reason code, a readable detail and the exact raw bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from itertools import compress
from operator import attrgetter
from typing import Any, TypeVar, cast, final

import msgspec

from flows.events import (
    EARLIEST,
    EARLIEST_DATE,
    ID_CHARACTERS,
    ID_FIELDS,
    ID_PATTERN,
    LATEST,
    LATEST_DATE,
    LoanApplication,
    LoanRepayment,
)
from flows.reasons import find_problem

REASONS = (
    "oversized",
    "invalid_utf8",
    "malformed_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "unknown_category",
    "invalid_value",
    "unknown_event_type",
    "too_deep",
)

# Reasons validation finds again from a dead letter's stored payload (a rebuild re-validates
# those); an oversized payload is stored as a prefix only, so its reason is kept as stored.
REDERIVABLE = frozenset(REASONS) - {"oversized"}

# What a dead letter keeps of an oversized payload.
OVERSIZED_PREFIX_BYTES = 4096

# Events are flat objects; anything nested deeper is not an event, and a parser recursing
# thousands of levels down would exhaust the stack.
MAX_DEPTH = 32

# what a decoder here decodes: one event type
E = TypeVar("E", LoanApplication, LoanRepayment)

_DECODER = msgspec.json.Decoder(LoanApplication)
_NEWLINE = ord("\n")
_EVENT_YEAR = attrgetter("event_time.year")
_DUE_YEAR = attrgetter("due_date.year")
_PAYMENT_DATE = attrgetter("payment_date")
_REPAYMENT_DECODER = msgspec.json.Decoder(LoanRepayment)
# Any run of id characters: ids are at least one character long (msgspec checks that), so a
# concatenation of ids matches exactly when every id is made of them.
_ID_RUN = re.compile(f"[{ID_CHARACTERS}]*")
_ID_GETTERS = {
    struct: tuple((name, attrgetter(name)) for name in names) for struct, names in ID_FIELDS.items()
}
# Finds the event type without a full parse; anything it misses is judged as an application,
# whose decoder then names what is wrong.
_EVENT_TYPE = re.compile(rb'"event_type"\s*:\s*"loan_repayment"')
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


@final  # a `type(x) is DeadLetter` check then narrows both branches
@dataclass(frozen=True, slots=True)
class DeadLetter:
    origin: str
    reason: str
    detail: str
    payload: bytes

    @property
    def dead_letter_id(self) -> str:
        """Deterministic per origin (a file's line, a partition's offset): whatever bytes a
        rerun finds there (a regenerated file may carry new timestamps), that position is
        dead-lettered once, as a valid event is stored once per event id."""
        return hashlib.blake2b(
            self.origin.encode(), digest_size=12, person=b"riskctl-dlq"
        ).hexdigest()


def utf8_problem(payload: bytes) -> str | None:
    """Why a payload is not UTF-8, or None. Checked before decoding, so that the reason does
    not depend on how a JSON library reports bad bytes; ASCII, the usual case, needs no decode."""
    if payload.isascii():
        return None
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start}"
    return None


def nesting_depth(payload: bytes) -> int:
    """How deep arrays and objects nest; brackets inside strings do not count. One pass, in
    linear time whatever the input (a regex over strings can backtrack quadratically)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in payload:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif byte in _CLOSE:
            depth -= 1
    return deepest


def depth_problem(payload: bytes) -> str | None:
    """Why a payload nests too deep, or None. Counting brackets first keeps the usual case,
    a flat object, to two scans in C."""
    if payload.count(b"{") + payload.count(b"[") <= MAX_DEPTH:
        return None
    depth = nesting_depth(payload)
    return f"nested {depth} levels deep, more than {MAX_DEPTH}" if depth > MAX_DEPTH else None


def ids_valid(ids: Iterable[str]) -> bool:
    """Whether every one of ``ids`` (each non-empty) is made of id characters, in one call."""
    return _ID_RUN.fullmatch("".join(ids)) is not None


def id_problem(event: LoanApplication | LoanRepayment) -> str | None:
    """The first id field of an event that is not made of id characters, said as the project's
    field checks say it (flows.reasons), or None."""
    getters = _ID_GETTERS[type(event)]
    if ids_valid([get(event) for _name, get in getters]):
        return None
    name = next(name for name, get in getters if not ids_valid([get(event)]))
    return f"`$.{name}` must match {ID_PATTERN}"


def _outside(value: date, earliest: date, latest: date) -> bool:
    # Years strictly inside the bounds cannot leave them whatever the UTC offset: the attribute
    # check spares the usual event an aware-datetime comparison (which converts offsets).
    if earliest.year < value.year < latest.year - 1:
        return False
    return not earliest <= value < latest


def time_problem(event: LoanApplication | LoanRepayment) -> str | None:
    """Why an event's times are outside what the store holds (see flows.events), or None."""
    if _outside(event.event_time, EARLIEST, LATEST):
        return f"`$.event_time` {event.event_time.isoformat()} is outside {EARLIEST:%Y}-{LATEST:%Y}"
    if type(event) is LoanRepayment:
        for name, day in (("due_date", event.due_date), ("payment_date", event.payment_date)):
            if day is not None and _outside(day, EARLIEST_DATE, LATEST_DATE):
                return f"`$.{name}` {day} is outside {EARLIEST:%Y}-{LATEST:%Y}"
    return None


def _struct(decoder: msgspec.json.Decoder[Any]) -> type[msgspec.Struct]:
    # msgspec types Decoder.type as any type form; every decoder here is built from a Struct.
    return cast("type[msgspec.Struct]", decoder.type)


def _decode(
    decoder: msgspec.json.Decoder[E], payload: bytes, origin: str
) -> E | DeadLetter:
    bad_bytes = utf8_problem(payload)
    if bad_bytes is not None:
        return DeadLetter(origin, "invalid_utf8", bad_bytes, payload)
    too_deep = depth_problem(payload)
    if too_deep is not None:
        return DeadLetter(origin, "too_deep", too_deep, payload)
    try:
        event = decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        # Rare: the reason is found by the project's own checks, never from the message.
        problem = find_problem(payload.decode("utf-8"), _struct(decoder))
        reason, detail = problem or ("invalid_value", str(exc))
        return DeadLetter(origin, reason, detail, payload)
    # before the times: the field checks find a bad id before a time out of bounds
    bad_id = id_problem(event)
    if bad_id is not None:
        return DeadLetter(origin, "invalid_value", bad_id, payload)
    out_of_range = time_problem(event)
    if out_of_range is not None:
        return DeadLetter(origin, "out_of_range", out_of_range, payload)
    return event


def oversized_letter(
    origin: str, prefix: bytes, length: int, sha256_hex: str, max_bytes: int
) -> DeadLetter:
    """The dead letter of a payload over the limit: only a bounded prefix is kept, with the
    whole payload's length and SHA-256, so that neither memory nor the table holds it whole."""
    kept = prefix[:OVERSIZED_PREFIX_BYTES]
    detail = (
        f"payload of {length} bytes exceeds {max_bytes}; sha256 {sha256_hex}; "
        f"first {len(kept)} bytes kept"
    )
    return DeadLetter(origin, "oversized", detail, kept)


def _oversized(payload: bytes, origin: str, max_bytes: int) -> DeadLetter:
    digest = hashlib.sha256(payload).hexdigest()
    return oversized_letter(origin, payload, len(payload), digest, max_bytes)


def decode_application(payload: bytes, origin: str, max_bytes: int) -> LoanApplication | DeadLetter:
    """The validated application, or the dead letter saying why it is not one."""
    if len(payload) > max_bytes:
        return _oversized(payload, origin, max_bytes)
    return _decode(_DECODER, payload, origin)


def is_repayment(payload: bytes) -> bool:
    """Whether a payload says it is a repayment (not whether it is a valid one)."""
    return _EVENT_TYPE.search(payload) is not None


def decode_event(
    payload: bytes, origin: str, max_bytes: int
) -> LoanApplication | LoanRepayment | DeadLetter:
    """A validated application or repayment, or the dead letter saying why it is neither."""
    if len(payload) > max_bytes:
        return _oversized(payload, origin, max_bytes)
    if is_repayment(payload):
        return _decode(_REPAYMENT_DECODER, payload, origin)
    return _decode(_DECODER, payload, origin)


Event = LoanApplication | LoanRepayment


def decode_events(payloads: list[bytes], max_bytes: int) -> list[Event] | None:
    """Every payload as a validated application or repayment, in order, each type decoded in
    one call; or None when any payload is not valid (or might not be), so that the caller
    judges each payload with :func:`decode_event` and every dead letter keeps its exact reason.

    It accepts exactly what :func:`decode_event` accepts: payloads are routed to a type as it
    routes them, and each group gets the same size, UTF-8, depth, schema, id and time checks,
    applied to the group at once.
    """
    if not payloads or max(map(len, payloads)) > max_bytes:
        return None
    joined = b"\n".join(payloads)
    # No payload can say it is a repayment without the word: then every one is an application.
    if b"loan_repayment" not in joined:
        return _decode_group(_DECODER, joined, len(payloads))
    routes = [is_repayment(p) for p in payloads]
    repayments = list(compress(payloads, routes))
    applications = [p for p, route in zip(payloads, routes, strict=True) if not route]
    decoded: list[list[Event] | None] = [
        _decode_group(decoder, b"\n".join(group), len(group)) if group else []
        for decoder, group in ((_DECODER, applications), (_REPAYMENT_DECODER, repayments))
    ]
    apps, reps = decoded
    if apps is None or reps is None:
        return None
    if not apps or not reps:
        return apps or reps
    next_app, next_rep = iter(apps).__next__, iter(reps).__next__
    return [next_rep() if route else next_app() for route in routes]


def _decode_group(decoder: msgspec.json.Decoder, joined: bytes, n: int) -> list[Event] | None:
    """The ``n`` payloads joined by newlines, all of the decoder's type, or None."""
    if not joined.isascii():
        return None
    # The decoder reads whitespace-separated values, so a value could span two payloads or two
    # share one. The only newlines are the n - 1 separators, each between a "}" and a "{", so
    # every payload starts with "{"; with n of them in all, each payload holds one, every "{"
    # opens an object (none sits in a string) and nothing nests: the k-th object decoded is
    # the k-th payload (anything after it inside the payload would be another value, which
    # needs a "{" of its own or fails the typed decode). No brackets: every payload is flat.
    if (
        joined.count(_NEWLINE) != n - 1
        or joined.count(b"}\n{") != n - 1
        or not (joined.startswith(b"{") and joined.endswith(b"}"))
        or joined.count(b"{") != n
        or b"[" in joined
    ):
        return None
    try:
        events: list[Event] = decoder.decode_lines(joined)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if len(events) != n:
        return None
    struct = _struct(decoder)
    if not all(ids_valid(map(get, events)) for _name, get in _ID_GETTERS[struct]):
        return None
    # the quick year check of time_problem, over the batch: only the edge years need it exact
    years = list(map(_EVENT_YEAR, events))
    if struct is LoanRepayment:
        years += map(_DUE_YEAR, events)
        years += [d.year for d in map(_PAYMENT_DATE, events) if d is not None]
    inside = EARLIEST.year < min(years) and max(years) < LATEST.year - 1
    if not inside and any(time_problem(e) is not None for e in events):
        return None
    return events
