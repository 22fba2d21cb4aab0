"""JSON-lines files as a Bytewax source: one partition per file, read in micro-batches.

The resume state is the byte offset and line number after the last emitted batch, so a restored
flow continues where its last snapshot was. Each event's origin is ``file:<name>:<line>``,
stable across runs, which keeps dead-letter ids deterministic.
"""

from __future__ import annotations

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
        origins: list[str] = []
        payloads: list[bytes] = []
        for raw in self._file:
            self._offset += len(raw)
            self._line += 1
            payload = raw.rstrip(b"\r\n")
            if not payload.strip():
                continue
            origins.append(f"file:{self._name}:{self._line}")
            payloads.append(payload)
            if len(payloads) >= self._batch_size:
                break
        if not payloads:
            raise StopIteration
        return [RawBatch(origins, payloads)]

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
