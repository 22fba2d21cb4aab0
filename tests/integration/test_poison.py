"""Bad input can never stop the flow: fuzzed bytes and JSON at the decoders, fuzzed valid events
at the per-loan state step, and poison events among real ones through the whole dataflow, from
a file and from the real Kafka-protocol broker."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.batches import RawBatch
from flows.events import LATEST, LoanApplication, LoanRepayment
from flows.features import FEATURE_NAMES
from flows.jobs import RunOptions, run_files, run_kafka
from flows.loan.book import STATE_ERROR, LoanBook, LoanEvent, Opened, Repaid
from flows.model import ScoringModel, load_live_model
from flows.scoring import BatchScorer
from flows.settings import Settings
from flows.steps.loan_state_step import LoanBookLogic
from flows.store import StoreURL
from flows.validation import REASONS, DeadLetter, decode_event
from tests.conftest import query_rows
from tests.kafka_fixtures import produce_file
from tests.unit.test_features import BASE
from tests.unit.test_validation import REPAYMENT
from training.dataset import LendingClub
from training.repayments import mixed_events
from training.replay import ReplayPlan

LIMIT = 16 * 1024
START = datetime(2025, 1, 6, tzinfo=UTC)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # odd unicode included: surrogates are escaped by json.dumps
    | st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat().replace("+00:00", "Z"))
    | st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1850-01-01", "1e999"])
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def event_like(draw: st.DrawFn) -> bytes:
    """A real event's fields with some replaced by anything, or deeply nested, or cut."""
    base = dict(draw(st.sampled_from([{**BASE, "event_time": "2024-03-01T10:00:00Z"}, REPAYMENT])))
    for name in draw(st.lists(st.sampled_from(sorted(base)), max_size=4)):
        base[name] = draw(DOCUMENTS)
    payload = json.dumps(base).encode()
    depth = draw(st.sampled_from([0, 0, 31, 33, 5000]))
    if depth:
        payload = payload[:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"
    if draw(st.booleans()):
        payload = payload[: draw(st.integers(0, len(payload)))]
    return payload


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payload=st.binary(max_size=400) | DOCUMENTS.map(lambda d: json.dumps(d).encode()) | event_like()
)
def test_decoding_never_raises_and_names_a_reason(payload: bytes) -> None:
    result = decode_event(payload, "fuzz", LIMIT)
    if isinstance(result, DeadLetter):
        assert result.reason in REASONS and result.detail and result.payload == payload
    else:
        assert isinstance(result, LoanApplication | LoanRepayment)


# Events valid by the schema with extreme values: times anywhere in years 1-9999 (validation
# dead-letters those outside what the store holds, the rest reach the state), and a few loans
# and ids, so that repeats, corrections, out-of-order and waiting repayments all happen.
LOANS = st.sampled_from(["L1", "L2", "L3"])
TIMES = st.datetimes(timezones=st.just(UTC)) | st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=LATEST.replace(tzinfo=None) - timedelta(microseconds=1),
    timezones=st.just(UTC),
)
DATES = st.dates() | st.dates(min_value=date(1970, 1, 1), max_value=LATEST.date())
AMOUNTS = st.floats(min_value=0, max_value=1e9)


@st.composite
def valid_event(draw: st.DrawFn) -> bytes:
    loan = draw(LOANS)
    if draw(st.integers(0, 4)) == 0:
        document = {
            **BASE,
            "event_id": f"app-{loan}-{draw(st.integers(0, 1))}",
            "loan_id": loan,
            "event_time": draw(TIMES),
            "funded_amnt": draw(st.floats(min_value=1, max_value=1e7)),
            "term_months": draw(st.sampled_from([36, 60])),
            "int_rate": draw(st.floats(min_value=0, max_value=100)),
            "annual_inc": draw(AMOUNTS),
        }
    else:
        number = draw(st.integers(1, 600))
        document = {
            **REPAYMENT,
            "event_id": f"rep-{loan}-{number}-{draw(st.integers(0, 1))}",
            "loan_id": loan,
            "event_time": draw(TIMES),
            "installment_number": number,
            "due_date": draw(DATES),
            "payment_date": draw(st.none() | DATES),
            "amount_due": draw(AMOUNTS),
            "amount_paid": draw(AMOUNTS),
            "outstanding_balance": draw(AMOUNTS),
        }
    return msgspec.json.encode(document)


