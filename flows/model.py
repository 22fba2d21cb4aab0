"""The model registry's read side and batch scoring with ONNX Runtime.

A model version is a directory ``<models_dir>/<version>/`` holding ``model.onnx``, ``card.json``
and ``card.md``; ``<models_dir>/CURRENT`` names the version in use. The card carries what
scoring needs besides the ONNX graph: the feature order, and the linear contribution terms
(imputation fill, centre, scale, coefficient per feature) behind the reason codes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa

from flows.errors import RiskctlError
from flows.features import FEATURE_NAMES
from flows.loan_state import BEHAVIOUR_FEATURE_NAMES

CURRENT_FILE = "CURRENT"
# Behavioural models (live PD from payment behaviour) are versioned the same way, one level down.
BEHAVIOUR_DIR = "behaviour"


class ModelError(RiskctlError):
    """No usable model: none trained yet, a missing version, or a card that does not fit."""


@dataclass(frozen=True)
class ModelInfo:
    version: str
    path: Path
    created_at: str
    model_type: str
    test_auc: float | None
    current: bool


def current_version(models_dir: Path) -> str | None:
    marker = models_dir / CURRENT_FILE
    if not marker.is_file():
        return None
    return marker.read_text().strip() or None


def read_card(model_dir: Path) -> dict[str, Any]:
    card_path = model_dir / "card.json"
    if not card_path.is_file():
        raise ModelError(f"model card missing: {card_path}")
    try:
        return json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"model card {card_path} is unreadable: {exc}") from exc


def list_models(models_dir: Path) -> list[ModelInfo]:
    """Every version under ``models_dir``, oldest first."""
    if not models_dir.is_dir():
        return []
    current = current_version(models_dir)
    infos = []
    for path in sorted(p for p in models_dir.iterdir() if (p / "card.json").is_file()):
        card = read_card(path)
        test = card.get("metrics", {}).get("test", {})
        infos.append(
            ModelInfo(
                version=card["version"],
                path=path,
                created_at=card.get("created_at", ""),
                model_type=card.get("model_type", ""),
                test_auc=test.get("auc"),
                current=card["version"] == current,
            )
        )
    return infos


class ScoringModel:
    """An ONNX model plus its card; scores whole feature matrices at once."""

    def __init__(self, model_dir: Path, feature_names: tuple[str, ...] = FEATURE_NAMES) -> None:
        self.path = model_dir
        self.card = read_card(model_dir)
        self.version: str = self.card["version"]
        names = tuple(self.card["feature_names"])
        if names != feature_names:
            raise ModelError(
                f"model {self.version} was trained on different features than this code computes;"
                " retrain it with `riskctl train`"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # workers scale by process; one thread each
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        onnx_meta = self.card["onnx"]
        self._input = onnx_meta["input"]
        self._output = onnx_meta["output"]
        self._positive = int(onnx_meta["positive_class_index"])
        reasons = self.card["reasons"]
        self._fill = np.asarray(reasons["fill"], dtype=np.float64)
        self._center = np.asarray(reasons["center"], dtype=np.float64)
        self._scale = np.asarray(reasons["scale"], dtype=np.float64)
        self._coef = np.asarray(reasons["coef"], dtype=np.float64)
        self._names = pa.array(feature_names, pa.string())

    def predict_pd(self, features: np.ndarray) -> np.ndarray:
        """Probability of default for each row of an ``(n, n_features)`` matrix."""
        if len(features) == 0:
            return np.empty(0, dtype=np.float64)
        matrix = np.ascontiguousarray(features, dtype=np.float32)
        (probabilities,) = self._session.run([self._output], {self._input: matrix})
        return probabilities[:, self._positive].astype(np.float64)

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Each feature's additive push on the log-odds, relative to the training centre."""
        filled = np.where(np.isnan(features), self._fill, features)
        return self._coef * (filled - self._center) / self._scale

    def reason_codes(self, features: np.ndarray, top: int) -> pa.ListArray:
        """Per row, up to ``top`` features that push its PD up the most, strongest first."""
        features = np.asarray(features, dtype=np.float64)
        if len(features) == 0:
            return pa.array([], pa.list_(pa.string()))
        contrib = self.contributions(features)
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :top]
        picked = np.take_along_axis(contrib, order, axis=1) > 0.0
        # Built column-wise: one flat array of names plus offsets, no per-row Python lists.
        offsets = np.zeros(len(features) + 1, dtype=np.int32)
        np.cumsum(picked.sum(axis=1), out=offsets[1:])
        values = self._names.take(pa.array(order[picked], pa.int32()))
        return pa.ListArray.from_arrays(pa.array(offsets), values)


def load_model(
    models_dir: Path,
    version: str | None = None,
    feature_names: tuple[str, ...] = FEATURE_NAMES,
) -> ScoringModel:
    """The given version, or the current one; a clear :class:`ModelError` when there is none."""
    chosen = version or current_version(models_dir)
    if chosen is None:
        raise ModelError(f"no model in {models_dir}; run `riskctl train` first")
    model_dir = models_dir / chosen
    if not (model_dir / "model.onnx").is_file():
        raise ModelError(f"model version {chosen!r} not found in {models_dir}")
    return ScoringModel(model_dir, feature_names)


def load_live_model(models_dir: Path) -> ScoringModel | None:
    """The current behavioural model, or ``None`` when none has been trained yet."""
    behaviour = models_dir / BEHAVIOUR_DIR
    if current_version(behaviour) is None:
        return None
    return load_model(behaviour, feature_names=BEHAVIOUR_FEATURE_NAMES)
