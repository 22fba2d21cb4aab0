"""The rows that describe writes (the ops rows) wait for a gap in the writes instead of
delaying the data."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.batches import ApplicationBatch
from flows.connectors.store_sink import BackgroundWriter, DeferredRows

RETURNS_S = 5.0  # how long a write may take to start


def rows(n: int, tag: int) -> ApplicationBatch:
    empty = pa.table({})
    return ApplicationBatch(raw=empty, scored=pa.table({"tag": [tag] * n}), dead=empty)


def tags(items: list[ApplicationBatch]) -> list[int]:
    return [item.scored.column("tag")[0].as_py() for item in items]


class HeldWrite:
    """A write that records its batches and then waits until released."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = threading.Event()
        self.started = threading.Semaphore(0)

    def __call__(self, items: list[ApplicationBatch]) -> None:
        self.calls.append(tags(items))
        self.started.release()
        assert self.release.wait(10)


def test_between_learns_whether_a_write_is_ready_next() -> None:
    write = HeldWrite()
    told: list[bool] = []
    background = BackgroundWriter(write, between=told.append)
    background.submit([rows(1, 1)])
    assert write.started.acquire(timeout=RETURNS_S)
    background.submit([rows(1, 2)])  # ready while write 1 runs
    write.release.set()
    background.close()
    assert write.calls == [[1], [2]]
    assert told == [False, True]


def test_a_failing_between_is_raised_to_the_flow() -> None:
    class Failed(Exception):
        pass

    def between(_idle: bool) -> None:
        raise Failed

    background = BackgroundWriter(lambda _items: None, between=between)
    background.submit([rows(1, 1)])
    with pytest.raises(Failed):
        background.flush()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ops(tag: int) -> tuple[str, pa.Table]:
    return ("ops_batches", pa.table({"tag": [tag]}))


def test_rows_wait_while_busy_and_go_when_idle() -> None:
    clock = Clock()
    deferred = DeferredRows(2.0, clock)
    deferred.add([ops(1)])
    clock.now += 1.0
    deferred.add([ops(2)])
    assert deferred.take(idle=False) == []
    assert [t.column("tag")[0].as_py() for _n, t in deferred.take(idle=True)] == [1, 2]
    assert deferred.take(idle=True) == []


def test_rows_go_once_the_oldest_is_due_even_when_never_idle() -> None:
    clock = Clock()
    deferred = DeferredRows(2.0, clock)
    deferred.add([ops(1)])
    clock.now += 1.5
    deferred.add([ops(2)])
    assert deferred.take(idle=False) == []
    clock.now += 0.5
    assert len(deferred.take(idle=False)) == 2


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(0, 3)),
            st.tuples(st.just("take"), st.booleans()),
            st.tuples(st.just("tick"), st.floats(0, 3)),
        ),
        max_size=60,
    )
)
def test_deferred_rows_are_each_taken_once_in_order_and_never_overdue(
    steps: list[tuple[str, object]],
) -> None:
    clock = Clock()
    deferred = DeferredRows(2.0, clock)
    added: list[int] = []
    taken: list[int] = []
    held_since: float | None = None
    for kind, arg in steps:
        if kind == "add":
            batch = [ops(len(added) + i) for i in range(int(arg))]  # type: ignore[call-overload]
            added.extend(range(len(added), len(added) + len(batch)))
            deferred.add(batch)
            if batch and held_since is None:
                held_since = clock.now
        elif kind == "take":
            got = [t.column("tag")[0].as_py() for _n, t in deferred.take(idle=bool(arg))]
            taken.extend(got)
            if got:
                held_since = None
            # after a take nothing held is overdue
            assert held_since is None or clock.now - held_since < 2.0
        else:
            clock.now += float(arg)  # type: ignore[arg-type]
    taken.extend(t.column("tag")[0].as_py() for _n, t in deferred.take_all())
    assert taken == added
