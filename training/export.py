"""Export a trained origination scorecard as an ONNX model version with its model card.

The graph is checked against the fitted scorecard on every held-out row before anything is
written (:mod:`training.onnx_export`); the card is the shared one (:mod:`training.card`) with
the scorecard's sections (:mod:`training.scorecard_card`); publishing is the path every model
kind takes (:mod:`training.publish`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.features import FEATURE_NAMES
from flows.settings import Bands
from training.card import Verified
from training.onnx_export import ExportError
from training.publish import ExportReport, export_version
from training.scorecard_card import origination_card, origination_facts, origination_markdown
from training.train import TrainingResult


def export_model(
    result: TrainingResult,
    models_dir: Path,
    bands: Bands,
    *,
    now: datetime | None = None,
    make_current: bool = True,
) -> ExportReport:
    """Convert, verify, and publish the model as a new version; then make it its kind's
    current one."""
    created_at = now or datetime.now(UTC)
    if result.x_test.shape[1] != len(FEATURE_NAMES):
        raise ExportError("the training run's feature count does not match this code; retrain")

    def card(version: str, verified: Verified) -> dict[str, Any]:
        facts = origination_facts(result, version, created_at)
        return origination_card(result, facts, verified, bands)

    return export_version(
        result.model,
        FEATURE_NAMES,
        result.x_test,
        models_dir,
        suffix=result.champion.name,
        created_at=created_at,
        card=card,
        markdown=origination_markdown,
        make_current=make_current,
        kind=result.kind,
    )
