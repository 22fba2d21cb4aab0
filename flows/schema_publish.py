"""The published JSON schemas of the event types (``flows/schemas/``).

``python -m flows.schema_publish`` writes them from the msgspec structs; a test checks that the
files still say what the code says, compared in normalized form, so that a cosmetic change in
how msgspec renders a schema (key order, a docstring's indentation) is not a schema change.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from flows.events import application_json_schema, repayment_json_schema

SCHEMA_DIR = Path(__file__).parent / "schemas"

PUBLISHED: dict[str, Callable[[], dict[str, object]]] = {
    "loan_application.v1.json": application_json_schema,
    "loan_repayment.v1.json": repayment_json_schema,
}

# Lists whose order carries no meaning in JSON Schema.
_SETS = frozenset({"enum", "required", "anyOf", "oneOf", "type"})


def normalized(node: object, key: str = "") -> object:
    """The schema with whitespace runs in text collapsed and unordered lists sorted; key order
    never matters once compared as dicts."""
    if isinstance(node, dict):
        return {k: normalized(v, k) for k, v in node.items()}
    if isinstance(node, list):
        items = [normalized(v) for v in node]
        if key in _SETS:
            items.sort(key=lambda v: json.dumps(v, sort_keys=True))
        return items
    if isinstance(node, str):
        return " ".join(node.split())
    return node


def render(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    written = []
    for name, build in PUBLISHED.items():
        path = directory / name
        path.write_text(render(build()))
        written.append(path)
    return written


def main() -> int:
    for path in write():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
