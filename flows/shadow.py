"""Shadow scoring: a challenger scores the applications the champion scored, and its PD and
band go to ``shadow_scores`` beside the champion's, never into the issued score rows.

Pure apart from the challenger's ONNX call; the batch scorer calls it with the very feature
matrix the champion scored, so the two PDs differ only by model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from flows.batches import constant
from flows.errors import UsageError
from flows.model import ScoringModel, load_model
from flows.model_cards import ModelError
from flows.model_registry import latest_challenger, read_changes
from flows.pacing import Pace
from flows.risk import band_names
from flows.settings import Bands

_log = logging.getLogger(__name__)

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


class ChallengerWatch:
    """Hot reload of the shadow challenger: the kind's latest challenger in the registry,
    looked up at most every ``interval_s`` at a batch's start, so a whole batch is shadowed by
    one version (or none). A challenger registered while the flow runs shadows from the next
    batch on; once promoted (or retired) it is no challenger, and shadowing stops rather than
    compare the new champion with itself. A version that fails verification is not used: the
    challenger in use goes on and :attr:`refused` says why.
    """

    def __init__(
        self,
        models_dir: Path,
        kind: str,
        challenger: ScoringModel | None,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dir = models_dir
        self._kind = kind
        self._model = challenger
        self._pace = Pace(interval_s, clock)
        self._lock = threading.Lock()
        self.refused: str | None = None

    def current(self) -> ScoringModel | None:
        with self._lock:  # workers in one process share the watch
            if not self._pace.due():
                return self._model
            try:
                version = latest_challenger(read_changes(self._dir), self._kind)
            except ModelError as exc:
                self.refused = str(exc)
                return self._model
            if version is None:
                if self._model is not None:
                    _log.info("no %s challenger any more: shadow scoring stops", self._kind)
                self._model, self.refused = None, None
            elif self._model is None or version != self._model.version:
                try:
                    self._model = load_model(self._dir, version, kind=self._kind)
                except ModelError as exc:
                    self.refused = str(exc)
                    _log.warning("keeping the shadow challenger: %s", exc)
                else:
                    self.refused = None
                    _log.info("now shadowing with model %s", version)
            return self._model
