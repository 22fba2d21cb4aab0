"""A stop request that ends a flow cleanly: its sources report their end at the next read.

Bytewax then finishes the way it does at the end of a file: items already read go through
every step, the sinks flush (the store sink waits for its writes), the recovery snapshot is
taken, and the run returns. A signal handler only sets the request, so it never interrupts a
step half done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Generic, TypeVar

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

X = TypeVar("X")
S = TypeVar("S")


class StopRequest:
    """Set once, from a signal handler or another thread; ``reason`` names the first cause."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()


class _StoppablePartition(StatefulSourcePartition[X, S], Generic[X, S]):
    def __init__(self, inner: StatefulSourcePartition[X, S], stop: StopRequest) -> None:
        self._inner = inner
        self._stop = stop

    def next_batch(self) -> Iterable[X]:
        if self._stop.requested:
            raise StopIteration
        return self._inner.next_batch()

    def next_awake(self) -> datetime | None:
        return None if self._stop.requested else self._inner.next_awake()

    def snapshot(self) -> S:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class StoppableSource(FixedPartitionedSource[X, S], Generic[X, S]):
    """``inner``'s partitions, each ending at its next read once ``stop`` is requested."""

    def __init__(self, inner: FixedPartitionedSource[X, S], stop: StopRequest) -> None:
        self._inner = inner
        self._stop = stop

    def list_parts(self) -> list[str]:
        return self._inner.list_parts()

    def build_part(
        self, step_id: str, for_part: str, resume_state: S | None
    ) -> _StoppablePartition[X, S]:
        part: Any = self._inner.build_part(step_id, for_part, resume_state)
        return _StoppablePartition(part, self._stop)
