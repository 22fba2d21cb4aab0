"""ops_batches' latency runs from each score's event time to the moment its write returned,
for application and repayment scores alike, on a fixed epoch."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from flows.batches import TS_MS, ApplicationBatch, RepaymentBatch, ScoredBatch
from flows.ops import batch_row, latency_ms
from flows.writer import WriteResult

QUERYABLE = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NO_ROWS = pa.table({})


def times(*ms_before: int) -> pa.Array:
    return pa.array([QUERYABLE - timedelta(milliseconds=ms) for ms in ms_before], TS_MS)


def applications(*ms_before: int) -> ApplicationBatch:
    return ApplicationBatch(
        raw=NO_ROWS, scored=pa.table({"event_time": times(*ms_before)}), dead=NO_ROWS
    )


def repayments(*ms_before: int) -> RepaymentBatch:
    return RepaymentBatch(repayments=pa.table({"event_time": times(*ms_before)}))


@pytest.mark.parametrize(
    ("batches", "expected"),
    [
        ([applications(250, 1_500)], [250.0, 1_500.0]),
        ([repayments(40)], [40.0]),
        ([applications(10), repayments(20, 30)], [10.0, 20.0, 30.0]),
        ([applications(), repayments()], []),
    ],
    ids=["applications", "repayments", "both", "none"],
)
def test_latency_is_event_time_to_queryable(
    batches: list[ScoredBatch], expected: list[float]
) -> None:
    assert latency_ms(batches, QUERYABLE).tolist() == expected


def test_the_ops_row_is_stamped_when_the_write_returned() -> None:
    batches: list[ScoredBatch] = [applications(*range(100, 1_100, 10))]
    row = batch_row("f", 0, batches, WriteResult(100, 100, 0, 0), 12.5, QUERYABLE).to_pylist()[0]
    assert row["written_at"] == QUERYABLE
    assert row["latency_p50_ms"] == pytest.approx(595.0)
    assert row["latency_max_ms"] == 1_090.0
    assert row["latency_p50_ms"] <= row["latency_p95_ms"] <= row["latency_p99_ms"]
    empty = batch_row("f", 0, [repayments()], WriteResult(0, 0, 0, 0), 1.0, QUERYABLE)
    assert math.isnan(empty.column("latency_p99_ms")[0].as_py())
