"""Parse and validate raw event payloads. Bad input is data: every failure becomes a
:class:`DeadLetter` carrying a reason code, a readable detail and the exact raw bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import msgspec

from flows.events import LoanApplication, LoanRepayment

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

# msgspec's messages are stable and specific; the first match names the reason.
_VALIDATION_REASONS = (
    (re.compile(r"^Object missing required field"), "missing_field"),
    (re.compile(r"^Invalid enum value"), "unknown_category"),
    (re.compile(r"^Expected `\w+` (>=|<=|>|<) |^Number out of range"), "out_of_range"),
    (re.compile(r"^Expected `str` (of length|matching regex)"), "invalid_value"),
    (re.compile(r"^Expected `object`, got"), "not_an_object"),
    (re.compile(r"^Expected `"), "wrong_type"),
)


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


def classify(error: msgspec.ValidationError) -> str:
    message = str(error)
    if "`$.event_type`" in message and message.startswith("Invalid enum value"):
        return "unknown_event_type"
    for pattern, reason in _VALIDATION_REASONS:
        if pattern.search(message):
            return reason
    return "invalid_value"


def _decode(
    decoder: msgspec.json.Decoder, payload: bytes, origin: str
) -> LoanApplication | LoanRepayment | DeadLetter:
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as exc:
        return DeadLetter(origin, classify(exc), str(exc), payload)
    except msgspec.DecodeError as exc:
        return DeadLetter(origin, "malformed_json", str(exc), payload)
    except UnicodeDecodeError as exc:
        return DeadLetter(origin, "invalid_utf8", str(exc), payload)


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
