"""The processing clock: the time riskctl stamps on what it does (``processed_at``,
``received_at``, ops and lag rows, drift checks, archive manifests, the end of a "last hour").

Event times come from the events; only these processing times read the clock, and they read it
here, so a caller can run the whole pipeline at a chosen instant (:func:`running_from`): a
replay of a past day, or a test whose answers must not depend on the day it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


def _wall() -> datetime:
    return datetime.now(UTC)


_now: Callable[[], datetime] = _wall


def utc_now() -> datetime:
    """The processing time now, in UTC."""
    return _now()


@contextmanager
def running_from(epoch: datetime) -> Iterator[None]:
    """Processing time starts at ``epoch`` and advances with real elapsed time (so stamps keep
    their order and spacing) until the block ends; every thread sees it."""
    if epoch.tzinfo is None:
        raise ValueError("the epoch must be timezone-aware")
    global _now
    started = time.monotonic()
    previous = _now
    _now = lambda: (epoch + timedelta(seconds=time.monotonic() - started)).astimezone(UTC)  # noqa: E731
    try:
        yield
    finally:
        _now = previous