def loan_events(payloads: list[bytes]) -> list[LoanEvent]:
    events: list[LoanEvent] = []
    for i, payload in enumerate(payloads):
        event = decode_event(payload, f"fuzz:{i}", LIMIT)
        if isinstance(event, LoanApplication):
            events.append(Opened(event, 0.05, "v1", f"fuzz:{i}"))
        elif isinstance(event, LoanRepayment):
            events.append(Repaid(event, f"fuzz:{i}", 0, 0))
    return events


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payloads=st.lists(valid_event(), min_size=1, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=3),
)
def test_state_step_never_raises_and_accounts_for_every_repayment(
    payloads: list[bytes], cuts: list[int]
) -> None:
    events = loan_events(payloads)
    logic = LoanBookLogic(None)
    observed: list[str] = []
    dead: list[str] = []
    waiting = repeats = 0
    bounds = [0, *sorted(c for c in cuts if c < len(events)), len(events)]
    for start, end in pairwise(bounds):
        outcomes, _ = logic.on_batch([events[start:end]])
        for outcome in outcomes:
            observed += [o.repaid.origin for o in outcome.observed]
            dead += [d.origin for d in outcome.dead if d.reason == STATE_ERROR]
            waiting += outcome.pending_change
            repeats += outcome.repeats
    repayments = {e.origin for e in events if isinstance(e, Repaid)}
    still_waiting = {r.origin for e in logic.book.entries.values() for r in e.waiting.values()}
    assert waiting == len(still_waiting)
    dead_repayments = [o for o in dead if o in repayments]
    accounted = observed + dead_repayments + sorted(still_waiting)
    assert len(accounted) == len(set(accounted))  # no repayment counted twice
    assert len(accounted) + repeats == len(repayments)


def test_an_event_the_state_cannot_take_is_a_dead_letter_and_changes_nothing() -> None:
    book = LoanBook()
    good = msgspec.convert({**BASE, "loan_id": "L9"}, LoanApplication)
    book.apply([Opened(good, 0.05, "v1", "test:1")])
    before = book.snapshot()
    # Built past validation (which refuses year 9999): the state logic cannot add 36 months.
    doomed = msgspec.convert(
        {**BASE, "event_id": "app-x", "loan_id": "LX", "event_time": "9999-06-01T00:00:00Z"},
        LoanApplication,
    )
    assert book.apply([Opened(doomed, 0.05, "v1", "test:2")]) == []
    rejected, repeats = book.take_rejected()
    assert [(d.origin, d.reason) for d in rejected] == [("test:2", STATE_ERROR)]
    assert msgspec.json.decode(rejected[0].payload)["event_id"] == "app-x"
    assert repeats == 0
    assert book.snapshot() == before


