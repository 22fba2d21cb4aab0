"""Models are verified when they load: every corruption of a model version is one ModelError
line (and one `error:` line from the CLI), never a traceback or a model that scores wrongly."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from flows.model import load_model
from flows.model_cards import ModelError, current_version

Corruption = Callable[[Path, Path], None]  # (version dir, other kind's version dir)


def _edit_card(change: Callable[[dict[str, Any]], None]) -> Corruption:
    def corrupt(version: Path, _: Path) -> None:
        card = json.loads((version / "card.json").read_text())
        change(card)
        (version / "card.json").write_text(json.dumps(card))

    return corrupt


def _drop(*path: str) -> Corruption:
    def change(card: dict[str, Any]) -> None:
        node = card
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return _edit_card(change)


def _set(value: object, *path: str) -> Corruption:
    def change(card: dict[str, Any]) -> None:
        node = card
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return _edit_card(change)


def _write(name: str, content: bytes) -> Corruption:
    def corrupt(version: Path, _: Path) -> None:
        (version / name).write_bytes(content)

    return corrupt


def _truncate(name: str, keep: float) -> Corruption:
    def corrupt(version: Path, _: Path) -> None:
        data = (version / name).read_bytes()
        (version / name).write_bytes(data[: int(len(data) * keep)])

    return corrupt


def _foreign_model(rehash: bool) -> Corruption:
    """The other kind's graph in this version's place; with ``rehash`` the card's hash is made
    to match, so only the inputs and outputs can tell."""

    def corrupt(version: Path, other: Path) -> None:
        data = (other / "model.onnx").read_bytes()
        (version / "model.onnx").write_bytes(data)
        if rehash:
            card = json.loads((version / "card.json").read_text())
            card["onnx"]["sha256"] = hashlib.sha256(data).hexdigest()
            (version / "card.json").write_text(json.dumps(card))

    return corrupt


def _remove(name: str) -> Corruption:
    def corrupt(version: Path, _: Path) -> None:
        (version / name).unlink()

    return corrupt


REQUIRED = [
    ("version",), ("feature_names",), ("onnx",), ("onnx", "input"), ("onnx", "output"),
    ("onnx", "positive_class_index"), ("onnx", "sha256"), ("onnx", "inputs"),
    ("onnx", "outputs"), ("reasons",), ("reasons", "method"), ("reasons", "characteristics"),
    ("reasons", "columns"), ("reasons", "reference_points"), ("reasons", "codes"),
    ("reasons", "texts"), ("reasons", "points_output"),
]  # fmt: skip

CASES: dict[str, Corruption] = {
    "model.onnx truncated to half": _truncate("model.onnx", 0.5),
    "model.onnx truncated to 10 bytes": _truncate("model.onnx", 0.0001),
    "model.onnx empty": _write("model.onnx", b""),
    "model.onnx is text": _write("model.onnx", b"not a model\n"),
    "model.onnx is zeros": _write("model.onnx", bytes(4096)),
    "model.onnx missing": _remove("model.onnx"),
    "model.onnx of the other kind": _foreign_model(rehash=False),
    "model.onnx of the other kind, card rehashed": _foreign_model(rehash=True),
    "one byte of model.onnx flipped": lambda v, _: (v / "model.onnx").write_bytes(
        (lambda b: b[:-5] + bytes([b[-5] ^ 0xFF]) + b[-4:])((v / "model.onnx").read_bytes())
    ),
    "card.json missing": _remove("card.json"),
    "card.json empty": _write("card.json", b""),
    "card.json truncated": _truncate("card.json", 0.5),
    "card.json not UTF-8": _write("card.json", b"\xff\xfe{"),
    "card.json is a list": _write("card.json", b"[]"),
    "card.json is a number": _write("card.json", b"42"),
    **{f"card lacks {'.'.join(p)}": _drop(*p) for p in REQUIRED},
    "version is a number": _set(7, "version"),
    "feature_names is a string": _set("pd", "feature_names"),
    "feature_names reordered": _edit_card(lambda c: c["feature_names"].reverse()),
    "feature_names hold numbers": _edit_card(
        lambda c: c.__setitem__("feature_names", list(range(len(c["feature_names"]))))
    ),
    "onnx output renamed": _set("pd_out", "onnx", "output"),
    "onnx input renamed": _set("x", "onnx", "input"),
    "positive class index 5": _set(5, "onnx", "positive_class_index"),
    "positive class index true": _set(True, "onnx", "positive_class_index"),
    "sha256 of another file": _set("0" * 64, "onnx", "sha256"),
    "outputs recorded differently": _edit_card(lambda c: c["onnx"]["outputs"].pop()),
    "reason codes shorter than texts": _edit_card(lambda c: c["reasons"]["codes"].pop()),
    "reason codes are numbers": _edit_card(
        lambda c: c["reasons"].__setitem__("codes", list(range(len(c["reasons"]["codes"]))))
    ),
    "best points are strings": _edit_card(
        lambda c: c["reasons"].__setitem__("reference_points", ["x"] * len(c["reasons"]["columns"]))
    ),
    "reason column out of range": _edit_card(
        lambda c: c["reasons"]["columns"].__setitem__(0, 999)
    ),
    "points output unknown": _set("scores", "reasons", "points_output"),
    "reasons method unknown": _set("magic", "reasons", "method"),
    "version of the other kind": _set("other", "kind"),
}


@pytest.fixture
def models(trained_home: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the trained registry: (models dir, applicant version, priced version)."""
    models_dir = tmp_path / "models"
    shutil.copytree(trained_home / "models", models_dir, ignore=shutil.ignore_patterns("behaviour"))
    applicant = models_dir / str(current_version(models_dir, "applicant"))
    priced = models_dir / str(current_version(models_dir, "priced"))
    return models_dir, applicant, priced


def test_the_untouched_copy_loads(models: tuple[Path, Path, Path]) -> None:
    models_dir, applicant, _ = models
    assert load_model(models_dir, kind="applicant").version == applicant.name


@pytest.mark.parametrize("case", list(CASES))
def test_a_corrupt_model_is_one_clear_error(
    case: str, models: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    models_dir, applicant, priced = models
    CASES[case](applicant, priced)
    with pytest.raises(ModelError) as raised:
        load_model(models_dir, kind="applicant")
    message = str(raised.value)
    assert message and "\n" not in message
    # the same damage through the CLI: one `error:` line, exit 1, no traceback
    home = tmp_path
    result = CliRunner().invoke(
        app, ["score", "--json", '{"funded_amnt": 5000, "term_months": 36, "addr_state": "CA",'
              ' "verification_status": "verified", "annual_inc": 60000}', "--home", str(home)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("pointer", "content"),
    [("CURRENT", b"no-such-version\n"), ("CURRENT", b"\xff\xfe"), ("CURRENT", b"../..\n"),
     ("CURRENT-priced", b"\n")],
)  # fmt: skip
def test_a_bad_pointer_is_one_clear_error(
    models: tuple[Path, Path, Path], pointer: str, content: bytes
) -> None:
    models_dir, _, _ = models
    (models_dir / pointer).write_bytes(content)
    kind = "priced" if pointer.endswith("priced") else "applicant"
    with pytest.raises(ModelError) as raised:
        load_model(models_dir, kind=kind)
    assert "\n" not in str(raised.value)
