"""The model card: one builder for every model version, origination and behavioural alike.

A card carries what scoring needs besides the graph (feature order, the graph's contract, the
reason-code terms) and what a model-risk reviewer asks for (data and its hash, metrics, the
parity check, scoring time, training-set reference distributions for drift checks). Each kind
adds its own sections; the fields and the markdown every card shares are written here once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from flows.times import iso_utc
from training import metrics
from training.onnx_export import PARITY_TOLERANCE, POSITIVE_CLASS_INDEX, onnx_contract


class Classifier(Protocol):
    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Verified:
    """What export measured of the graph before publishing it."""

    parity: float  # max |PD_onnx - PD_fitted| on the check rows
    check_rows: int
    score_us: float  # batch scoring time per row


@dataclass(frozen=True)
class ModelFacts:
    """What every card says about the model it describes."""

    version: str
    kind: str
    created_at: datetime
    trained_at: str
    model_type: str
    params: dict[str, Any]
    feature_names: Sequence[str]
    features: list[dict[str, Any]]
    training_seconds: float
    data: dict[str, Any]


def reference_bins(
    model: Classifier, x_train: np.ndarray, feature_names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Training-split decile bins of every feature and of the model's PD."""
    reference = {
        name: metrics.reference_distribution(x_train[:, j]) for j, name in enumerate(feature_names)
    }
    train_pd = model.predict_proba(x_train)[:, POSITIVE_CLASS_INDEX]
    reference["pd"] = metrics.reference_distribution(train_pd)
    return reference


def build_card(
    facts: ModelFacts,
    verified: Verified,
    *,
    reasons: dict[str, Any],
    metrics: dict[str, Any],
    reference: dict[str, Any],
    **sections: Any,
) -> dict[str, Any]:
    """The card's JSON: the shared fields, then the kind's own ``sections``."""
    return {
        "version": facts.version,
        "kind": facts.kind,
        "created_at": iso_utc(facts.created_at, "seconds"),
        "trained_at": facts.trained_at,
        "model_type": facts.model_type,
        "params": facts.params,
        "feature_names": list(facts.feature_names),
        "features": facts.features,
        "onnx": onnx_contract(),
        "reasons": reasons,
        "metrics": metrics,
        "data": facts.data,
        "training_seconds": facts.training_seconds,
        "parity": {
            "max_abs_diff": verified.parity,
            "tolerance": PARITY_TOLERANCE,
            "rows": verified.check_rows,
        },
        "scoring": {"onnx_batch_us_per_row": verified.score_us, "batch_rows": verified.check_rows},
        "reference": reference,
        **sections,
    }


def fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def calibration_markdown(table: list[dict[str, float]], rows: str = "loans") -> list[str]:
    """A calibration table (:func:`training.metrics.calibration_table`) as markdown lines;
    ``rows`` names what a row counts."""
    return [
        f"| bin | {rows} | bads | PD range | mean predicted PD | observed bad rate |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['bin']} | {r['count']} | {r['bads']} | {fmt(r['pd_min'])}–{fmt(r['pd_max'])} "
            f"| {fmt(r['predicted'])} | {fmt(r['observed'])} |"
            for r in table
        ),
    ]


def card_markdown(
    card: dict[str, Any],
    *,
    title: str,
    trained: str,
    facts: Sequence[str] = (),
    body: Sequence[str],
    check_rows: str = "held-out rows",
) -> str:
    """The human-readable card: the shared header, the kind's ``body`` and the export facts.

    ``trained`` says what the training time includes; ``facts`` are further header lines.
    """
    onnx = card["onnx"]
    parity = card["parity"]
    lines = [
        f"# {title}: {card['version']}",
        "",
        f"- Model: {card['kind']} {card['model_type']} {json.dumps(card['params'])}",
        f"- Created: {card['created_at']} (trained {card['trained_at']}, "
        f"{card['training_seconds']:.1f} s {trained})",
        *facts,
        f"- Reason codes: {card['reasons']['method']}",
        "",
        *body,
        "",
        "## Export",
        "",
        f"- ONNX input `{onnx['input']}` float32 [n, {len(card['feature_names'])}], "
        f"output `{onnx['output']}` column {onnx['positive_class_index']}",
        f"- Parity with the fitted model on {parity['rows']} {check_rows}: max |diff| "
        f"{parity['max_abs_diff']:.2e} (tolerance {parity['tolerance']:.0e})",
        f"- Batch scoring: {card['scoring']['onnx_batch_us_per_row']:.2f} µs per row",
        "",
    ]
    return "\n".join(lines)
