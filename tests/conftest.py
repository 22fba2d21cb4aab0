"""Shared fixtures. Every test that touches SQL runs it on the real ClickHouse engine (chDB) in
a store of its own; chDB serves one directory per process, so stores are always closed after.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import time_machine

from flows.clock import running_from
from flows.model import ScoringModel, load_model
from flows.settings import Settings
from flows.store import Store, StoreURL, open_store
from flows.store.migrations import migrate
from flows.times import TimeInputError, parse_instant
from training.dataset import LendingClub, load_lending_club
from training.replay import ReplayPlan, application_events

# tests.layout marks every test by its directory and fixtures; pytester tests that plugin.
pytest_plugins = ["tests.fixtures_training", "tests.kafka_fixtures", "tests.layout", "pytester"]

# RISKCTL_TEST_NOW=2028-02-29T23:30:00Z runs the whole session with the clock set to that
# moment (and ticking from it), to show that no test depends on the date it runs on. Only this
# process travels: chDB's now(), the broker and subprocesses keep the real clock.
CLOCK_VARIABLE = "RISKCTL_TEST_NOW"
_TRAVEL = pytest.StashKey[time_machine.travel]()


def _clock_setting(text: str) -> datetime:
    """The moment ``RISKCTL_TEST_NOW`` names: ISO 8601, UTC unless it says otherwise."""
    try:
        return parse_instant(text, CLOCK_VARIABLE)
    except TimeInputError as exc:
        raise pytest.UsageError(str(exc)) from exc


def pytest_configure(config: pytest.Config) -> None:
    # Before collection: test modules read the clock at import.
    text = os.environ.get(CLOCK_VARIABLE)
    if text:
        travel = time_machine.travel(_clock_setting(text), tick=True)
        travel.start()
        config.stash[_TRAVEL] = travel


def pytest_unconfigure(config: pytest.Config) -> None:
    travel = config.stash.get(_TRAVEL, None)
    if travel is not None:
        travel.stop()


def pytest_report_header(config: pytest.Config) -> str | None:
    if _TRAVEL in config.stash:
        return f"clock: travelled to {os.environ[CLOCK_VARIABLE]} ({CLOCK_VARIABLE})"
    return None


@pytest.fixture(scope="module")
def processing_clock(request: pytest.FixtureRequest) -> Iterator[datetime]:
    """The module's pipeline runs with processing time starting at its ``PROCESSING_EPOCH``
    (:mod:`flows.clock`), so the rows it stamps and the windows it asks for ("up to now") are
    the same whatever day the suite runs."""
    epoch: datetime = request.module.PROCESSING_EPOCH
    with running_from(epoch):
        yield epoch


@pytest.fixture(scope="session")
def lending_club() -> LendingClub:
    return load_lending_club()


@pytest.fixture(scope="session")
def model(trained_home: Path) -> ScoringModel:
    return load_model(trained_home / "models")


@pytest.fixture
def settings(trained_home: Path, tmp_path: Path) -> Settings:
    """Settings using the session's trained model and a fresh embedded store for this test."""
    return Settings(home=trained_home, store_url=f"chdb://{tmp_path / 'store'}", batch_size=1000)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated embedded store of this test's own."""
    db = open_store(StoreURL.embedded_at(tmp_path / "store"))
    try:
        migrate(db)
        yield db
    finally:
        db.close()


@pytest.fixture
def events_file(lending_club: LendingClub, tmp_path: Path) -> Callable[..., Path]:
    """Write replayed real loans to a JSON-lines file: ``events_file(n, corrupt=0.0, seed=7)``."""

    def write(n: int, corrupt: float = 0.0, seed: int = 7, name: str = "events.jsonl") -> Path:
        path = tmp_path / name
        plan = ReplayPlan(max_events=n, seed=seed, corrupt_share=corrupt)
        path.write_bytes(b"".join(e + b"\n" for e in application_events(lending_club, plan)))
        return path

    return write


def query_rows(url: StoreURL, sql: str) -> list[dict]:
    """Open the store, run one query, close it again (the flow needs the store closed)."""
    db = open_store(url)
    try:
        return db.query_arrow(sql).to_pylist()
    finally:
        db.close()
