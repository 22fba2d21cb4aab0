"""A corpus of bad events: each one is a dead letter with the right reason and its raw bytes;
the reasons come from the project's own checks, which agree with the typed decoder."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.batches import dead_letter_table
from flows.connectors.archive_source import archived_items
from flows.events import EARLIEST, LATEST, LoanApplication, LoanRepayment, application_json_schema
from flows.reasons import find_problem
from flows.schema_publish import PUBLISHED, SCHEMA_DIR, normalized, render
from flows.validation import (
    OVERSIZED_PREFIX_BYTES,
    REASONS,
    DeadLetter,
    decode_application,
    decode_event,
    id_problem,
    time_problem,
)
from tests.unit.test_features import BASE

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
    ("id with a trailing newline", event(borrower_id="B1\n"), "invalid_value"),
    ("non-ASCII id", event(event_id="app-é"), "invalid_value"),
    (
        "bad id and a time out of bounds",
        event(loan_id="a/b", event_time="1850-01-01T00:00:00Z"),
        "invalid_value",
    ),
    ("non-utf8 bytes", GOOD.replace(b'"CA"', b'"C\xff"'), "invalid_utf8"),
    ("oversized payload", event(note="x" * (LIMIT + 1)), "oversized"),
    ("far oversized payload", event(note="x" * (50 * LIMIT)), "oversized"),
    ("deeply nested", event(note="x").replace(b'"x"', b"[" * 3000 + b"]" * 3000), "too_deep"),
    ("nested just too deep", event(note="x").replace(b'"x"', b"[" * 32 + b"]" * 32), "too_deep"),
    ("year 1850", event(event_time="1850-01-01T00:00:00Z"), "out_of_range"),
    ("year 9999", event(event_time="9999-12-31T23:59:59Z"), "out_of_range"),
    ("just before 1970", event(event_time="1969-12-31T23:59:59.999Z"), "out_of_range"),
    ("1970 by its offset", event(event_time="1970-01-01T00:30:00+01:00"), "out_of_range"),
    ("year 2100", event(event_time="2100-01-01T00:00:00Z"), "out_of_range"),
]

IN_RANGE = [
    event(event_time="1970-01-01T00:00:00Z"),
    event(event_time="2099-12-31T23:59:59.999Z"),
    event(note="x").replace(b'"x"', b"[" * 31 + b"]" * 31),
    event(note="[[[[" * 40),  # brackets inside a string do not nest
]


@pytest.mark.parametrize("payload", IN_RANGE, ids=range(len(IN_RANGE)))
def test_edges_inside_the_limits_are_accepted(payload: bytes) -> None:
    assert isinstance(decode_application(payload, "test", LIMIT), LoanApplication)


def test_the_good_event_is_accepted() -> None:
    assert isinstance(decode_application(GOOD, "test:0", LIMIT), LoanApplication)


@pytest.mark.parametrize(("case", "payload", "reason"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_event_becomes_a_dead_letter_with_reason(
    case: str, payload: bytes, reason: str
) -> None:
    result = decode_application(payload, f"test:{case}", LIMIT)
    assert isinstance(result, DeadLetter), case
    assert result.reason == reason, result.detail
    # the exact bytes, but for an oversized payload: a bounded prefix, its length and hash
    if reason == "oversized":
        assert result.payload == payload[:OVERSIZED_PREFIX_BYTES]
        digest = hashlib.sha256(payload).hexdigest()
        assert f"payload of {len(payload)} bytes" in result.detail and digest in result.detail
    else:
        assert result.payload == payload
    assert result.detail


def test_dead_letter_ids_are_deterministic_per_origin() -> None:
    a = decode_application(b"{", "file:x:1", LIMIT)
    b = decode_application(b"{", "file:x:1", LIMIT)
    c = decode_application(b"{", "file:x:2", LIMIT)
    assert isinstance(a, DeadLetter) and isinstance(b, DeadLetter) and isinstance(c, DeadLetter)
    assert a.dead_letter_id == b.dead_letter_id != c.dead_letter_id


REPAYMENT = {
    "schema_version": 1,
    "event_type": "loan_repayment",
    "event_id": "rep-1",
    "loan_id": "L1",
    "event_time": "2024-04-15T09:00:00Z",
    "installment_number": 1,
    "due_date": "2024-04-15",
    "amount_due": 332.14,
    "amount_paid": 332.14,
    "payment_date": "2024-04-14",
    "outstanding_balance": 9768.0,
}


def repayment(**changes: object) -> bytes:
    document = {**REPAYMENT, **changes}
    return json.dumps({k: v for k, v in document.items() if v is not DROP}).encode()


REPAYMENT_CORPUS: list[tuple[str, bytes, str]] = [
    ("installment zero", repayment(installment_number=0), "out_of_range"),
    ("negative payment", repayment(amount_paid=-1), "out_of_range"),
    ("missing due date", repayment(due_date=DROP), "missing_field"),
    ("due date as number", repayment(due_date=20240415), "wrong_type"),
    ("payment date not a date", repayment(payment_date="yesterday"), "invalid_value"),
    ("time not a time", repayment(event_time="soon"), "invalid_value"),
    ("bad id", repayment(event_id="x" * 65), "invalid_value"),
    ("installment as text", repayment(installment_number="1"), "wrong_type"),
    ("object as amount", repayment(amount_due={"value": 1}), "wrong_type"),
    ("non-utf8 id", repayment(loan_id="L1").replace(b'"L1"', b'"L\xc3\x28"'), "invalid_utf8"),
    ("cut short", repayment()[:-2], "malformed_json"),
    ("due in 9999", repayment(due_date="9999-12-31"), "out_of_range"),
    ("paid in 1960", repayment(payment_date="1960-05-01"), "out_of_range"),
    ("sent in 9999", repayment(event_time="9999-01-01T00:00:00Z"), "out_of_range"),
]


@pytest.mark.parametrize(
    ("case", "payload", "reason"), REPAYMENT_CORPUS, ids=[c[0] for c in REPAYMENT_CORPUS]
)
def test_bad_repayment_becomes_a_dead_letter_with_reason(
    case: str, payload: bytes, reason: str
) -> None:
    result = decode_event(payload, f"test:{case}", LIMIT)
    assert isinstance(result, DeadLetter), case
    assert (result.reason, result.payload) == (reason, payload), result.detail


def test_the_good_repayment_is_accepted() -> None:
    assert isinstance(decode_event(repayment(), "test:0", LIMIT), LoanRepayment)


def test_every_reason_has_a_case() -> None:
    covered = {reason for _, _, reason in CORPUS + REPAYMENT_CORPUS}
    assert covered == set(REASONS)


def test_utf8_is_checked_before_the_json_decoder_sees_the_bytes() -> None:
    # Valid JSON structure, invalid UTF-8 inside a string the event does not even use: the
    # reason must not depend on what (or whether) the JSON library reports.
    payload = event(note="x").replace(b'"x"', b'"\xed\xa0\x80"')  # an encoded surrogate
    result = decode_application(payload, "test", LIMIT)
    assert isinstance(result, DeadLetter) and result.reason == "invalid_utf8"


# Values a field may be given: right and wrong kinds, edges of the ranges, categories.
EDGE_STRINGS = [
    "CA", "ZZ", "B3", "H1", "verified", "loan_application", "loan_repayment", "x" * 64,
    "2024-03-01T10:00:00Z", "2024-03-01T10:00:00", "2024-03-01", "2024-02-30",
    "2024-03-01T10:00:00+05:30", "a b", "",
]  # fmt: skip
EDGE_NUMBERS = [0, 1, 36, 60, 600, 601, 1000, 1001, 1e7, 1e9, 1e10, -0.0, 0.5]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(EDGE_NUMBERS)
    | st.text(max_size=70)
    | st.sampled_from(EDGE_STRINGS),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=4,
)
GOOD_DOCUMENTS = {
    LoanApplication: json.loads(GOOD),
    LoanRepayment: REPAYMENT,
}


@st.composite
def mutated(draw: st.DrawFn, struct: type[msgspec.Struct]) -> bytes:
    """A good event of the struct with a few fields changed, dropped or added."""
    document: dict[str, Any] = copy.deepcopy(GOOD_DOCUMENTS[struct])
    for name in draw(st.lists(st.sampled_from(sorted(document)), max_size=3, unique=True)):
        if draw(st.booleans()):
            document[name] = draw(JSON_VALUES)
        else:
            del document[name]
    document.update(draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=2)))
    return json.dumps(document).encode()


@pytest.mark.parametrize("struct", [LoanApplication, LoanRepayment], ids=lambda s: s.__name__)
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_own_checks_agree_with_the_typed_decoder(
    struct: type[msgspec.Struct], data: st.DataObject
) -> None:
    payload = data.draw(mutated(struct))
    try:
        # the typed judgement: the decoder, then the id check it leaves to after decoding
        accepted = id_problem(msgspec.json.decode(payload, type=struct)) is None
    except msgspec.ValidationError:
        accepted = False
    problem = find_problem(payload.decode(), struct)
    assert accepted == (problem is None), problem
    if problem is not None:
        assert problem[0] in REASONS


@settings(max_examples=500, deadline=None)
@given(payload=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_classification_never_raises_on_arbitrary_bytes(payload: bytes) -> None:
    result = decode_event(payload, "fuzz", LIMIT)
    assert isinstance(result, LoanApplication | LoanRepayment | DeadLetter)
    if isinstance(result, DeadLetter):
        assert result.reason in REASONS and result.detail and result.payload == payload


@settings(max_examples=300, deadline=None)
@given(document=JSON_VALUES)
def test_classification_never_raises_on_arbitrary_json(document: object) -> None:
    for struct in (LoanApplication, LoanRepayment):
        problem = find_problem(json.dumps(document), struct)
        assert problem is None or (problem[0] in REASONS and problem[1])


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_json_schema_matches_the_code(name: str) -> None:
    published = json.loads((SCHEMA_DIR / name).read_text())
    assert normalized(published) == normalized(json.loads(render(PUBLISHED[name]())))


def test_schema_comparison_ignores_cosmetics_but_not_content() -> None:
    schema = json.loads(render(application_json_schema()))
    cosmetic = copy.deepcopy(schema)
    definition = cosmetic["$defs"]["LoanApplication"]
    definition["description"] = "\n    ".join(definition["description"].split(" "))
    definition["required"].reverse()
    definition["properties"]["addr_state"]["enum"].reverse()
    reordered = json.loads(json.dumps(dict(reversed(list(cosmetic.items())))))
    assert normalized(reordered) == normalized(schema)
    changed = copy.deepcopy(schema)
    changed["$defs"]["LoanApplication"]["properties"]["funded_amnt"]["maximum"] = 1e8
    assert normalized(changed) != normalized(schema)


def test_schema_requires_the_identifying_fields() -> None:
    schema = application_json_schema()
    required = set(schema["$defs"]["LoanApplication"]["required"])  # type: ignore[index]
    assert {"event_id", "loan_id", "borrower_id", "event_time", "funded_amnt"} <= required
    assert msgspec.json.decode(GOOD)["schema_version"] == 1


OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))])
NEAR_EDGES = st.sampled_from([datetime(1970, 1, 1), datetime(2100, 1, 1)]).flatmap(
    lambda edge: st.datetimes(
        min_value=edge - timedelta(days=2), max_value=edge + timedelta(days=2), timezones=OFFSETS
    )
)


@given(moment=st.datetimes(timezones=OFFSETS) | NEAR_EDGES)
def test_the_quick_year_check_agrees_with_the_exact_bounds(moment: datetime) -> None:
    app = msgspec.structs.replace(
        msgspec.convert(json.loads(GOOD), LoanApplication), event_time=moment
    )
    assert (time_problem(app) is None) == (EARLIEST <= moment < LATEST)


def test_a_rebuild_keeps_the_reason_of_a_payload_stored_as_a_prefix() -> None:
    # A rebuild re-validates dead letters from their stored bytes; an oversized one holds a
    # prefix only, which would otherwise come back as malformed JSON.
    letters = [
        decode_application(event(note="x" * (2 * LIMIT)), "file:a:1", LIMIT),
        decode_application(b"{", "file:a:2", LIMIT),
    ]
    table = dead_letter_table(letters, datetime(2024, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]
    items = archived_items(table, "dead_letters")
    assert [(i.error.reason if i.error else None) for i in items] == ["oversized", None]


ID_TEXT = st.text(st.sampled_from("aZ09_.:-/ \n\té"), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(ids=st.tuples(ID_TEXT, ID_TEXT, ID_TEXT))
def test_ids_checked_after_decoding_say_what_the_field_checks_say(
    ids: tuple[str, str, str],
) -> None:
    payload = event(event_id=ids[0], loan_id=ids[1], borrower_id=ids[2])
    result = decode_event(payload, "t", LIMIT)
    problem = find_problem(payload.decode(), LoanApplication)
    if problem is None:
        assert isinstance(result, LoanApplication)
        assert all(re.fullmatch(r"[A-Za-z0-9_.:-]+", i) for i in ids)
    else:
        assert isinstance(result, DeadLetter)
        assert (result.reason, result.detail) == problem
