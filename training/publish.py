"""Publishing a model version: verify the graph, write the card, then the files in one step.

One path for every kind of model: a version name, the ONNX graph checked against the fitted
model (:func:`training.onnx_export.verified_onnx`), its scoring time, the card the kind builds,
and ``model.onnx``, ``card.json`` and ``card.md`` written as one new version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from flows.model import io_spec, open_session
from training.card import Verified
from training.onnx_export import batch_score_us_per_row, verified_onnx
from training.registry import Change, publish_version, record, unique_version, version_name
from training.scorecard import Scorecard


@dataclass(frozen=True)
class ExportReport:
    version: str
    path: Path
    parity_max_diff: float
    score_us_per_row: float
    card: dict[str, Any]


def publish_model(
    models_dir: Path,
    version: str,
    onnx_bytes: bytes,
    card: dict[str, Any],
    markdown: str,
    *,
    make_current: bool = True,
    kind: str = "applicant",
    root: Path | None = None,
) -> Path:
    """Write ``model.onnx``, ``card.json`` and ``card.md`` as one new version and register it:
    the champion of ``kind`` (the current one) or, without ``make_current``, a candidate.
    ``root`` is the registry's root when ``models_dir`` is a kind's own directory below it.

    The card gains what loading verifies: the SHA-256 of ``model.onnx`` and the graph's
    inputs and outputs as ONNX Runtime reports them.
    """
    card["onnx"] = {
        **card["onnx"],
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        **io_spec(open_session(onnx_bytes)),
    }
    # Python's json writes the reference bins' outer edges as -Infinity/Infinity, which
    # json.loads reads back as floats.
    path = publish_version(
        models_dir,
        version,
        {
            "model.onnx": onnx_bytes,
            "card.json": json.dumps(card, indent=2).encode(),
            "card.md": markdown.encode(),
        },
    )
    stage, reason = (
        ("champion", "exported as current") if make_current else ("candidate", "exported")
    )
    record(root or models_dir, kind, [Change(version, stage, "export", reason)])
    return path


def export_version(
    model: Pipeline | Scorecard,
    feature_names: tuple[str, ...],
    check_rows: np.ndarray,
    registry: Path,
    *,
    suffix: str,
    created_at: datetime,
    card: Callable[[str, Verified], dict[str, Any]],
    markdown: Callable[[dict[str, Any]], str],
    make_current: bool = True,
    kind: str = "applicant",
    root: Path | None = None,
) -> ExportReport:
    """Verify, describe and publish ``model`` as a new version in ``registry``.

    ``card`` builds the card's JSON from the version name and what verification measured;
    ``markdown`` renders it for reviewers.
    """
    version = unique_version(registry, version_name(created_at, suffix))
    onnx_bytes, parity = verified_onnx(model, feature_names, version, check_rows)
    verified = Verified(
        parity=parity,
        check_rows=len(check_rows),
        score_us=batch_score_us_per_row(onnx_bytes, check_rows),
    )
    content = card(version, verified)
    path = publish_model(
        registry, version, onnx_bytes, content, markdown(content),
        make_current=make_current, kind=kind, root=root,
    )  # fmt: skip
    return ExportReport(
        version=version,
        path=path,
        parity_max_diff=parity,
        score_us_per_row=verified.score_us,
        card=content,
    )
