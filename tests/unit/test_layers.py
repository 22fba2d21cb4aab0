"""The layout holds: connectors and batch types load without the model runtime, the two
scorers are peers, no module reaches into another's private names, and the store's Arrow
instant types are defined once.

Imports are checked in a fresh interpreter, since this test process has loaded everything.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

FLOWS = Path(__file__).resolve().parents[2] / "flows"


def _loaded_after(module: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of ``candidates`` a fresh interpreter holds after importing ``module``."""
    script = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([m for m in {list(candidates)!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("flows.batches", ("onnxruntime", "bytewax", "flows.scoring", "flows.model")),
        ("flows.connectors.file_source", ("onnxruntime", "flows.scoring")),
        ("flows.connectors.kafka_input", ("onnxruntime", "flows.scoring")),
        ("flows.connectors.dead_letter_topic", ("onnxruntime", "flows.scoring")),
        # the sink only writes: ops rows and lag probing are handed to it where it is built
        (
            "flows.connectors.store_sink",
            ("onnxruntime", "flows.ops", "flows.lag", "confluent_kafka"),
        ),
        ("flows.connectors.archive_source", ("onnxruntime", "flows.scoring", "flows.jobs")),
        # the archive reads and writes S3; running a flow over it is flows.jobs' part
        ("flows.archive", ("flows.jobs", "flows.dataflow", "bytewax")),
        # the scorers are pure apart from the model: no Bytewax in either
        ("flows.scoring", ("flows.live_scoring", "bytewax")),
        ("flows.live_scoring", ("flows.scoring", "bytewax")),
    ],
)
def test_a_module_loads_only_what_its_layer_needs(module: str, absent: tuple[str, ...]) -> None:
    assert _loaded_after(module, absent) == []


def _modules() -> list[Path]:
    return sorted(FLOWS.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(FLOWS.parent)))
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flows")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def test_the_arrow_instant_types_are_defined_once() -> None:
    defining = [
        str(path.relative_to(FLOWS.parent))
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "timestamp"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "pa"
    ]
    assert defining == ["flows/batches.py"] * 3
