"""A corpus of bad events: each one is a dead letter with the right reason and its raw bytes."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from flows.events import LoanApplication, application_json_schema
from flows.validation import DeadLetter, decode_application
from tests.test_features import BASE

LIMIT = 16 * 1024


def event(**changes: object) -> bytes:
    document = {**BASE, "event_time": "2024-03-01T10:00:00Z", **changes}
    return json.dumps({k: v for k, v in document.items() if v is not DROP}).encode()


DROP = object()
GOOD = event()

CORPUS: list[tuple[str, bytes, str]] = [
    ("truncated json", GOOD[:40], "malformed_json"),
    ("trailing garbage", GOOD + b" }", "malformed_json"),
    ("not json at all", b"hello world", "malformed_json"),
    ("empty payload", b"", "malformed_json"),
    ("NaN literal", GOOD.replace(b'"int_rate": 12.0', b'"int_rate": NaN'), "malformed_json"),
    (
        "Infinity literal",
        GOOD.replace(b'"annual_inc": 60000.0', b'"annual_inc": Infinity'),
        "malformed_json",
    ),
    ("json array", b"[1, 2, 3]", "not_an_object"),
    ("missing loan_id", event(loan_id=DROP), "missing_field"),
    ("missing event_time", event(event_time=DROP), "missing_field"),
    ("amount as text", event(funded_amnt="12000"), "wrong_type"),
    ("count as float", event(delinq_2yrs=1.5), "wrong_type"),
    ("bool count", event(inq_fi=True), "wrong_type"),
    ("negative amount", event(funded_amnt=-5.0), "out_of_range"),
    ("zero amount", event(funded_amnt=0), "out_of_range"),
    ("negative income", event(annual_inc=-1.0), "out_of_range"),
    ("huge amount", event(funded_amnt=1e12), "out_of_range"),
    (
        "overflowing number",
        GOOD.replace(b'"annual_inc": 60000.0', b'"annual_inc": 1e999'),
        "out_of_range",
    ),
    ("rate above 100", event(int_rate=250.0), "out_of_range"),
    ("unknown state", event(addr_state="ZZ"), "unknown_category"),
    ("unknown grade", event(sub_grade="H1"), "unknown_category"),
    ("unknown term", event(term_months=48), "unknown_category"),
    ("unknown verification", event(verification_status="maybe"), "unknown_category"),
    ("unknown event type", event(event_type="loan_closed"), "unknown_event_type"),
    ("future schema", event(schema_version=2), "unknown_category"),
    ("naive timestamp", event(event_time="2024-03-01T10:00:00"), "wrong_type"),
    ("empty id", event(event_id=""), "invalid_value"),
    ("id with spaces", event(loan_id="a b"), "invalid_value"),
    ("non-utf8 bytes", GOOD.replace(b'"CA"', b'"C\xff"'), "invalid_utf8"),
    ("oversized payload", event(note="x" * (LIMIT + 1)), "oversized"),
]


def test_the_good_event_is_accepted() -> None:
    assert isinstance(decode_application(GOOD, "test:0", LIMIT), LoanApplication)


@pytest.mark.parametrize(("case", "payload", "reason"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_event_becomes_a_dead_letter_with_reason(
    case: str, payload: bytes, reason: str
) -> None:
    result = decode_application(payload, f"test:{case}", LIMIT)
    assert isinstance(result, DeadLetter), case
    assert result.reason == reason, result.detail
    assert result.payload == payload
    assert result.detail


def test_dead_letter_ids_are_deterministic_per_origin() -> None:
    a = decode_application(b"{", "file:x:1", LIMIT)
    b = decode_application(b"{", "file:x:1", LIMIT)
    c = decode_application(b"{", "file:x:2", LIMIT)
    assert isinstance(a, DeadLetter) and isinstance(b, DeadLetter) and isinstance(c, DeadLetter)
    assert a.dead_letter_id == b.dead_letter_id != c.dead_letter_id


def test_published_json_schema_matches_the_code() -> None:
    published = Path(__file__).parents[1] / "flows" / "schemas" / "loan_application.v1.json"
    assert json.loads(published.read_text()) == json.loads(json.dumps(application_json_schema()))


def test_schema_requires_the_identifying_fields() -> None:
    schema = application_json_schema()
    required = set(schema["$defs"]["LoanApplication"]["required"])  # type: ignore[index]
    assert {"event_id", "loan_id", "borrower_id", "event_time", "funded_amnt"} <= required
    assert msgspec.json.decode(GOOD)["schema_version"] == 1
