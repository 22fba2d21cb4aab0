"""The writer's in-memory key prefilter changes what the store is asked, never the answer: the
same rows and dead letters as asking about every key, whatever came before (repeats, ids reused
with other content at any distance, crashes, other writers). Real chDB stores and real loans.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.batches import ApplicationBatch, RawBatch
from flows.duplicates import CONFLICTING_DUPLICATE
from flows.jobs import RunOptions, run_files
from flows.model import ScoringModel
from flows.scoring import BatchScorer
from flows.settings import Settings
from flows.store import Store, StoreURL, open_store, parse_store_url
from flows.store.migrations import migrate
from flows.writer import IdempotentWriter, RunStats, WriteResult
from tests.integration.test_crash_consistency import CrashingStore, SimulatedCrash
from training.dataset import LendingClub
from training.replay import ReplayPlan, application_events

START = datetime(2024, 3, 4, tzinfo=UTC)
POOL = 24


def renamed(payload: bytes, prefix: str, **changes: Any) -> bytes:
    """The event under ``prefix`` + its id (so examples share no key), with fields changed."""
    record = json.loads(payload)
    return json.dumps({**record, "event_id": prefix + record["event_id"], **changes}).encode()


def other_content(payload: bytes) -> bytes:
    """The same event id with other content: a larger loan."""
    record = json.loads(payload)
    return json.dumps({**record, "funded_amnt": record["funded_amnt"] + 1000.0}).encode()


def variant(payload: bytes, prefix: str, changed: bool) -> bytes:
    """A pool event for one example: renamed, perhaps with other content. A line broken past
    parsing stays as it is (its dead letter is keyed by its origin, which carries the prefix)."""
    try:
        record = json.loads(payload)
    except ValueError:
        return payload
    if not isinstance(record, dict) or not isinstance(record.get("event_id"), str):
        return payload
    if changed and isinstance(record.get("funded_amnt"), float):
        record["funded_amnt"] += 1000.0
    return json.dumps({**record, "event_id": prefix + record["event_id"]}).encode()


def event_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture(scope="module")
def pool(lending_club: LendingClub) -> list[bytes]:
    """Real replayed loans on a fixed epoch, a tenth of them broken (dead letters)."""
    plan = ReplayPlan(max_events=POOL, seed=3, start=START, corrupt_share=0.1)
    return list(application_events(lending_club, plan))


@pytest.fixture(scope="module")
def twin_stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[StoreURL, ...]:
    """Migrated databases of one embedded store: the filtered writers' (exchanging keys through
    stored_keys, and alone) and the reference's."""
    root = tmp_path_factory.mktemp("prefilter")
    urls = tuple(
        parse_store_url(f"chdb://{root}?database={name}")
        for name in ("exchanging", "alone", "reference")
    )
    for url in urls:
        db = open_store(url)
        try:
            migrate(db)
        finally:
            db.close()
    return urls


