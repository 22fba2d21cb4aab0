"""The pace the model watches read the registry at."""

from __future__ import annotations

from flows.pacing import Pace


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_due_at_most_once_an_interval_counted_from_the_last_time_it_was() -> None:
    clock = Clock()
    pace = Pace(2.0, clock)
    assert not pace.due()  # an interval after it is made, not at once
    clock.now += 1.9
    assert not pace.due()
    clock.now += 0.2
    assert pace.due() and not pace.due()
    clock.now += 1.0
    assert not pace.due()  # counted from the last due, not from the start
    clock.now += 1.0
    assert pace.due()


def test_a_zero_interval_is_always_due() -> None:
    pace = Pace(0.0, Clock())
    assert all(pace.due() for _ in range(5))
