"""The values that travel between the flow's steps, and the Arrow pieces their tables share.

This is the ground floor: sources, scorers, sinks and the writer all import it, so it imports
no model runtime and no Bytewax, and a connector can load without onnxruntime.

A source yields :class:`RawBatch`. The scorer turns it into an :class:`ApplicationBatch`
(the rows of ``raw_events``, ``scored_events`` and ``dead_letters``); the live scorer turns the
per-loan state's observations into a :class:`RepaymentBatch` (``repayment_scores`` and the
dead letters the state logic made). The store sink takes either: a :data:`ScoredBatch`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from flows.clock import utc_now
from flows.validation import DeadLetter

if TYPE_CHECKING:
    from flows.loan.book import LoanEvent

# The store's two instant types: event and source times in ms, arrival and processing in us.
TS_S = pa.timestamp("s", tz="UTC")
TS_MS = pa.timestamp("ms", tz="UTC")
TS_US = pa.timestamp("us", tz="UTC")

NO_ROWS = pa.table({})

Positions = dict[tuple[str, int], int]  # (topic, partition) -> next offset to read


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Payloads read together by a source, with where each came from.

    ``source_ms`` holds each payload's source timestamp (Kafka's, in ms) when the source has
    one; ``errors`` are payloads the source itself could not deliver, already dead letters.
    """

    origins: list[str]
    payloads: list[bytes]
    received_at: datetime = field(default_factory=utc_now)
    source: str = "file"
    source_ms: list[int] | None = None
    positions: Positions = field(default_factory=dict)
    errors: list[DeadLetter] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.payloads) + len(self.errors)


@dataclass(frozen=True, slots=True)
class ApplicationBatch:
    """One raw batch scored: its valid events, application scores and dead letters, plus where
    the source stood after it. Every event the source read is counted here or, for a
    repayment, in the :class:`RepaymentBatch` its observation ends up in."""

    raw: pa.Table
    scored: pa.Table
    dead: pa.Table
    source: str = "file"
    positions: Positions = field(default_factory=dict)
    # for the per-loan state step; empty when no behavioural model follows the loans
    loan_events: list[LoanEvent] = field(default_factory=list)
    # a challenger's scores of the same applications (shadow_scores); None when none shadows
    shadow: pa.Table | None = None

    @property
    def tables(self) -> dict[str, pa.Table]:
        tables = {"raw_events": self.raw, "scored_events": self.scored, "dead_letters": self.dead}
        if self.shadow is not None:
            tables["shadow_scores"] = self.shadow
        return tables

    @property
    def sent(self) -> int:
        return self.scored.num_rows + self.dead.num_rows


@dataclass(frozen=True, slots=True)
class RepaymentBatch:
    """Live scores of repayments from the per-loan state step, and what that step refused."""

    repayments: pa.Table
    dead: pa.Table = field(default_factory=lambda: NO_ROWS)
    # net change of repayments waiting for their application (negative once applied)
    pending_repayments: int = 0
    # repeats of events already applied to the per-loan state: read, and skipped
    skipped: int = 0
    # rows of ``repayments`` scored from the store's history, not from events read now
    restored: int = 0

    @property
    def tables(self) -> dict[str, pa.Table]:
        return {"repayment_scores": self.repayments, "dead_letters": self.dead}

    @property
    def sent(self) -> int:
        return self.repayments.num_rows + self.dead.num_rows + self.skipped - self.restored


ScoredBatch = ApplicationBatch | RepaymentBatch


def restored_rows(batches: Iterable[ScoredBatch]) -> int:
    """Live-score rows across ``batches`` that came from stored history (see RepaymentBatch)."""
    return sum(b.restored for b in batches if type(b) is RepaymentBatch)


def pending_change(batches: Iterable[ScoredBatch]) -> int:
    """Net change of repayments waiting for their application across ``batches``."""
    return sum(b.pending_repayments for b in batches if type(b) is RepaymentBatch)


def dead_letter_table(dead: list[DeadLetter], received_at: datetime) -> pa.Table:
    return pa.table(
        {
            "dead_letter_id": pa.array([d.dead_letter_id for d in dead], pa.string()),
            "received_at": pa.array([received_at] * len(dead), TS_US),
            "origin": pa.array([d.origin for d in dead], pa.string()),
            "reason": pa.array([d.reason for d in dead], pa.string()),
            "detail": pa.array([d.detail for d in dead], pa.string()),
            "payload": pa.array(
                [d.payload.decode("utf-8", errors="replace") for d in dead], pa.string()
            ),
            "payload_base64": pa.array(
                [base64.b64encode(d.payload).decode("ascii") for d in dead], pa.string()
            ),
        }
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def utc_ms(times: list[datetime]) -> pa.Array:
    """:func:`~flows.events.epoch_ms` of each of ``times``, as an Arrow timestamp array."""
    # its formula written out: a call per value would cost a fifth more
    millis = np.fromiter([(t - _EPOCH) // _MS for t in times], np.int64, len(times))
    return pa.array(millis, TS_MS)


def utf8_strings(values: list[bytes]) -> pa.Array:
    """Byte strings already checked to be UTF-8 as an Arrow string array: their bytes copied
    once into the data buffer, without a Python string or a check per value."""
    total = sum(map(len, values))
    if total >= 2**31:  # past what a string array's 32-bit offsets can address
        return pa.array([v.decode() for v in values], pa.string())
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, values), np.int32, len(values)), out=offsets[1:])
    data = pa.py_buffer(b"".join(values))
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), data)


def constant_time(moment: datetime, n: int) -> pa.Array:
    """``moment`` repeated ``n`` times, in microseconds, built without a Python object per row."""
    micros = int(moment.timestamp() * 1_000_000)
    return pa.array(np.full(n, micros, dtype=np.int64), TS_US)


def constant(value: str, n: int) -> pa.Array:
    """``value`` repeated ``n`` times, through a one-entry dictionary: no string per row."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value])
    ).cast(pa.string())


def names_at(names: pa.Array, index: np.ndarray) -> pa.Array:
    """``names[index]`` as a string column, through a dictionary: no string object per row."""
    return pa.DictionaryArray.from_arrays(pa.array(index, pa.int32()), names).cast(pa.string())
