"""The suite's layout as a pytest plugin: where a test lives and what it asks for decide its
markers, so placing a new test file is a ``git mv`` and nothing else.

- ``tests/unit/``: pure logic, chDB at most, quick; marked ``unit``.
- ``tests/integration/``: trains models, runs the dataflow, starts processes, talks to the
  broker, S3 or a stand-in server; marked ``integration``.
- ``kafka``, ``s3``, ``training``: earned by asking for the fixture that provides the service
  or the trained models (directly or through another fixture), or set on the test by hand
  where it trains on its own. A unit test carrying one stops the session with one line.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

LAYERS = ("unit", "integration")
FIXTURE_MARKERS: dict[str, frozenset[str]] = {
    "kafka": frozenset({"kafka_bootstrap"}),
    "s3": frozenset({"s3_endpoint"}),
    "training": frozenset({"training_result", "priced_result", "behaviour_result"}),
}


def layer_of(relative: Path) -> str | None:
    """``unit`` or ``integration`` for a module under ``tests/<layer>/`` (a path relative to
    the repository root), None anywhere else (a file not placed yet)."""
    parts = relative.parts
    if len(parts) >= 3 and parts[0] == "tests" and parts[1] in LAYERS:
        return parts[1]
    return None


def needs_of(fixtures: Iterable[str], marked: Iterable[str]) -> list[str]:
    """The service and training markers a test needs: from its fixtures or set by hand."""
    have, explicit = set(fixtures), set(marked)
    return [name for name, wanted in FIXTURE_MARKERS.items() if wanted & have or name in explicit]


# tryfirst: the markers must be on the items before `-m` deselects by them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    misplaced: list[str] = []
    for item in items:
        path = item.path
        layer = (
            layer_of(path.relative_to(config.rootpath))
            if path.is_relative_to(config.rootpath)
            else None
        )
        if layer is not None:
            item.add_marker(layer)
        needs = needs_of(getattr(item, "fixturenames", ()), (m.name for m in item.iter_markers()))
        for name in needs:
            item.add_marker(name)
        if layer == "unit" and needs:
            misplaced.append(f"{item.nodeid} ({', '.join(needs)})")
    if misplaced:
        raise pytest.UsageError(
            "unit tests use no broker, S3 or trained model; move to tests/integration: "
            + "; ".join(misplaced)
        )
