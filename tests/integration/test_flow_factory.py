"""The flow factory (flows.dataflow.build_flow) under Bytewax's own test harness: micro-batches
of real LendingClub events in through a TestingSource, what the store sink would be handed out
through a TestingSink, run in process by ``run_main`` in milliseconds, no store, no broker.

Integration only because scoring needs the session's trained models; the flow runs themselves
take milliseconds. The store sink's own work (keys, journal, views) is tested in test_writer.py.
"""

from __future__ import annotations

import base64
from collections import Counter
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path

import msgspec
import pytest
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.batches import RawBatch, RepaymentBatch, ScoredBatch
from flows.dataflow import build_flow, route_key, source_input
from flows.live_scoring import LiveScorer
from flows.model import ScoringModel, load_live_model
from flows.scoring import BatchScorer
from flows.settings import Settings
from flows.validation import is_repayment
from training.dataset import LendingClub
from training.repayments import mixed_events
from training.replay import ReplayPlan, application_events

START = datetime(2025, 3, 3, tzinfo=UTC)
RECEIVED = datetime(2025, 9, 1, tzinfo=UTC)
_IDS = msgspec.json.Decoder(dict[str, object])

Output = list[tuple[str, ScoredBatch]]


class Flow:
    """The production scorers on the session's models, and a way to run batches of lines
    through ``build_flow`` with Bytewax's testing source and sinks."""

    def __init__(self, model: ScoringModel, live_model: ScoringModel, settings: Settings) -> None:
        self.applications = BatchScorer(model, settings)
        self.mixed = BatchScorer(model, settings, track_loans=True)
        self.live = LiveScorer(live_model, settings)

    def run(
        self,
        batches: list[list[bytes]],
        *,
        live: bool = False,
        dead_letters: list[KafkaSinkMessage[bytes, bytes]] | None = None,
        workers: int = 1,
    ) -> Output:
        out: Output = []
        raw: list[RawBatch] = []
        line = 0
        for payloads in batches:
            origins = [f"file:events.jsonl:{line + i + 1}" for i in range(len(payloads))]
            line += len(payloads)
            raw.append(RawBatch(origins, payloads, received_at=RECEIVED))
        flow = build_flow(
            source_input(TestingSource(raw)),
            TestingSink(out),
            self.mixed if live else self.applications,
            live=self.live if live else None,
            dead_letter_sink=None if dead_letters is None else TestingSink(dead_letters),
        )
        if workers == 1:
            run_main(flow)
        else:
            cluster_main(flow, [], 0, worker_count_per_proc=workers)
        return out


@pytest.fixture(scope="module")
def flow(model: ScoringModel, behaviour_model_home: Path) -> Flow:
    live_model = load_live_model(behaviour_model_home / "models")
    assert live_model is not None
    return Flow(model, live_model, Settings(home=behaviour_model_home))


@pytest.fixture(scope="module")
def applications(lending_club: LendingClub) -> list[bytes]:
    return list(application_events(lending_club, ReplayPlan(max_events=300, seed=3, start=START)))


@pytest.fixture(scope="module")
def broken_mix(lending_club: LendingClub) -> list[bytes]:
    """Applications with about a fifth of them followed by a broken twin of every kind."""
    plan = ReplayPlan(max_events=200, seed=4, start=START, corrupt_share=0.2)
    return list(application_events(lending_club, plan))


@pytest.fixture(scope="module")
def mixed(lending_club: LendingClub) -> list[bytes]:
    """Applications, their broken twins and their repayment histories, in event-time order."""
    plan = ReplayPlan(max_events=60, seed=5, start=START, corrupt_share=0.05)
    return list(mixed_events(lending_club, plan, months=8))


def event_id(payload: bytes) -> str:
    return str(_IDS.decode(payload)["event_id"])


def column(out: Output, table: str, name: str) -> list[object]:
    # a batch without rows of a table may hold it without columns; each stream's batch holds
    # only its own tables
    tables = [getattr(batch, table) for _, batch in out if hasattr(batch, table)]
    return [v for t in tables if t.num_rows for v in t.column(name).to_pylist()]


def rows(out: Output, table: str) -> int:
    return sum(getattr(batch, table).num_rows for _, batch in out if hasattr(batch, table))


def waiting(batch: ScoredBatch) -> int:
    return batch.pending_repayments if isinstance(batch, RepaymentBatch) else 0


def accounted(out: Output) -> int:
    """Events the batches account for: scored, live-scored, dead-lettered, skipped as
    repeats, or still waiting for their application."""
    return sum(batch.sent + waiting(batch) for _, batch in out)


