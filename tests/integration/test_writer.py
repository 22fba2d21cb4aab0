"""The idempotent writer on a real chDB store: replays add nothing, outages are retried."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pyarrow as pa
import pytest

from flows.batches import ApplicationBatch, RawBatch
from flows.connectors.store_sink import BackgroundWriter, StoreSink
from flows.model import ScoringModel
from flows.scoring import BatchScorer
from flows.settings import Settings
from flows.store import Store, StoreUnavailable, StoreURL, open_store
from flows.store.migrations import migrate
from flows.writer import IdempotentWriter, RetryPolicy, RunStats, SinkDeadlineExceeded


@pytest.fixture
def batch(
    settings: Settings, model: ScoringModel, events_file: Callable[..., Path]
) -> ApplicationBatch:
    lines = events_file(200, corrupt=0.1).read_bytes().splitlines()
    return BatchScorer(model, settings)(RawBatch([f"t:{i}" for i in range(len(lines))], lines))


class FlakyStore:
    """Opens the real store only after ``outages`` failed attempts, as a restarting server."""

    def __init__(self, url: StoreURL, outages: int) -> None:
        self.url = url
        self.outages = outages
        self.attempts = 0

    def __call__(self) -> Store:
        self.attempts += 1
        if self.attempts <= self.outages:
            raise StoreUnavailable("connection refused")
        return open_store(self.url)


def counts(url: StoreURL) -> tuple[int, int]:
    db = open_store(url)
    try:
        row = db.query_arrow(
            "SELECT (SELECT count() FROM scored_events) AS s,"
            " (SELECT count() FROM dead_letters) AS d"
        ).to_pylist()[0]
        return row["s"], row["d"]
    finally:
        db.close()


def prepared(url: StoreURL) -> None:
    db = open_store(url)
    try:
        migrate(db)
    finally:
        db.close()


def test_writing_the_same_batch_twice_stores_it_once(
    settings: Settings, batch: ApplicationBatch
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
    settings: Settings, batch: ApplicationBatch
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


def test_the_deadline_fails_loudly_without_writing(
    settings: Settings, batch: ApplicationBatch
) -> None:
    prepared(settings.store)
    writer = IdempotentWriter(
        FlakyStore(settings.store, outages=1000),
        RunStats(),
        RetryPolicy(deadline_s=0.05, initial_backoff_s=0.01, max_backoff_s=0.02),
    )
    with pytest.raises(SinkDeadlineExceeded, match="unavailable for more than"):
        writer.write([batch])
    assert counts(settings.store) == (0, 0)


def _rows(n: int, tag: int = 0) -> ApplicationBatch:
    empty = pa.table({})
    return ApplicationBatch(raw=empty, scored=pa.table({"tag": [tag] * n}), dead=empty)


def _tags(items: list[ApplicationBatch]) -> list[int]:
    return [item.scored.column("tag")[0].as_py() for item in items]


def test_background_writer_surfaces_a_failure_and_writes_nothing_after_it() -> None:
    written: list[int] = []

    def write(items: list[ApplicationBatch]) -> None:
        if _tags(items) == [2]:
            raise SinkDeadlineExceeded("store gone")
        written.extend(_tags(items))

    background = BackgroundWriter(write)
    background.submit([_rows(1, tag=1)])
    background.flush()
    background.submit([_rows(1, tag=2)])
    with pytest.raises(SinkDeadlineExceeded):
        background.flush()
    with pytest.raises(SinkDeadlineExceeded):
        background.submit([_rows(1, tag=3)])
    with pytest.raises(SinkDeadlineExceeded):
        background.close()
    assert written == [1]


def _until_taken(background: BackgroundWriter) -> None:
    deadline = time.monotonic() + 5
    while background.waiting and time.monotonic() < deadline:
        time.sleep(0.005)
    assert background.waiting == 0


def test_batches_that_queue_behind_a_slow_write_go_in_together_in_order() -> None:
    release = threading.Event()
    calls: list[list[int]] = []

    def write(items: list[ApplicationBatch]) -> None:
        calls.append(_tags(items))
        assert release.wait(10)

    background = BackgroundWriter(write)
    background.submit([_rows(5, tag=1)])
    _until_taken(background)
    background.submit([_rows(5, tag=2)])
    background.submit([_rows(5, tag=3), _rows(5, tag=4)])
    release.set()
    background.close()
    assert calls == [[1], [2, 3, 4]]


def test_submit_waits_while_too_many_submissions_wait() -> None:
    release = threading.Event()

    def write(items: list[ApplicationBatch]) -> None:
        assert release.wait(10)

    background = BackgroundWriter(write, max_waiting=2)
    background.submit([_rows(5, tag=1)])
    _until_taken(background)  # the writer now waits in write()
    background.submit([_rows(5, tag=2)])
    background.submit([_rows(5, tag=3)])  # two waiting: the limit
    blocked = threading.Thread(target=background.submit, args=([_rows(1, tag=4)],))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()  # back-pressure: the flow waits for the store
    release.set()
    blocked.join(10)
    assert not blocked.is_alive()
    background.close()


class HeldStore:
    """The real store, whose inserts into scored_events wait until ``release`` is set."""

    def __init__(self, url: StoreURL, release: threading.Event) -> None:
        self._store = open_store(url)
        self._release = release

    def insert_arrow(self, table: str, data: pa.Table, *, token: str | None = None) -> None:
        if table == "scored_events":
            assert self._release.wait(10)
        self._store.insert_arrow(table, data, token=token)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


@pytest.mark.parametrize("snapshots", [True, False])
def test_an_epoch_waits_for_the_store_only_in_a_run_with_recovery(
    settings: Settings, batch: ApplicationBatch, snapshots: bool
) -> None:
    """With recovery the epoch's snapshot must wait for every batch; without, waiting only
    stalled the flow's reading for a write or two every epoch."""
    prepared(settings.store)
    release = threading.Event()
    sink = StoreSink(
        lambda: cast(Store, HeldStore(settings.store, release)), RunStats(), snapshots=snapshots
    )
    part = sink.build_part("store", "0", None)
    part.write_batch([batch])
    epoch = threading.Thread(target=part.snapshot, daemon=True)
    epoch.start()
    epoch.join(0.5 if snapshots else 10)
    assert epoch.is_alive() is snapshots
    release.set()
    epoch.join(10)
    part.close()  # closing waits in both
    assert counts(settings.store) == (batch.scored.num_rows, batch.dead.num_rows)
