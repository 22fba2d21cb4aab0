"""A batch the one-call decode takes and the same events judged one by one (because a broken
payload sits among them) give the same rows: the fast path changes the cost, never the output."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import pyarrow as pa

from flows.batches import RawBatch
from flows.model import ScoringModel
from flows.scoring import BatchScorer
from flows.settings import Settings
from flows.validation import decode_events
from training.dataset import LendingClub
from training.repayments import mixed_events
from training.replay import ReplayPlan, application_events

START = datetime(2024, 1, 1, tzinfo=UTC)
RECEIVED = datetime(2024, 6, 1, tzinfo=UTC)
BROKEN = [b'{"schema_version": 1', b"", b'{"event_type": "loan_repayment"}']


def _rows(table: pa.Table) -> list[dict[str, object]]:
    # processed_at is the scoring moment: the one column two runs may not share. NaN (a
    # missing feature) is spelled out, as NaN is not equal to itself.
    rows = table.drop_columns(["processed_at"]).to_pylist()
    return [{k: "NaN" if v != v else v for k, v in row.items()} for row in rows]


def test_the_batch_path_and_the_per_event_path_give_the_same_rows(
    lending_club: LendingClub, model: ScoringModel, settings: Settings
) -> None:
    lines = list(application_events(lending_club, ReplayPlan(max_events=600, start=START)))
    origins = [f"t:{i}" for i in range(len(lines))]
    stamps = [1_700_000_000_000 + i for i in range(len(lines))]
    assert decode_events(lines, settings.max_payload_bytes) is not None
    scorer = BatchScorer(model, settings)
    fast = scorer(RawBatch(origins, lines, RECEIVED, source_ms=stamps))

    mixed_lines = lines[:100] + BROKEN[:1] + lines[100:400] + BROKEN[1:] + lines[400:]
    mixed_origins = [*origins[:100], "bad:0", *origins[100:400], "bad:1", "bad:2", *origins[400:]]
    mixed_stamps = [*stamps[:100], 0, *stamps[100:400], 0, 0, *stamps[400:]]
    assert decode_events(mixed_lines, settings.max_payload_bytes) is None
    slow = scorer(RawBatch(mixed_origins, mixed_lines, RECEIVED, source_ms=mixed_stamps))

    assert fast.scored.num_rows == fast.raw.num_rows == len(lines)
    assert fast.scored.schema == slow.scored.schema
    assert _rows(fast.scored) == _rows(slow.scored)
    assert fast.raw.to_pylist() == slow.raw.to_pylist()
    assert fast.dead.num_rows == 0
    assert sorted(slow.dead.column("origin").to_pylist()) == ["bad:0", "bad:1", "bad:2"]
    assert sorted(slow.dead.column("reason").to_pylist()) == sorted(
        ["malformed_json", "malformed_json", "missing_field"]
    )


def test_a_mixed_batch_gives_the_same_rows_and_loan_events_on_both_paths(
    lending_club: LendingClub, model: ScoringModel, settings: Settings
) -> None:
    lines = list(islice(mixed_events(lending_club, ReplayPlan(max_events=60, start=START)), 600))
    repayments = sum(b'"loan_repayment"' in line for line in lines)
    assert 300 < repayments < len(lines)
    origins = [f"t:{i}" for i in range(len(lines))]
    assert decode_events(lines, settings.max_payload_bytes) is not None
    scorer = BatchScorer(model, settings, track_loans=True)
    fast = scorer(RawBatch(origins, lines, RECEIVED))

    broken = [*lines[:300], BROKEN[0], *lines[300:]]
    slow = scorer(RawBatch([*origins[:300], "bad:0", *origins[300:]], broken, RECEIVED))

    assert fast.raw.num_rows == len(lines) and fast.dead.num_rows == 0
    assert fast.raw.to_pylist() == slow.raw.to_pylist()
    assert _rows(fast.scored) == _rows(slow.scored)
    assert fast.loan_events == slow.loan_events
    assert slow.dead.column("origin").to_pylist() == ["bad:0"]
