"""Export a trained behavioural model as a version under ``<models>/behaviour/``.

The same contract as the origination model (:mod:`training.export`): ``model.onnx`` with a
float32 ``features`` input and a ``probabilities`` output, verified against scikit-learn on
every out-of-time test row before anything is written; ``card.json`` with the feature order and
the linear reason-code terms :class:`flows.model.ScoringModel` reads; ``card.md`` for reviewers.
The card also holds what the behavioural model adds: the label, the out-of-time split and the
origination model's metrics on the same test observations.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flows.loan_state import BEHAVIOUR_FEATURE_NAMES, BEHAVIOUR_FEATURES
from flows.model import BEHAVIOUR_DIR
from flows.model_registry import BEHAVIOUR_KIND
from training.behaviour import LABEL_DEFINITION, TRAIN_SHARE, BehaviourResult
from training.export import (
    ONNX_INPUT,
    ONNX_PROBABILITIES,
    PARITY_TOLERANCE,
    POSITIVE_CLASS_INDEX,
    TARGET_OPSET,
    ExportError,
    ExportReport,
    batch_score_us_per_row,
    calibration_markdown,
    iso_utc,
    linear_reason_terms,
    publish_model,
    reference_bins,
    verified_onnx,
)
from training.registry import unique_version, version_name

VERSION_SUFFIX = "behaviour-lr"


def build_behaviour_card(
    result: BehaviourResult,
    *,
    version: str,
    created_at: datetime,
    parity: float,
    score_us: float,
) -> dict[str, Any]:
    data = result.data
    return {
        "version": version,
        "kind": "behaviour",
        "created_at": iso_utc(created_at),
        "trained_at": result.trained_at,
        "model_type": "sign_constrained_logistic_regression",
        "params": result.params,
        "feature_names": list(BEHAVIOUR_FEATURE_NAMES),
        "features": [{"name": f.name, "formula": f.formula} for f in BEHAVIOUR_FEATURES],
        "onnx": {
            "input": ONNX_INPUT,
            "output": ONNX_PROBABILITIES,
            "positive_class_index": POSITIVE_CLASS_INDEX,
            "dtype": "float32",
            "opset": TARGET_OPSET,
        },
        "reasons": linear_reason_terms(result.model),
        "label": {
            "definition": LABEL_DEFINITION,
            "horizon_months": data["horizon_months"],
            "default_days_past_due": data["default_days_past_due"],
        },
        "split": {
            "kind": "out-of-time",
            "test_from": result.split.isoformat(),
            "train_before": result.train_before.isoformat(),
            "rule": (
                f"test: observations dated on or after the first day of the month by which "
                f"{TRAIN_SHARE:.0%} of observation dates have passed; train: observations whose "
                "label window closes before it; the observations in between are used by neither"
            ),
            "train_dates": data["train_dates"],
            "test_dates": data["test_dates"],
        },
        "metrics": {
            "test": result.test,
            "origination_test": result.origination_test,
            "train": result.train,
            "calibration": result.calibration,
        },
        "origination_model": {"version": result.origination_version},
        "data": data,
        "training_seconds": result.training_seconds,
        "parity": {
            "max_abs_diff": parity,
            "tolerance": PARITY_TOLERANCE,
            "rows": len(result.x_test),
        },
        "scoring": {"onnx_batch_us_per_row": score_us, "batch_rows": len(result.x_test)},
        "reference": reference_bins(result.model, result.x_train, BEHAVIOUR_FEATURE_NAMES),
    }


def _f(value: float) -> str:
    return f"{value:.4f}"


def behaviour_card_markdown(card: dict[str, Any]) -> str:
    """The human-readable card: label, split, and the model against the origination PD."""
    data = card["data"]
    split = card["split"]
    behaviour = card["metrics"]["test"]
    origination = card["metrics"]["origination_test"]
    lines = [
        f"# Behavioural model card: {card['version']}",
        "",
        f"- Model: {card['model_type']} {json.dumps(card['params'])}, live PD from the "
        "origination PD and payment behaviour",
        f"- Created: {card['created_at']} (trained {card['trained_at']}, "
        f"{card['training_seconds']:.1f} s including building the observations)",
        f"- Origination model giving the PD at open: {card['origination_model']['version']}",
        f"- Reason codes: {card['reasons']['method']}",
        "",
        "## Data",
        "",
        f"- Source: {data['source']}, SHA-256 `{data['sha256']}`",
        f"- {data['loans']} real loans issued {data['issue_start']} to {data['issue_end']} "
        f"(seed {data['seed']}), each with a derived repayment history of "
        f"{data['history_installments']} installments (training/repayments.py)",
        f"- One observation per repayment event of installments 1-{data['months']}, replayed "
        "through flows/loan_state.py as the dataflow replays it: "
        f"{data['observations']} observations ({data['excluded_in_default']} more left out, "
        f"their loan already in default); {data['defaulting_loans']} loans default inside "
        "some observation's window",
        "",
        "## Label",
        "",
        card["label"]["definition"],
        "",
        "## Out-of-time split",
        "",
        f"- Test: observations dated {split['test_dates']['first']} to "
        f"{split['test_dates']['last']} (from {split['test_from']}): {data['test_rows']} rows, "
        f"{data['test_bads']} labelled 1, {data['test_loans']} loans",
        f"- Train: observations dated {split['train_dates']['first']} to "
        f"{split['train_dates']['last']} (before {split['train_before']}): "
        f"{data['train_rows']} rows, {data['train_bads']} labelled 1",
        f"- Neither (label window reaching into the test months): {data['embargo_rows']} rows",
        f"- Rule: {split['rule']}",
        "",
        "## Features",
        "",
        "| feature | formula |",
        "|---|---|",
        *(f"| {f['name']} | {f['formula'].replace('|', '/')} |" for f in card["features"]),
        "",
        "## Metrics on the test months",
        "",
        "| score | AUC | KS | Gini | Brier | ECE | mean PD |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in (("behavioural model", behaviour), ("origination PD", origination)):
        lines.append(
            f"| {name} | {_f(m['auc'])} | {_f(m['ks'])} | {_f(m['gini'])} | {_f(m['brier'])} "
            f"| {_f(m['ece'])} | {_f(m['mean_pd'])} |"
        )
    lines += [
        "",
        f"Observed {data['horizon_months']}-month default rate on the test months: "
        f"{behaviour['bad_rate']:.2%}. The origination PD predicts default over the loan's "
        "life, not over the horizon, so its Brier score and ECE are not calibrated to this "
        "label; its AUC and KS are comparable.",
        "",
        "## Calibration (test months, PD deciles)",
        "",
        *calibration_markdown(card["metrics"]["calibration"], rows="observations"),
        "",
        "## Export",
        "",
        f"- ONNX input `{card['onnx']['input']}` float32 [n, {len(card['feature_names'])}], "
        f"output `{card['onnx']['output']}` column {card['onnx']['positive_class_index']}",
        f"- Parity with scikit-learn on {card['parity']['rows']} test rows: max |diff| "
        f"{card['parity']['max_abs_diff']:.2e} (tolerance {card['parity']['tolerance']:.0e})",
        f"- Batch scoring: {card['scoring']['onnx_batch_us_per_row']:.2f} µs per row",
        "",
    ]
    return "\n".join(lines)


def export_behaviour(
    result: BehaviourResult,
    models_dir: Path,
    *,
    now: datetime | None = None,
    make_current: bool = True,
) -> ExportReport:
    """Publish the model under ``models_dir / "behaviour"`` (``models_dir`` is
    ``<home>/models``) and point that directory's CURRENT at it."""
    created_at = now or datetime.now(UTC)
    if result.x_test.shape[1] != len(BEHAVIOUR_FEATURE_NAMES):
        raise ExportError("the behavioural run's feature count does not match this code; retrain")
    registry = models_dir / BEHAVIOUR_DIR
    version = unique_version(registry, version_name(created_at, VERSION_SUFFIX))
    onnx_bytes, parity = verified_onnx(
        result.model, BEHAVIOUR_FEATURE_NAMES, version, result.x_test
    )
    score_us = batch_score_us_per_row(onnx_bytes, result.x_test)
    card = build_behaviour_card(
        result, version=version, created_at=created_at, parity=parity, score_us=score_us
    )
    markdown = behaviour_card_markdown(card)
    path = publish_model(
        registry,
        version,
        onnx_bytes,
        card,
        markdown,
        make_current=make_current,
        kind=BEHAVIOUR_KIND,
        root=models_dir,
    )
    return ExportReport(
        version=version, path=path, parity_max_diff=parity, score_us_per_row=score_us, card=card
    )
