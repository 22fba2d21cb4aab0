"""Batch decoding accepts exactly what event-by-event decoding accepts: a batch it returns
equals the events one by one (applications and repayments, in order), and a batch holding
anything else (a dead letter, payloads that a stream decoder could read across their
boundaries) is left to the per-event path, so every dead letter keeps its exact reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.events import LoanApplication, LoanRepayment
from flows.validation import DeadLetter, decode_event, decode_events
from tests.unit.test_validation import (
    CORPUS,
    GOOD,
    IN_RANGE,
    LIMIT,
    REPAYMENT_CORPUS,
    event,
    mutated,
    repayment,
)
from training.dataset import LendingClub
from training.replay import ReplayPlan, application_events

START = datetime(2024, 1, 1, tzinfo=UTC)
OTHER = event(event_id="app-2", loan_id="L2", funded_amnt=5000.0, annual_inc=0.0)


def judged(payloads: list[bytes]) -> list[LoanApplication | LoanRepayment] | None:
    """The batch decode, checked against the per-event path it must agree with."""
    batch = decode_events(payloads, LIMIT)
    singles = [decode_event(p, f"t:{i}", LIMIT) for i, p in enumerate(payloads)]
    # Declining a valid batch only costs time (it is judged event by event); accepting one the
    # per-event path would judge differently is the defect.
    if batch is not None:
        assert batch == singles
    return batch


@pytest.mark.parametrize(
    ("case", "payload"),
    [(c[0], c[1]) for c in CORPUS + REPAYMENT_CORPUS],
    ids=[c[0] for c in CORPUS + REPAYMENT_CORPUS],
)
def test_one_bad_payload_sends_the_batch_to_the_per_event_path(case: str, payload: bytes) -> None:
    assert judged([GOOD, payload, OTHER]) is None, case


# Payloads a whitespace-separated stream decoder could misread: each decodes to as many
# values as there are payloads while some payload is not one event by itself.
CUT = GOOD.index(b", ") + 1
STRUCTURAL: list[tuple[str, list[bytes]]] = [
    ("an event cut in two", [GOOD[:CUT], GOOD[CUT:]]),
    ("cut, then two events on one line", [GOOD[:CUT], GOOD[CUT:] + b" " + OTHER]),
    ("two events on one line", [GOOD + b" " + OTHER]),
    ("two events split across lines", [GOOD + b"\n" + OTHER[:CUT], OTHER[CUT:]]),
    ("an empty payload", [GOOD, b"", OTHER]),
    ("a blank payload", [GOOD, b"  ", OTHER]),
    ("a newline inside an event", [GOOD.replace(b", ", b",\n", 1), OTHER]),
    ("a repayment with a bad id", [GOOD, repayment(loan_id="L 1")]),
    ("an application with a bad id", [event(borrower_id="B/1"), repayment()]),
    ("a repayment due outside the store's range", [repayment(due_date="2100-01-01"), GOOD]),
    ("a repayment paid outside the store's range", [repayment(payment_date="1969-12-31"), GOOD]),
    ("a repeated event_type key", [b'{"event_type": "loan_repayment", ' + GOOD[1:]]),
    ("an object in an unknown field", [event(note={"a": 1}), OTHER]),
    ("an array in an unknown field", [event(note=[1, 2]), OTHER]),
    ("non-ASCII in an unknown field", [event(note="x").replace(b'"x"', '"café"'.encode()), OTHER]),
    ("a brace inside a string", [event(note="}"), event(note="{")]),
    ("whitespace around an event", [b" " + GOOD + b" ", OTHER]),
    ("an event over the size limit", [event(note="x" * LIMIT), OTHER]),
    ("a time outside the store's range", [GOOD, event(event_time="1970-01-01T00:30:00+01:00")]),
]


@pytest.mark.parametrize(("case", "payloads"), STRUCTURAL, ids=[c[0] for c in STRUCTURAL])
def test_payloads_that_are_not_one_flat_event_each_are_judged_one_by_one(
    case: str, payloads: list[bytes]
) -> None:
    assert judged(payloads) is None, case


def test_a_batch_of_valid_events_is_decoded_at_once() -> None:
    payloads = [GOOD, OTHER, *[p for p in IN_RANGE if b"[" not in p]]
    assert judged(payloads) is not None
    assert judged([]) is None


def test_applications_and_repayments_are_decoded_at_once_in_their_order() -> None:
    payloads = [repayment(), GOOD, repayment(event_id="rep-2", payment_date=None), OTHER]
    events = judged(payloads)
    assert events is not None
    assert [type(e) for e in events] == [LoanRepayment, LoanApplication] * 2
    # a word in a field does not make an application a repayment, for either path
    noted = [event(note="loan_repayment"), repayment()]
    assert judged(noted) is not None


def test_real_replayed_loans_take_the_batch_path(lending_club: LendingClub) -> None:
    payloads = list(application_events(lending_club, ReplayPlan(max_events=3000, start=START)))
    apps = judged(payloads)
    assert apps is not None and len(apps) == 3000


@st.composite
def resplit(draw: st.DrawFn) -> list[bytes]:
    """Good events run together with separators and cut again at arbitrary places."""
    pieces = draw(
        st.lists(st.sampled_from([GOOD, OTHER, *IN_RANGE, repayment()]), min_size=1, max_size=4)
    )
    glue = [draw(st.sampled_from([b"", b" ", b"\n", b","])) for _ in pieces]
    text = b"".join(p + g for p, g in zip(pieces, glue, strict=True))
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=len(pieces) + 1)))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


PAYLOADS = (
    st.sampled_from([GOOD, OTHER, *IN_RANGE, repayment()])
    | st.sampled_from([c[1] for c in CORPUS + REPAYMENT_CORPUS])
    | mutated(LoanApplication)
    | mutated(LoanRepayment)
)


@settings(max_examples=400, deadline=None)
@given(payloads=st.lists(PAYLOADS, max_size=5) | resplit())
def test_the_batch_decode_agrees_with_the_per_event_path(payloads: list[bytes]) -> None:
    batch = judged(payloads)
    singles = [decode_event(p, "t", LIMIT) for p in payloads]
    if any(type(s) is DeadLetter for s in singles):
        assert batch is None
