"""A repayment's event time is converted to milliseconds once, with its batch's raw rows, and
the live scorer stores that number: it must be the event's own instant, whatever its offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.batches import RawBatch
from flows.events import LATEST, epoch_ms
from flows.loan.book import Repaid
from flows.model import ScoringModel
from flows.scoring import BatchScorer
from flows.settings import Settings
from tests.unit.test_validation import REPAYMENT

OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
# local wall times whose instant stays inside what validation accepts, whatever the offset
TIMES = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=LATEST.replace(tzinfo=None) - timedelta(days=2)
)


def _millis(moment: datetime) -> int:
    """Milliseconds since the epoch counted from the days, seconds and microseconds apart."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moments=st.lists(st.tuples(TIMES, OFFSETS), min_size=1, max_size=30))
def test_each_repayment_carries_its_own_instant_in_milliseconds(
    model: ScoringModel, moments: list[tuple[datetime, timezone]]
) -> None:
    payloads = [
        msgspec.json.encode(
            {
                **REPAYMENT,
                "event_id": f"rep-{i}",
                "loan_id": f"L{i}",
                "event_time": local.replace(tzinfo=offset).isoformat(),
            }
        )
        for i, (local, offset) in enumerate(moments)
    ]
    scorer = BatchScorer(model, Settings(), track_loans=True)
    batch = scorer(RawBatch([f"t:{i}" for i in range(len(payloads))], payloads))
    repaid = [e for e in batch.loan_events if isinstance(e, Repaid)]
    assert len(repaid) == len(payloads)
    stored = batch.raw.column("event_time").cast("int64").to_pylist()
    for event, raw_ms in zip(repaid, stored, strict=True):
        expected = _millis(event.event.event_time)
        assert event.event_ms == raw_ms == expected == epoch_ms(event.event.event_time)
        # converted on construction when not given (a single event, an older snapshot)
        assert Repaid(event.event, event.origin, 0, 0).event_ms == expected