@dataclass
class Twin:
    """One writer per store, replaced the way a restarted process replaces it."""

    url: StoreURL
    prefilter: bool
    alone: bool = False
    writer: IdempotentWriter | None = None

    def current(self) -> IdempotentWriter:
        if self.writer is None:
            url = self.url
            self.writer = IdempotentWriter(
                lambda: open_store(url), RunStats(), prefilter=self.prefilter, alone=self.alone
            )
        return self.writer

    def restart(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = None

    def crash(self, batch: ApplicationBatch, at: int) -> WriteResult | None:
        """The write dies before its ``at``-th store change; a write with fewer changes (all
        its keys stored, say) completes, and its result is returned."""
        url = self.url
        dying = IdempotentWriter(
            lambda: CrashingStore(open_store(url), at),
            RunStats(),
            prefilter=self.prefilter,
            alone=self.alone,
        )
        try:
            return dying.write([batch])
        except SimulatedCrash:
            return None
        finally:
            dying.close()
            self.restart()  # the rerun's writer completes the journal when it connects


def stored(url: StoreURL, prefix: str) -> dict[str, list[tuple[Any, ...]]]:
    db = open_store(url)
    try:
        like = {"p": prefix + "%"}
        queries = {
            "raw_events": "SELECT event_id, hex(content_hash), payload FROM raw_events"
            " WHERE event_id LIKE {p:String} ORDER BY ALL",
            "scored_events": "SELECT event_id, pd_lifetime, band FROM scored_events"
            " WHERE event_id LIKE {p:String} ORDER BY ALL",
            "dead_letters": "SELECT dead_letter_id, reason, payload FROM dead_letters"
            " WHERE origin LIKE {p:String} ORDER BY ALL",
        }
        return {
            table: [tuple(r.values()) for r in db.query_arrow(sql, like).to_pylist()]
            for table, sql in queries.items()
        }
    finally:
        db.close()


# An operation: the pool's events to send (index, with other content?) and, for a write that
# crashes, before which of its store changes.
Event = tuple[int, bool]
Operation = tuple[list[Event], int | None]
operations = st.lists(
    st.tuples(
        st.lists(st.tuples(st.integers(0, POOL - 1), st.booleans()), min_size=1, max_size=10),
        st.one_of(st.none(), st.integers(0, 5)),
    ),
    min_size=1,
    max_size=6,
)
examples = itertools.count()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_the_prefilter_gives_exactly_what_probing_every_key_gives(
    ops: list[Operation],
    pool: list[bytes],
    twin_stores: tuple[StoreURL, ...],
    model: ScoringModel,
    settings: Settings,
) -> None:
    prefix = f"ex{next(examples)}-"
    scorer = BatchScorer(model, settings)
    exchanging, alone, reference = twin_stores
    twins = [
        Twin(exchanging, prefilter=True),
        Twin(alone, prefilter=True, alone=True),
        Twin(reference, prefilter=False),
    ]
    results: list[list[WriteResult | None]] = [[], [], []]
    try:
        for number, (events, crash_at) in enumerate(ops):
            lines = [variant(pool[i], prefix, changed) for i, changed in events]
            origins = [f"{prefix}op{number}:{j}" for j in range(len(lines))]
            batch = scorer(RawBatch(origins, lines))
            for twin, found in zip(twins, results, strict=True):
                if crash_at is not None:
                    # The statement it dies before differs between the writers (one exchanges
                    # no keys), so whether it died is not compared: what follows is.
                    twin.crash(batch, crash_at)
                found.append(twin.current().write([batch]))
    finally:
        for twin in twins:
            twin.restart()
    assert results[0] == results[1] == results[2]
    assert stored(exchanging, prefix) == stored(alone, prefix) == stored(reference, prefix)


@pytest.fixture
def migrated_url(tmp_path: Path) -> StoreURL:
    url = StoreURL.embedded_at(tmp_path / "store")
    db = open_store(url)
    try:
        migrate(db)
    finally:
        db.close()
    return url


def scored_lines(scorer: BatchScorer, lines: list[bytes], origin: str) -> ApplicationBatch:
    return scorer(RawBatch([f"{origin}:{i}" for i in range(len(lines))], lines))


def count(store: Store, sql: str) -> int:
    return int(store.query_arrow(sql).column(0)[0].as_py())


def test_an_id_reused_long_after_and_many_rows_later_is_dead_lettered(
    migrated_url: StoreURL,
    lending_club: LendingClub,
    model: ScoringModel,
    settings: Settings,
) -> None:
    """Years of event time and 40,000 rows lie between the first event and its reuse, and the
    writer that meets the reuse was not the one that stored the first."""
    scorer = BatchScorer(model, settings)
    [first] = application_events(lending_club, ReplayPlan(max_events=1, seed=11, start=START))
    first = renamed(first, "old-")
    plan = ReplayPlan(max_events=8_000, seed=12, start=START + timedelta(days=3 * 365))
    events = list(application_events(lending_club, plan))
    filled = 5 * len({json.loads(e)["event_id"] for e in events})
    writer = IdempotentWriter(lambda: open_store(migrated_url), RunStats())
    try:
        writer.write([scored_lines(scorer, [first], "first")])
        for round_ in range(5):
            lines = [renamed(e, f"r{round_}-") for e in events]
            writer.write([scored_lines(scorer, lines, f"fill{round_}")])
    finally:
        writer.close()
    assert filled >= 35_000
    record = json.loads(first)
    reuse = renamed(
        first,
        "",
        funded_amnt=record["funded_amnt"] + 1000.0,
        event_time=event_time(START + timedelta(days=4 * 365)),
    )
    writer = IdempotentWriter(lambda: open_store(migrated_url), RunStats())
    try:
        result = writer.write([scored_lines(scorer, [reuse, first], "again")])
        seen = writer.seen
        assert seen is not None and seen.keys >= 2 * (filled + 1)
    finally:
        writer.close()
    db = open_store(migrated_url)
    try:
        assert count(db, "SELECT count() FROM raw_events") == filled + 1
        assert count(db, "SELECT count() FROM scored_events") == filled + 1
        reasons = db.query_arrow(
            "SELECT reason, payload FROM dead_letters WHERE origin LIKE 'again:%'"
        ).to_pylist()
    finally:
        db.close()
    assert reasons == [{"reason": CONFLICTING_DUPLICATE, "payload": reuse.decode()}]
    # the reuse is dead-lettered, the replay of the first event skipped
    assert (result.scored, result.dead_lettered, result.duplicates) == (0, 1, 1)


@pytest.fixture
def two_writers(migrated_url: StoreURL) -> Iterator[tuple[IdempotentWriter, IdempotentWriter]]:
    """Two writers on one store, as two processes on one server would be."""

    def open_() -> Store:
        return open_store(migrated_url)

    first, second = IdempotentWriter(open_, RunStats()), IdempotentWriter(open_, RunStats())
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_a_key_another_writer_stored_is_seen_before_the_next_insert(
    two_writers: tuple[IdempotentWriter, IdempotentWriter],
    lending_club: LendingClub,
    model: ScoringModel,
    settings: Settings,
) -> None:
    scorer = BatchScorer(model, settings)
    one, two = two_writers
    plan = ReplayPlan(max_events=5, seed=5, start=START)
    events = [renamed(e, "w-") for e in application_events(lending_club, plan)]
    # Both connect (and load the store's keys) before either writes the events.
    for n, writer in enumerate(two_writers):
        assert writer.write([scored_lines(scorer, [events[4]], f"warm{n}")]).scored == 1 - n
    assert one.write([scored_lines(scorer, events[:3], "one")]).scored == 3
    # The second writer meets the first one's keys: one repeat, one with other content.
    result = two.write(
        [scored_lines(scorer, [events[0], other_content(events[1]), events[3]], "two")]
    )
    assert (result.scored, result.dead_lettered, result.duplicates) == (1, 1, 1)
    # ... and the first meets the second's.
    result = one.write([scored_lines(scorer, [other_content(events[3])], "again")])
    assert (result.scored, result.dead_lettered) == (0, 1)


class ServedStore:
    """The real store, saying (as a server would) that other processes may write it too."""

    exclusive = False

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.mark.parametrize(
    ("alone", "exclusive", "exchanges"),
    [(True, True, False), (True, False, True), (False, True, True), (False, False, True)],
)
def test_keys_are_exchanged_unless_the_writer_is_alone_on_a_store_only_it_can_write(
    migrated_url: StoreURL,
    pool: list[bytes],
    model: ScoringModel,
    settings: Settings,
    alone: bool,
    exclusive: bool,
    exchanges: bool,
) -> None:
    def open_() -> Store:
        store = open_store(migrated_url)
        return store if exclusive else cast(Store, ServedStore(store))

    scorer = BatchScorer(model, settings)
    writer = IdempotentWriter(open_, RunStats(), alone=alone)
    try:
        first = writer.write([scored_lines(scorer, pool, "first")])
        again = writer.write([scored_lines(scorer, pool, "first")])  # a replay
    finally:
        writer.close()
    assert first.scored > 0 and again.scored == 0 and again.duplicates == again.sent
    db = open_store(migrated_url)
    try:
        keys = count(db, "SELECT count() FROM stored_keys")
        stored_ids = count(db, "SELECT count() FROM raw_events")
    finally:
        db.close()
    assert keys == (stored_ids + first.dead_lettered + first.scored if exchanges else 0)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_exchanges_keys_between_its_workers_only_when_it_has_several(
    settings: Settings, model: ScoringModel, events_file: Any, workers: int
) -> None:
    path = events_file(400, corrupt=0.05)
    stats = run_files([path], settings, model, RunOptions(workers=workers))
    assert stats.sent == len(path.read_bytes().splitlines()) and stats.scored == 400
    db = open_store(settings.store)
    try:
        keys = count(db, "SELECT count() FROM stored_keys")
    finally:
        db.close()
    assert (keys > 0) == (workers > 1)
