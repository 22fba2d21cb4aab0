"""JSON-lines files as a Bytewax source: one partition per file, read in micro-batches.

The resume state is the byte offset and line number after the last emitted batch, so a restored
flow continues where its last snapshot was. Each event's origin is ``file:<name>:<line>``,
stable across runs, which keeps dead-letter ids deterministic.

Lines are read with a bound: a line longer than the payload limit is never held whole. Its
first bytes are kept, the rest is read in chunks only to measure and hash it, and it becomes an
``oversized`` dead letter carrying that prefix, its length and its SHA-256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.batches import RawBatch
from flows.validation import DeadLetter, oversized_letter

Position = tuple[int, int]  # (byte offset, lines already read)

# How much of an oversized line's remainder is read at a time.
CHUNK_BYTES = 256 * 1024


def _rest_of_line(file: BinaryIO, head: bytes) -> tuple[int, int, str]:
    """Read an over-long line to its end in bounded chunks: (bytes consumed after ``head``,
    the payload's length and its SHA-256), the payload being the line without its line end.
    Chunks are hashed through memoryviews, so at most one chunk is held at a time."""
    digest = hashlib.sha256()
    length = consumed = 0
    held = b""  # the last byte read, not hashed yet: it may be the "\r" of a "\r\n"
    chunk = head
    while True:
        if chunk.endswith(b"\n"):
            body = memoryview(chunk)[:-1]
            if len(body) and body[-1] == ord("\r"):
                body = body[:-1]
            if len(body) or held != b"\r":
                digest.update(held)
                length += len(held)
            digest.update(body)
            return consumed, length + len(body), digest.hexdigest()
        digest.update(held)
        length += len(held)
        if not chunk:  # the file ends without a line end
            return consumed, length, digest.hexdigest()
        with memoryview(chunk) as view:
            digest.update(view[:-1])
        length += len(chunk) - 1
        held = chunk[-1:]
        del chunk  # before reading the next one
        chunk = file.readline(CHUNK_BYTES)
        consumed += len(chunk)


class _FilePartition(StatefulSourcePartition[RawBatch, Position]):
    def __init__(
        self, path: Path, batch_size: int, max_bytes: int, resume: Position | None
    ) -> None:
        self._name = path.name
        self._file = path.open("rb")
        self._offset, self._line = resume or (0, 0)
        self._file.seek(self._offset)
        self._batch_size = batch_size
        self._max_bytes = max_bytes

    def next_batch(self) -> list[RawBatch]:
        readline = self._file.readline
        # a payload at the limit plus "\r\n" fits; a longer read is an oversized line
        limit = self._max_bytes + 2
        prefix = f"file:{self._name}:"
        origins: list[str] = []
        payloads: list[bytes] = []
        errors: list[DeadLetter] = []
        # position kept in locals, stored once the batch is read: this loop runs per line
        line, offset = self._line, self._offset
        for _ in range(self._batch_size):
            raw = readline(limit)
            if not raw:
                break
            line += 1
            offset += len(raw)
            if len(raw) == limit and not raw.endswith(b"\n"):
                consumed, length, digest = _rest_of_line(self._file, raw)
                offset += consumed
                errors.append(
                    oversized_letter(f"{prefix}{line}", raw, length, digest, self._max_bytes)
                )
                continue
            payload = raw.rstrip(b"\r\n")
            # blank lines are no events (isspace: the bytes strip() removes, without a copy)
            if payload and not payload.isspace():
                payloads.append(payload)
                origins.append(f"{prefix}{line}")
        if line == self._line:
            raise StopIteration
        self._line, self._offset = line, offset
        return [RawBatch(origins, payloads, errors=errors)] if payloads or errors else []

    def snapshot(self) -> Position:
        return (self._offset, self._line)

    def close(self) -> None:
        self._file.close()


class JsonLinesSource(FixedPartitionedSource[RawBatch, Position]):
    def __init__(self, paths: list[Path], batch_size: int, *, max_bytes: int) -> None:
        self._paths = {path.name: path for path in paths}
        if len(self._paths) != len(paths):
            raise ValueError("input files must have distinct names")
        self._batch_size = batch_size
        self._max_bytes = max_bytes

    def list_parts(self) -> list[str]:
        return list(self._paths)

    def build_part(
        self, step_id: str, for_part: str, resume_state: Position | None
    ) -> _FilePartition:
        path = self._paths[for_part]
        return _FilePartition(path, self._batch_size, self._max_bytes, resume_state)
