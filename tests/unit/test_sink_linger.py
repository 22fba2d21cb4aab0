"""The sink's linger: batches gather up to a size or a time before one write, a steady trickle
goes in few writes, and flush/close write everything at once."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from flows.batches import ApplicationBatch
from flows.connectors.store_sink import BackgroundWriter, Linger

LONG = 60.0  # a linger no test may wait out


def rows(n: int, tag: int) -> ApplicationBatch:
    empty = pa.table({})
    return ApplicationBatch(raw=empty, scored=pa.table({"tag": [tag] * n}), dead=empty)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.changed = threading.Condition()

    def __call__(self, items: list[ApplicationBatch]) -> None:
        with self.changed:
            self.calls.append([item.scored.column("tag")[0].as_py() for item in items])
            self.changed.notify_all()

    def wait_for_calls(self, count: int, timeout: float = 5.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.calls) >= count, timeout), self.calls


def test_a_write_waits_until_the_events_reach_the_linger_size() -> None:
    written = Recorder()
    background = BackgroundWriter(written, max_waiting=2, linger=Linger(LONG, 10))
    background.submit([rows(4, 1)])
    background.submit([rows(4, 2)])
    background.submit([rows(1, 3)])  # lingering batches never block the flow
    time.sleep(0.2)
    assert written.calls == []
    background.submit([rows(1, 4)])  # ten events: written now, not after a minute
    written.wait_for_calls(1)
    assert written.calls == [[1, 2, 3, 4]]
    background.close()


def test_a_write_waits_at_most_the_linger_time() -> None:
    written = Recorder()
    background = BackgroundWriter(written, linger=Linger(0.1, 1_000_000))
    began = time.monotonic()
    background.submit([rows(1, 1)])
    background.submit([rows(1, 2)])
    written.wait_for_calls(1)
    assert time.monotonic() - began >= 0.1
    assert written.calls == [[1, 2]]
    background.close()


@pytest.mark.parametrize("finish", ["flush", "close"])
def test_flush_and_close_write_everything_without_lingering(finish: str) -> None:
    written = Recorder()
    background = BackgroundWriter(written, linger=Linger(LONG, 1_000_000))
    background.submit([rows(1, 1)])
    background.submit([rows(1, 2)])
    began = time.monotonic()
    getattr(background, finish)()
    assert time.monotonic() - began < 5
    assert written.calls == [[1, 2]]
    background.close()


@pytest.mark.parametrize("linger", [Linger(), Linger(LONG, 0), Linger(0, 1_000_000)])
def test_without_a_linger_each_write_takes_what_waits_at_once(linger: Linger) -> None:
    written = Recorder()
    background = BackgroundWriter(written, linger=linger)
    background.submit([rows(1, 1)])
    written.wait_for_calls(1)  # well before any linger of a minute
    background.close()


def trickle(linger: Linger) -> tuple[list[list[int]], float]:
    """Sixty batches of ten events, one every 5 ms: the writes made and the seconds taken."""
    written = Recorder()
    background = BackgroundWriter(written, linger=linger)
    began = time.monotonic()
    for tag in range(60):
        background.submit([rows(10, tag)])
        time.sleep(0.005)
    background.close()
    assert [t for call in written.calls for t in call] == list(range(60))  # all, in order
    return written.calls, time.monotonic() - began


def test_a_steady_trickle_goes_in_few_writes() -> None:
    calls, seconds = trickle(Linger(0.15, 100_000))
    # one write per linger time that passed, plus the last one close made
    assert len(calls) <= seconds / 0.15 + 2
    piecemeal, _seconds = trickle(Linger())
    assert len(piecemeal) > 2 * len(calls)


def test_a_negative_linger_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Linger(-1.0, 10)


def test_the_writer_is_prepared_on_its_thread_before_the_first_write() -> None:
    """Connecting (and loading the key set) overlaps the flow's start; writes wait for it."""
    order: list[str] = []
    ready = threading.Event()

    def prepare() -> None:
        assert ready.wait(5.0)
        order.append(threading.current_thread().name)

    def write(items: list[ApplicationBatch]) -> None:
        order.append("write")

    background = BackgroundWriter(write, prepare=prepare)
    background.submit([rows(1, 1)])  # queued while preparing, not refused
    ready.set()
    background.close()
    assert order == ["store-writer", "write"]


def test_a_failed_preparation_is_raised_to_the_flow_and_nothing_is_written() -> None:
    class Refused(Exception):
        pass

    def prepare() -> None:
        raise Refused

    written = Recorder()
    background = BackgroundWriter(written, prepare=prepare)
    with pytest.raises(Refused):
        background.flush()
    with pytest.raises(Refused):
        background.submit([rows(1, 1)])
    assert written.calls == []
