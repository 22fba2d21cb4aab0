"""The JSON-lines source: batches, line-numbered origins, blank lines, resuming a snapshot, and
oversized lines read in bounded memory."""

from __future__ import annotations

import hashlib
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.batches import RawBatch, dead_letter_table
from flows.connectors.file_source import JsonLinesSource
from flows.validation import OVERSIZED_PREFIX_BYTES

LIMIT = 16 * 1024


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
    # every kind of ASCII whitespace makes a blank line; a \x1c (not whitespace) is a payload
    path.write_bytes(b'{"a":1}\n\n{"a":2}\r\n \t\x0b\x0c\r\n{"a":3}\n{"a":4}\n\x1c\n{"a":5}')
    batches = _drain(JsonLinesSource([path], batch_size=2, max_bytes=LIMIT), "events.jsonl", None)
    assert all(0 < len(b.payloads) <= 2 for b in batches)
    expected = [b'{"a":%d}' % n for n in range(1, 5)] + [b"\x1c", b'{"a":5}']
    assert [p for b in batches for p in b.payloads] == expected
    origins = [o for b in batches for o in b.origins]
    assert origins == [f"file:events.jsonl:{n}" for n in (1, 3, 5, 6, 7, 8)]


def test_a_snapshot_resumes_after_the_last_batch(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"n":%d}\n' % n for n in range(1, 11)))
    source = JsonLinesSource([path], batch_size=3, max_bytes=LIMIT)
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
        JsonLinesSource(
            [tmp_path / "a" / "x.jsonl", tmp_path / "b" / "x.jsonl"], batch_size=10, max_bytes=LIMIT
        )


def _write_with_huge_line(path: Path, huge: int, tail: bytes) -> bytes:
    """Good lines around one line of ``huge`` bytes (written in pieces); returns a line's
    worth of the huge one's start."""
    piece = b'{"event_type": "loan_application", "note": "' + b"x" * (1 << 20)
    with path.open("wb") as out:
        out.write(b'{"n": 1}\n')
        written = 0
        while written < huge:
            chunk = piece[: huge - written]
            out.write(chunk)
            written += len(chunk)
        out.write(tail + b'{"n": 3}\n\n{"n": 4}')
    return piece[:OVERSIZED_PREFIX_BYTES]


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_an_oversized_line_is_read_in_bounded_memory(tmp_path: Path, line_end: bytes) -> None:
    huge = 40 * (1 << 20)
    path = tmp_path / "big.jsonl"
    prefix = _write_with_huge_line(path, huge, line_end)
    # the huge line's own digest, computed apart from the source: everything before its end
    data = path.read_bytes()
    start = data.index(b"\n") + 1
    end = data.index(line_end, start)
    digest = hashlib.sha256(data[start:end]).hexdigest()
    del data
    tracemalloc.start()
    try:
        batches = _drain(JsonLinesSource([path], batch_size=2, max_bytes=LIMIT), "big.jsonl", None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak  # the line is 40 MiB; reading holds a chunk at a time
    [dead] = [d for b in batches for d in b.errors]
    assert dead.reason == "oversized" and dead.origin == "file:big.jsonl:2"
    assert dead.payload == prefix
    assert f"payload of {huge} bytes" in dead.detail and f"sha256 {digest}" in dead.detail
    assert [p for b in batches for p in b.payloads] == [b'{"n": 1}', b'{"n": 3}', b'{"n": 4}']
    assert [o for b in batches for o in b.origins] == [
        "file:big.jsonl:1", "file:big.jsonl:3", "file:big.jsonl:5",
    ]  # fmt: skip
    # stored once, as the bounded prefix, in both payload columns
    row = dead_letter_table([dead], datetime(2024, 1, 1, tzinfo=UTC)).to_pylist()[0]
    assert len(row["payload"]) == OVERSIZED_PREFIX_BYTES
    assert len(row["payload_base64"]) <= OVERSIZED_PREFIX_BYTES * 4 // 3 + 4


def test_a_line_at_the_limit_is_not_oversized(tmp_path: Path) -> None:
    exact = b'{"a": "' + b"y" * (LIMIT - 9) + b'"}'
    assert len(exact) == LIMIT
    path = tmp_path / "edge.jsonl"
    path.write_bytes(exact + b"\r\n" + exact + b"z\n" + exact)
    batches = _drain(JsonLinesSource([path], batch_size=10, max_bytes=LIMIT), "edge.jsonl", None)
    assert [p for b in batches for p in b.payloads] == [exact, exact + b"z", exact]
    assert not [d for b in batches for d in b.errors]
