"""A fitted model as a verified ONNX graph: conversion, the parity check against the fitted
model, and its batch scoring time.

The ONNX graph is what the dataflow runs, so nothing is published unless ONNX Runtime
reproduces the fitted model's probabilities on every check row within ``PARITY_TOLERANCE``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import onnx
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.pipeline import Pipeline

from flows.errors import RiskctlError
from flows.model import open_session
from training.scorecard import Scorecard
from training.scorecard_onnx import scorecard_onnx

ONNX_INPUT = "features"
ONNX_PROBABILITIES = "probabilities"
POSITIVE_CLASS_INDEX = 1
PARITY_TOLERANCE = 1e-5
# Opsets every onnxruntime the project accepts (>= 1.17) can run.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


class ExportError(RiskctlError):
    """A trained model cannot be exported as a model version."""


class ParityError(ExportError):
    """ONNX Runtime and the fitted model disagree on the check rows beyond the tolerance."""


def onnx_contract() -> dict[str, Any]:
    """The card's ``onnx`` block before publishing adds the file's hash and the graph's
    inputs and outputs."""
    return {
        "input": ONNX_INPUT,
        "output": ONNX_PROBABILITIES,
        "positive_class_index": POSITIVE_CLASS_INDEX,
        "dtype": "float32",
        "opset": TARGET_OPSET,
    }


def convert(model: Pipeline | Scorecard, n_features: int) -> onnx.ModelProto:
    """The fitted model as ONNX: float32 ``features`` in, class ``probabilities`` out (and a
    scorecard's ``points``)."""
    if isinstance(model, Scorecard):
        return scorecard_onnx(model, ONNX_INPUT, ONNX_PROBABILITIES, TARGET_OPSET)
    try:
        return to_onnx(
            model,
            initial_types=[(ONNX_INPUT, FloatTensorType([None, n_features]))],
            # zipmap off: the probabilities stay a plain (n, 2) tensor, not a list of dicts
            options={id(model.steps[-1][1]): {"zipmap": False}},
            target_opset=TARGET_OPSET,
        )
    except Exception as exc:  # skl2onnx raises bare errors for unsupported estimators
        raise ExportError(
            f"cannot convert {type(model.steps[-1][1]).__name__} to ONNX: {exc}"
        ) from exc


def onnx_pd(onnx_bytes: bytes, features: np.ndarray) -> np.ndarray:
    session = open_session(onnx_bytes)  # single-threaded, as the scoring workers run it
    matrix = np.ascontiguousarray(features, dtype=np.float32)
    (probabilities,) = session.run([ONNX_PROBABILITIES], {ONNX_INPUT: matrix})
    return probabilities[:, POSITIVE_CLASS_INDEX].astype(np.float64)


def parity_max_diff(model: Pipeline | Scorecard, onnx_bytes: bytes, features: np.ndarray) -> float:
    """Largest |PD_onnx - PD_fitted| over the rows; the fitted model sees float64 features."""
    expected = model.predict_proba(features)[:, POSITIVE_CLASS_INDEX]
    actual = onnx_pd(onnx_bytes, features)
    diff = np.abs(actual - expected)
    return math.inf if not np.isfinite(diff).all() else float(diff.max())


def batch_score_us_per_row(onnx_bytes: bytes, features: np.ndarray, repeats: int = 20) -> float:
    """Best-of-``repeats`` time to score the whole batch, per row, in microseconds."""
    session = open_session(onnx_bytes)
    feeds = {ONNX_INPUT: np.ascontiguousarray(features, dtype=np.float32)}
    session.run([ONNX_PROBABILITIES], feeds)  # first run allocates; not part of steady state
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        session.run([ONNX_PROBABILITIES], feeds)
        best = min(best, time.perf_counter() - started)
    return best / len(features) * 1e6


def verified_onnx(
    model: Pipeline | Scorecard,
    feature_names: tuple[str, ...],
    version: str,
    check_rows: np.ndarray,
) -> tuple[bytes, float]:
    """The model as ONNX bytes and its parity with the fitted model on ``check_rows``.

    Raises :class:`ParityError` beyond :data:`PARITY_TOLERANCE`: a graph that scores
    differently from the fitted model is never published.
    """
    proto = convert(model, len(feature_names))
    onnx.helper.set_model_props(
        proto, {"riskctl_version": version, "feature_names": ",".join(feature_names)}
    )
    onnx_bytes = proto.SerializeToString()
    parity = parity_max_diff(model, onnx_bytes, check_rows)
    if not parity <= PARITY_TOLERANCE:
        raise ParityError(
            f"ONNX and the fitted model disagree on the held-out set: max |PD diff| "
            f"{parity:.3g} > {PARITY_TOLERANCE:g}; nothing was exported"
        )
    return onnx_bytes, parity
