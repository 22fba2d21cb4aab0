"""JSON-lines files as a Bytewax source: one partition per file, read in micro-batches.

The resume state is the byte offset and line number after the last emitted batch, so a restored
flow continues where its last snapshot was. Each event's origin is ``file:<name>:<line>``,
stable across runs, which keeps dead-letter ids deterministic.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from flows.scoring import RawBatch

Position = tuple[int, int]  # (byte offset, lines already read)


class _FilePartition(StatefulSourcePartition[RawBatch, Position]):
    def __init__(self, path: Path, batch_size: int, resume: Position | None) -> None:
        self._name = path.name
        self._file = path.open("rb")
        self._offset, self._line = resume or (0, 0)
        self._file.seek(self._offset)
        self._batch_size = batch_size

    def next_batch(self) -> list[RawBatch]:
        lines = list(islice(self._file, self._batch_size))
        if not lines:
            raise StopIteration
        first = self._line + 1
        self._line += len(lines)
        self._offset += sum(map(len, lines))
        payloads = [raw.rstrip(b"\r\n") for raw in lines]
        name = self._name
        if all(map(bytes.strip, payloads)):  # no blank lines: the usual case, in one pass
            origins = [f"file:{name}:{n}" for n in range(first, first + len(payloads))]
        else:
            kept = [(n, p) for n, p in enumerate(payloads, first) if p.strip()]
            origins = [f"file:{name}:{n}" for n, _ in kept]
            payloads = [p for _, p in kept]
        return [RawBatch(origins, payloads)] if payloads else []

    def snapshot(self) -> Position:
        return (self._offset, self._line)

    def close(self) -> None:
        self._file.close()


class JsonLinesSource(FixedPartitionedSource[RawBatch, Position]):
    def __init__(self, paths: list[Path], batch_size: int) -> None:
        self._paths = {path.name: path for path in paths}
        if len(self._paths) != len(paths):
            raise ValueError("input files must have distinct names")
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return list(self._paths)

    def build_part(
        self, step_id: str, for_part: str, resume_state: Position | None
    ) -> _FilePartition:
        return _FilePartition(self._paths[for_part], self._batch_size, resume_state)