# Poison events, each with the reason it must be dead-lettered under.
def poison_lines(good: list[bytes]) -> list[tuple[bytes, str]]:
    app = next(json.loads(x) for x in good if b'"loan_application"' in x)
    rep = next(json.loads(x) for x in good if b'"loan_repayment"' in x)
    deep = b'{"event_type": "loan_application", "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    return [
        (deep, "too_deep"),
        (json.dumps({**rep, "event_id": "rep-9999", "due_date": "9999-12-31"}).encode(),
         "out_of_range"),
        (json.dumps({**rep, "event_id": "rep-late", "event_time": "9999-01-01T00:00:00Z"}).encode(),
         "out_of_range"),
        (json.dumps({**app, "event_id": "app-1850", "loan_id": "L-1850",
                     "event_time": "1850-01-01T00:00:00Z"}).encode(), "out_of_range"),
        (json.dumps({**app, "event_id": "app-big", "funded_amnt": 10**400}).encode(),
         "out_of_range"),
        (b'{"event_type": "loan_repayment", "loan_id": "\xff\xfe"}', "invalid_utf8"),
        (b'{"event_type": "loan_application", "note": "' + b"x" * 100_000 + b'"}', "oversized"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def good_lines(lending_club: LendingClub) -> list[bytes]:
    plan = ReplayPlan(max_events=300, seed=11, start=START)
    return list(mixed_events(lending_club, plan, months=6))


@pytest.fixture
def live_model(behaviour_model_home: Path) -> ScoringModel:
    model = load_live_model(behaviour_model_home / "models")
    assert model is not None
    return model


def with_poison(good: list[bytes]) -> tuple[list[bytes], dict[str, int]]:
    """The good lines with the poison spread among them, and the reasons expected."""
    lines = list(good)
    expected: dict[str, int] = {}
    poison = poison_lines(good)
    for i, (line, reason) in enumerate(poison):
        lines.insert((i + 1) * len(good) // (len(poison) + 1), line)
        expected[reason] = expected.get(reason, 0) + 1
    return lines, expected


def dead_by_reason(store: StoreURL) -> dict[str, int]:
    rows = query_rows(store, "SELECT reason, count() AS n FROM dead_letters GROUP BY reason")
    return {r["reason"]: r["n"] for r in rows}


def test_poison_in_a_file_is_dead_lettered_and_the_rest_scored(
    settings: Settings,
    model: ScoringModel,
    live_model: ScoringModel,
    good_lines: list[bytes],
    tmp_path: Path,
) -> None:
    lines, expected = with_poison(good_lines)
    path = tmp_path / "poisoned.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    stats = run_files([path], settings, model, RunOptions(live_model=live_model))
    assert stats.sent == len(lines)
    assert stats.scored == len(good_lines)
    assert stats.dead_lettered == sum(expected.values())
    assert stats.pending_repayments == 0
    assert dead_by_reason(settings.store) == expected


def test_poison_on_kafka_is_dead_lettered_and_its_offset_moves_on(
    kafka_settings: Settings,
    model: ScoringModel,
    live_model: ScoringModel,
    good_lines: list[bytes],
    tmp_path: Path,
) -> None:
    lines, expected = with_poison(good_lines)
    path = tmp_path / "poisoned.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    sent = produce_file(kafka_settings.kafka, path)
    assert sent == len(lines)
    stats = run_kafka(kafka_settings, model, RunOptions(live_model=live_model), until_end=True)
    assert stats.sent == len(lines)
    assert stats.scored == len(good_lines)
    assert dead_by_reason(kafka_settings.store) == expected
    [row] = query_rows(
        kafka_settings.store,
        "SELECT (SELECT count() FROM scored_events) + (SELECT count() FROM repayment_scores) AS n",
    )
    assert row["n"] == len(good_lines)


@st.composite
def extreme_application(draw: st.DrawFn) -> bytes:
    """Applications valid by the schema with values anywhere in their ranges."""
    count = st.none() | st.integers(0, 1000)
    money = st.none() | AMOUNTS
    percent = st.none() | st.floats(min_value=0, max_value=1000)
    document = {
        **BASE,
        "event_time": draw(TIMES),
        "funded_amnt": draw(st.floats(min_value=1e-9, max_value=1e7)),
        "term_months": draw(st.sampled_from([36, 60])),
        "int_rate": draw(st.floats(min_value=0, max_value=100)),
        "annual_inc": draw(AMOUNTS),
        "emp_length_years": draw(st.none() | st.integers(0, 10)),
        "revol_util": draw(percent),
        "all_util": draw(percent),
        "total_bal_il": draw(money),
        "delinq_amnt": draw(money),
        "total_il_high_credit_limit": draw(money),
        **{name: draw(count) for name in ("delinq_2yrs", "inq_last_6mths", "acc_now_delinq",
                                          "open_il_6m", "inq_fi", "num_il_tl")},
    }  # fmt: skip
    return msgspec.json.encode(document)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(extreme_application() | event_like(), min_size=1, max_size=20))
def test_scoring_step_never_raises_on_any_batch(model: ScoringModel, payloads: list[bytes]) -> None:
    # with the per-loan state on, as it is whenever a behavioural model exists: repayments
    # pass on to the state step (without one, a repayment stops the flow by design)
    scorer = BatchScorer(model, Settings(), track_loans=True)
    batch = scorer(RawBatch([f"fuzz:{i}" for i in range(len(payloads))], payloads))
    repaid = sum(isinstance(e, Repaid) for e in batch.loan_events)
    assert batch.scored.num_rows + batch.dead.num_rows + repaid == len(payloads)
    pd = batch.scored.column("pd_lifetime").to_numpy()
    assert ((pd >= 0) & (pd <= 1)).all()
    for name in FEATURE_NAMES:  # NaN stands for a missing bureau field, imputed by the model
        assert not np.isinf(batch.scored.column(name).to_numpy()).any(), name
