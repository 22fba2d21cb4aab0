"""At most once every so often: how the model watches pace their reads of the registry, which
they are asked for at every micro-batch."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pace:
    """:meth:`due` is true at most once every ``interval_s`` of ``clock``, starting one interval
    after it is made. Not thread-safe: callers hold their own lock around what it paces."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval_s
        self._clock = clock
        self._last = clock()

    def due(self) -> bool:
        now = self._clock()
        if now - self._last < self._interval:
            return False
        self._last = now
        return True
