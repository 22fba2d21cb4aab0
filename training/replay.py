"""Real LendingClub loans as a reproducible stream of timestamped application events.

The seed fixes the loan order and which events get a deliberately broken twin (for exercising
dead letters); ``start`` and ``spacing`` fix the event times. The same arguments give the same
bytes. Beyond the 9,857 real loans the rows repeat under new loan ids (``LC00042-r1``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from training.dataset import LendingClub, application_record, iter_rows, loan_id_for

_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True)
class ReplayPlan:
    max_events: int
    seed: int = 7
    start: datetime | None = None
    spacing: timedelta = timedelta(milliseconds=100)
    corrupt_share: float = 0.0

    def start_time(self) -> datetime:
        """The first event time; by default chosen so the last event lands about now."""
        if self.start is not None:
            return self.start.astimezone(UTC)
        now = datetime.now(UTC).replace(microsecond=0)
        return now - self.spacing * self.max_events


def _negative_amount(record: dict) -> bytes:
    return _ENCODER.encode({**record, "funded_amnt": -abs(record["funded_amnt"])})


def _unknown_state(record: dict) -> bytes:
    return _ENCODER.encode({**record, "addr_state": "ZZ"})


def _missing_loan_id(record: dict) -> bytes:
    return _ENCODER.encode({k: v for k, v in record.items() if k != "loan_id"})


def _rate_as_text(record: dict) -> bytes:
    return _ENCODER.encode({**record, "int_rate": f"{record['int_rate']}%"})


def _truncated(record: dict) -> bytes:
    encoded = _ENCODER.encode(record)
    return encoded[: len(encoded) // 2]


def _not_utf8(record: dict) -> bytes:
    return _ENCODER.encode(record).replace(b'"loan_application"', b'"loan_\xff\xfeapplication"')


CORRUPTIONS: tuple[Callable[[dict], bytes], ...] = (
    _negative_amount,
    _unknown_state,
    _missing_loan_id,
    _rate_as_text,
    _truncated,
    _not_utf8,
)


def application_events(data: LendingClub, plan: ReplayPlan) -> Iterator[bytes]:
    """JSON-encoded events (no trailing newline): ``max_events`` valid ones, plus broken twins."""
    rng = random.Random(plan.seed)
    rows = list(iter_rows(data))
    start = plan.start_time()
    emitted = 0
    cycle = 0
    while emitted < plan.max_events:
        order = list(range(len(rows)))
        rng.shuffle(order)
        for index in order:
            if emitted >= plan.max_events:
                return
            row_number, row = rows[index]
            event_time = start + plan.spacing * emitted
            record = application_record(row, loan_id_for(row_number, cycle), event_time)
            yield _ENCODER.encode(record)
            emitted += 1
            if plan.corrupt_share and rng.random() < plan.corrupt_share:
                broken = {**record, "event_id": f"{record['event_id']}-broken"}
                yield rng.choice(CORRUPTIONS)(broken)
        cycle += 1
