"""Opening an ONNX session: a refusal is one short ModelError, whatever the model's source."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.model import open_session
from flows.model_cards import ModelError


@pytest.mark.parametrize("size", [1, 4096, 1_000_000])
def test_refused_bytes_are_named_by_size_not_dumped(size: int) -> None:
    graph = b"\x07" * size  # not a protobuf ONNX graph
    with pytest.raises(ModelError) as refused:
        open_session(graph)
    message = str(refused.value)
    assert message.startswith(f"ONNX Runtime cannot load a {size}-byte model: ")
    assert "\\x07" not in message


def test_refused_file_is_named_by_path(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x07" * 64)
    with pytest.raises(ModelError) as refused:
        open_session(path)
    assert str(refused.value).startswith(f"ONNX Runtime cannot load {path}: ")