def chunks(lines: list[bytes], size: int) -> list[list[bytes]]:
    return [lines[i : i + size] for i in range(0, len(lines), size)]


def test_valid_applications_are_each_scored_once_with_the_models_version(
    flow: Flow, applications: list[bytes], model: ScoringModel
) -> None:
    out = flow.run(chunks(applications, 70))
    assert len(out) == 5  # one scored batch per micro-batch
    assert Counter(column(out, "scored", "event_id")) == Counter(map(event_id, applications))
    assert set(column(out, "scored", "model_version")) == {model.version}
    assert all(0.0 < pd < 1.0 for pd in column(out, "scored", "pd_lifetime"))  # type: ignore[operator]
    assert rows(out, "dead") == 0 and rows(out, "raw") == len(applications)
    # each batch goes to the store writer its first event names
    assert [key for key, _ in out] == [route_key(batch) for _, batch in out]
    assert accounted(out) == len(applications)


def test_broken_events_become_dead_letters_with_their_exact_payload(
    flow: Flow, broken_mix: list[bytes]
) -> None:
    topic: list[KafkaSinkMessage[bytes, bytes]] = []
    out = flow.run(chunks(broken_mix, 64), dead_letters=topic)
    dead = {base64.b64decode(str(p)) for p in column(out, "dead", "payload_base64")}
    broken = [line for line in broken_mix if b"-broken" in line]
    assert broken and dead == set(broken)
    assert all(column(out, "dead", "reason"))
    assert rows(out, "scored") + rows(out, "dead") == len(broken_mix) == accounted(out)
    # the same dead letters on the dead-letter topic, keyed by their id
    ids = column(out, "dead", "dead_letter_id")
    assert sorted(m.key for m in topic) == sorted(str(i).encode() for i in ids)  # type: ignore[misc]


def test_every_repayment_on_a_known_loan_gets_a_live_score(flow: Flow, mixed: list[bytes]) -> None:
    out = flow.run(chunks(mixed, 97), live=True)
    repayments = [line for line in mixed if is_repayment(line)]
    assert repayments
    assert Counter(column(out, "repayments", "event_id")) == Counter(map(event_id, repayments))
    assert sum(waiting(batch) for _, batch in out) == 0
    assert accounted(out) == len(mixed)


def test_repeated_events_are_accounted_for_and_not_observed_twice(
    flow: Flow, mixed: list[bytes]
) -> None:
    # The whole stream, then every event again: a replay after a restart.
    out = flow.run([*chunks(mixed, 97), *chunks(mixed, 211)], live=True)
    repayments = [line for line in mixed if is_repayment(line)]
    applications = [line for line in mixed if not is_repayment(line) and b"-broken" not in line]
    assert Counter(column(out, "repayments", "event_id")) == Counter(map(event_id, repayments))
    assert sum(getattr(batch, "skipped", 0) for _, batch in out) == len(repayments)
    # applications are scored again: the store writer skips the keys it holds (test_writer.py)
    assert rows(out, "scored") == 2 * len(applications)
    assert accounted(out) == 2 * len(mixed)


def test_repayments_before_their_application_wait_for_it(flow: Flow, mixed: list[bytes]) -> None:
    repayments = [line for line in mixed if is_repayment(line)]
    others = [line for line in mixed if not is_repayment(line)]
    out = flow.run([repayments, others], live=True)
    still_waiting = list(accumulate(waiting(batch) for _, batch in out))
    assert max(still_waiting) == len(repayments) and still_waiting[-1] == 0
    assert Counter(column(out, "repayments", "event_id")) == Counter(map(event_id, repayments))
    assert accounted(out) == len(mixed)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_every_event_sent_is_accounted_for(
    flow: Flow, mixed: list[bytes], data: st.DataObject
) -> None:
    """Any selection of the stream (events dropped, repeated, reordered), in any batching, on
    one or two workers: sent = scored + dead-lettered + skipped + still pending."""
    picks = data.draw(st.lists(st.integers(0, len(mixed) - 1), min_size=1, max_size=120))
    if data.draw(st.booleans()):
        picks.sort()  # event-time order, as a replay sends them
    lines = [mixed[i] for i in picks]
    size = data.draw(st.integers(1, len(lines)))
    workers = data.draw(st.sampled_from([1, 2]))
    out = flow.run(chunks(lines, size), live=True, workers=workers)
    assert accounted(out) == len(lines)
    # every valid event reaches raw_events once per time it was sent
    assert rows(out, "raw") + rows(out, "dead") == len(lines)
