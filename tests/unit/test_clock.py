"""The processing clock can be set to an instant for a block, and only for that block."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from flows import clock
from flows.batches import RawBatch

EPOCH = datetime(2031, 7, 1, 8, 30, tzinfo=UTC)


def test_a_block_runs_from_its_epoch_and_time_moves_on_in_order() -> None:
    with clock.running_from(EPOCH):
        first = clock.utc_now()
        second = clock.utc_now()
    assert EPOCH <= first <= second < EPOCH + timedelta(minutes=5)
    assert first.tzinfo is not None and first.utcoffset() == timedelta(0)


def test_the_clock_is_back_after_the_block_even_when_it_raises() -> None:
    later = EPOCH + timedelta(days=400)
    with clock.running_from(EPOCH):
        with pytest.raises(RuntimeError), clock.running_from(later):
            assert clock.utc_now() >= later
            raise RuntimeError("boom")
        assert EPOCH <= clock.utc_now() < EPOCH + timedelta(minutes=5)


def test_other_threads_and_stamped_batches_see_the_set_time() -> None:
    seen: list[datetime] = []
    with clock.running_from(EPOCH):
        worker = threading.Thread(target=lambda: seen.append(clock.utc_now()))
        worker.start()
        worker.join(timeout=10)
        batch = RawBatch(origins=["file:0"], payloads=[b"{}"])
    assert len(seen) == 1 and EPOCH <= seen[0] < EPOCH + timedelta(minutes=5)
    assert EPOCH <= batch.received_at < EPOCH + timedelta(minutes=5)


def test_a_naive_epoch_is_refused() -> None:
    with pytest.raises(ValueError), clock.running_from(EPOCH.replace(tzinfo=None)):
        pass
