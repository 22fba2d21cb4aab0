"""The JSON-lines source: batches, line-numbered origins, blank lines, resuming a snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.connectors.file_source import JsonLinesSource
from flows.scoring import RawBatch


def _drain(source: JsonLinesSource, name: str, resume: tuple[int, int] | None) -> list[RawBatch]:
    part = source.build_part("events", name, resume)
    batches: list[RawBatch] = []
    try:
        for _ in range(100):  # bounded: the test files hold a handful of batches
            batches.extend(part.next_batch())
    except StopIteration:
        pass
    finally:
        part.close()
    return batches


def test_batches_carry_line_numbers_and_skip_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a":1}\n\n{"a":2}\r\n   \n{"a":3}\n{"a":4}\n{"a":5}')
    batches = _drain(JsonLinesSource([path], batch_size=2), "events.jsonl", None)
    assert all(0 < len(b.payloads) <= 2 for b in batches)
    assert [p for b in batches for p in b.payloads] == [b'{"a":%d}' % n for n in range(1, 6)]
    origins = [o for b in batches for o in b.origins]
    assert origins == [f"file:events.jsonl:{n}" for n in (1, 3, 5, 6, 7)]


def test_a_snapshot_resumes_after_the_last_batch(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"n":%d}\n' % n for n in range(1, 11)))
    source = JsonLinesSource([path], batch_size=3)
    part = source.build_part("events", "events.jsonl", None)
    first = part.next_batch() + part.next_batch()
    resume = part.snapshot()
    part.close()
    rest = _drain(source, "events.jsonl", resume)
    payloads = [p for b in first + rest for p in b.payloads]
    assert payloads == [b'{"n":%d}' % n for n in range(1, 11)]
    assert rest[0].origins[0] == "file:events.jsonl:7"


def test_two_files_need_distinct_names(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="distinct names"):
        JsonLinesSource([tmp_path / "a" / "x.jsonl", tmp_path / "b" / "x.jsonl"], batch_size=10)
