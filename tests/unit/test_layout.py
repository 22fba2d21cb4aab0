"""The suite's layout (tests/layout.py): markers follow from a test's directory and from the
fixtures it asks for, a unit test that needs the broker, S3 or a trained model stops the
session, and every test module of this repository sits in tests/unit or tests/integration."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.layout import FIXTURE_MARKERS, LAYERS, layer_of, needs_of

ROOT = Path(__file__).resolve().parents[2]

# What the inner sessions' test files ask for: the real fixtures' names, standing for them.
STAND_INS = "\n".join(
    f"@pytest.fixture\ndef {name}():\n    return {name!r}\n"
    for names in FIXTURE_MARKERS.values()
    for name in sorted(names)
)


def declared_markers() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["pytest"]["ini_options"]["markers"]


@pytest.fixture
def tree(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A repository of its own: this project's declared markers (strictly), the layout
    plugin, and a fixture under each name that earns a marker."""
    # Installed plugins (hypothesis, time-machine, ...) are not what these sessions test.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    markers = "".join(f"    {m!r},\n" for m in declared_markers())
    pytester.makepyprojecttoml(
        f'[tool.pytest.ini_options]\naddopts = "--strict-markers -p tests.layout"\n'
        f"markers = [\n{markers}]\n"
    )
    pytester.makeconftest(f"import pytest\n\n{STAND_INS}")
    return pytester


def selected(tree: pytest.Pytester, *args: str) -> set[str]:
    result = tree.runpytest_inprocess("--collect-only", "-q", *args)
    return {line.split("::")[-1] for line in result.outlines if "::" in line}


def test_every_marker_the_layout_gives_is_declared() -> None:
    names = {m.split(":")[0] for m in declared_markers()}
    assert set(LAYERS) | set(FIXTURE_MARKERS) <= names


@pytest.mark.parametrize(
    ("relative", "layer"),
    [
        ("tests/unit/test_a.py", "unit"),
        ("tests/integration/test_a.py", "integration"),
        ("tests/integration/deeper/test_a.py", "integration"),
        ("tests/test_a.py", None),  # not placed yet
        ("tests/unit", None),
        ("docs/unit/test_a.py", None),
    ],
)
def test_layer_comes_from_the_directory(relative: str, layer: str | None) -> None:
    assert layer_of(Path(relative)) == layer


@pytest.mark.parametrize("marker", sorted(FIXTURE_MARKERS))
def test_each_fixture_earns_its_marker_and_only_its_own(marker: str) -> None:
    for fixture in FIXTURE_MARKERS[marker]:
        assert needs_of(["tmp_path", fixture], []) == [marker]
    assert needs_of(["tmp_path"], [marker, "slow"]) == [marker]
    assert needs_of(["tmp_path", "store"], ["slow"]) == []


def test_markers_select_by_directory_and_fixture(tree: pytest.Pytester) -> None:
    tree.makepyfile(
        **{
            "tests/unit/test_pure": "def test_pure():\n    pass\n",
            "tests/integration/test_services": (
                "def test_broker(kafka_bootstrap):\n    pass\n\n"
                "def test_bucket(s3_endpoint):\n    pass\n\n"
                "def test_model(behaviour_result):\n    pass\n\n"
                "def test_files(tmp_path):\n    pass\n"
            ),
            "tests/test_new": "def test_not_placed_yet():\n    pass\n",
        }
    )
    everything = {"test_pure", "test_broker", "test_bucket", "test_model", "test_files"}
    assert selected(tree) == everything | {"test_not_placed_yet"}
    assert selected(tree, "-m", "unit") == {"test_pure"}
    assert selected(tree, "-m", "integration") == everything - {"test_pure"}
    assert selected(tree, "-m", "kafka") == {"test_broker"}
    assert selected(tree, "-m", "s3") == {"test_bucket"}
    assert selected(tree, "-m", "training") == {"test_model"}
    assert "test_broker" not in selected(tree, "-m", "not kafka")


@pytest.mark.parametrize(
    "body",
    [
        "def test_needs_broker(kafka_bootstrap):\n    pass\n",
        "def test_needs_bucket(s3_endpoint):\n    pass\n",
        "import pytest\n\n@pytest.fixture\ndef home(training_result):\n    return 1\n\n"
        "def test_needs_model(home):\n    pass\n",
        "import pytest\n\n@pytest.mark.training\ndef test_trains_itself():\n    pass\n",
    ],
    ids=["kafka", "s3", "training-through-a-fixture", "training-by-hand"],
)
def test_a_unit_test_that_needs_a_service_stops_the_session(
    tree: pytest.Pytester, body: str
) -> None:
    tree.makepyfile(**{"tests/unit/test_misplaced": body})
    result = tree.runpytest_inprocess("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*move to tests/integration: tests/unit/test_misplaced.py::*"])


def test_every_test_module_is_placed() -> None:
    """A test file added at tests/ (or anywhere else) belongs in tests/unit or
    tests/integration: `git mv` it there and its markers follow."""
    modules = [p.relative_to(ROOT) for p in (ROOT / "tests").rglob("test_*.py")]
    assert modules
    unplaced = [str(p) for p in modules if layer_of(p) is None]
    assert not unplaced, f"place these in tests/unit or tests/integration: {unplaced}"
