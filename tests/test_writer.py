"""The idempotent writer on a real chDB store: replays add nothing, outages are retried."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flows.model import ScoringModel
from flows.scoring import BatchScorer, RawBatch, ScoredBatch
from flows.settings import Settings
from flows.store import Store, StoreUnavailable, open_store
from flows.store.migrations import migrate
from flows.writer import IdempotentWriter, RetryPolicy, RunStats, SinkDeadlineExceeded


@pytest.fixture
def batch(settings: Settings, model: ScoringModel, events_file: Callable[..., Path]) -> ScoredBatch:
    lines = events_file(200, corrupt=0.1).read_bytes().splitlines()
    return BatchScorer(model, settings)(RawBatch([f"t:{i}" for i in range(len(lines))], lines))


class FlakyStore:
    """Opens the real store only after ``outages`` failed attempts, as a restarting server."""

    def __init__(self, url: str, outages: int) -> None:
        self.url = url
        self.outages = outages
        self.attempts = 0

    def __call__(self) -> Store:
        self.attempts += 1
        if self.attempts <= self.outages:
            raise StoreUnavailable("connection refused")
        return open_store(self.url)


def counts(url: str) -> tuple[int, int]:
    db = open_store(url)
    try:
        row = db.query_arrow(
            "SELECT (SELECT count() FROM scored_events) AS s,"
            " (SELECT count() FROM dead_letters) AS d"
        ).to_pylist()[0]
        return row["s"], row["d"]
    finally:
        db.close()


def prepared(url: str) -> None:
    db = open_store(url)
    try:
        migrate(db)
    finally:
        db.close()


def test_writing_the_same_batch_twice_stores_it_once(
    settings: Settings, batch: ScoredBatch
) -> None:
    prepared(settings.store)
    stats = RunStats()
    writer = IdempotentWriter(lambda: open_store(settings.store), stats)
    writer.write([batch])
    writer.write([batch, batch])
    writer.close()
    assert counts(settings.store) == (batch.scored.num_rows, batch.dead.num_rows)
    assert stats.sent == 3 * batch.sent
    assert stats.scored + stats.dead_lettered == batch.sent
    assert stats.duplicates == 2 * batch.sent


def test_an_outage_is_retried_until_the_store_is_back(
    settings: Settings, batch: ScoredBatch
) -> None:
    prepared(settings.store)
    flaky = FlakyStore(settings.store, outages=3)
    sleeps: list[float] = []
    stats = RunStats()
    writer = IdempotentWriter(flaky, stats, RetryPolicy(deadline_s=30), sleep=sleeps.append)
    writer.write([batch])
    writer.close()
    assert flaky.attempts == 4
    assert sleeps == [0.1, 0.2, 0.4]
    assert stats.store_retries == 3
    assert counts(settings.store) == (batch.scored.num_rows, batch.dead.num_rows)


def test_the_deadline_fails_loudly_without_writing(settings: Settings, batch: ScoredBatch) -> None:
    prepared(settings.store)
    writer = IdempotentWriter(
        FlakyStore(settings.store, outages=1000),
        RunStats(),
        RetryPolicy(deadline_s=0.05, initial_backoff_s=0.01, max_backoff_s=0.02),
    )
    with pytest.raises(SinkDeadlineExceeded, match="unavailable for more than"):
        writer.write([batch])
    assert counts(settings.store) == (0, 0)


def test_background_writer_surfaces_a_failure_and_writes_nothing_after_it() -> None:
    from flows.connectors.store_sink import BackgroundWriter

    written: list[int] = []

    def write(items: list) -> None:
        if items == [2]:
            raise SinkDeadlineExceeded("store gone")
        written.append(items[0])

    background = BackgroundWriter(write)  # type: ignore[arg-type]
    background.submit([1])  # type: ignore[list-item]
    background.flush()
    background.submit([2])  # type: ignore[list-item]
    with pytest.raises(SinkDeadlineExceeded):
        background.flush()
    with pytest.raises(SinkDeadlineExceeded):
        background.submit([3])  # type: ignore[list-item]
    with pytest.raises(SinkDeadlineExceeded):
        background.close()
    assert written == [1]
