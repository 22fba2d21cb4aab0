"""Shadow scoring: a challenger scores the applications the champion scored, and its PD and
band go to ``shadow_scores`` beside the champion's, never into the issued score rows.

Pure apart from the challenger's ONNX call; the batch scorer calls it with the very feature
matrix the champion scored, so the two PDs differ only by model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from flows.batches import constant
from flows.errors import UsageError
from flows.model import ScoringModel, load_model
from flows.model_cards import ModelError
from flows.model_registry import latest_challenger, read_changes
from flows.risk import band_names
from flows.settings import Bands

# The score-row columns a shadow row repeats, under its own names.
_FROM_SCORED = {
    "event_id": "event_id",
    "loan_id": "loan_id",
    "event_time": "event_time",
    "processed_at": "processed_at",
    "model_kind": "model_kind",
    "champion_version": "model_version",
    "champion_pd_lifetime": "pd_lifetime",
    "champion_band": "band",
}


def shadow_table(
    scored: pa.Table, matrix: np.ndarray, challenger: ScoringModel, bands: Bands
) -> pa.Table:
    """``shadow_scores`` rows for the champion's ``scored`` rows, whose features are ``matrix``
    (one row each, in order)."""
    pd = challenger.predict_pd(matrix)
    columns = {name: scored.column(source) for name, source in _FROM_SCORED.items()}
    return pa.table(
        {
            **columns,
            "challenger_version": constant(challenger.version, scored.num_rows),
            "challenger_pd_lifetime": pa.array(pd, pa.float64()),
            "challenger_band": pa.array(band_names(pd, bands), pa.string()),
        }
    )


class NoChallenger(UsageError, ModelError):
    """Shadow scoring was asked for, and the registry holds no challenger of the kind."""


def load_challenger(models_dir: Path, kind: str) -> ScoringModel:
    """The kind's challenger (see :func:`flows.model_registry.latest_challenger`), verified."""
    version = latest_challenger(read_changes(models_dir), kind)
    if version is None:
        raise NoChallenger(
            f"RISKCTL_SHADOW is set but no {kind} model is a challenger in {models_dir}; "
            "register one with `riskctl retrain` (or leave RISKCTL_SHADOW unset)"
        )
    return load_model(models_dir, version, kind=kind)
