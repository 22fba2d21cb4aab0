"""Parse and validate raw event payloads. Bad input is data: every failure becomes a
:class:`DeadLetter` carrying a reason code, a readable detail and the exact raw bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import msgspec

from flows.events import LoanApplication, LoanRepayment
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
)

_DECODER = msgspec.json.Decoder(LoanApplication)
_REPAYMENT_DECODER = msgspec.json.Decoder(LoanRepayment)
# Finds the event type without a full parse; anything it misses is judged as an application,
# whose decoder then names what is wrong.
_EVENT_TYPE = re.compile(rb'"event_type"\s*:\s*"loan_repayment"')


@dataclass(frozen=True, slots=True)
class DeadLetter:
    origin: str
    reason: str
    detail: str
    payload: bytes

    @property
    def dead_letter_id(self) -> str:
        """Deterministic per origin and payload, so a re-delivered bad event is stored once."""
        digest = hashlib.blake2b(self.payload, digest_size=12, person=b"riskctl-dlq")
        digest.update(self.origin.encode())
        return digest.hexdigest()


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


def _decode(
    decoder: msgspec.json.Decoder, payload: bytes, origin: str
) -> LoanApplication | LoanRepayment | DeadLetter:
    bad_bytes = utf8_problem(payload)
    if bad_bytes is not None:
        return DeadLetter(origin, "invalid_utf8", bad_bytes, payload)
    try:
        return decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        # Rare: the reason is found by the project's own checks, never from the message.
        problem = find_problem(payload.decode("utf-8"), decoder.type)
        reason, detail = problem or ("invalid_value", str(exc))
        return DeadLetter(origin, reason, detail, payload)


def _oversized(payload: bytes, origin: str, max_bytes: int) -> DeadLetter:
    detail = f"payload of {len(payload)} bytes exceeds {max_bytes}"
    return DeadLetter(origin, "oversized", detail, payload)


def decode_application(payload: bytes, origin: str, max_bytes: int) -> LoanApplication | DeadLetter:
    """The validated application, or the dead letter saying why it is not one."""
    if len(payload) > max_bytes:
        return _oversized(payload, origin, max_bytes)
    return _decode(_DECODER, payload, origin)  # type: ignore[return-value]


def is_repayment(payload: bytes) -> bool:
    """Whether a payload says it is a repayment (not whether it is a valid one)."""
    return _EVENT_TYPE.search(payload) is not None


def decode_event(
    payload: bytes, origin: str, max_bytes: int
) -> LoanApplication | LoanRepayment | DeadLetter:
    """A validated application or repayment, or the dead letter saying why it is neither."""
    if len(payload) > max_bytes:
        return _oversized(payload, origin, max_bytes)
    decoder = _REPAYMENT_DECODER if is_repayment(payload) else _DECODER
    return _decode(decoder, payload, origin)
