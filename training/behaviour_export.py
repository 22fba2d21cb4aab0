"""Export a trained behavioural model as a version under ``<models>/behaviour/``.

The same contract as the origination model: ``model.onnx`` with a float32 ``features`` input
and a ``probabilities`` output, verified against scikit-learn on every out-of-time test row
before anything is written; the shared card (:mod:`training.card`) with the feature order and
the linear reason-code terms :class:`flows.model.ScoringModel` reads; ``card.md`` for
reviewers. The card also holds what the behavioural model adds: the label, the out-of-time split
and the origination model's metrics on the same test observations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from flows.loan.behaviour import BEHAVIOUR_FEATURE_NAMES, BEHAVIOUR_FEATURES
from flows.model_cards import BEHAVIOUR_DIR
from flows.model_registry import BEHAVIOUR_KIND
from training.behaviour import LABEL_DEFINITION, TRAIN_SHARE, BehaviourResult
from training.card import (
    ModelFacts,
    Verified,
    build_card,
    calibration_markdown,
    card_markdown,
    fmt,
    reference_bins,
)
from training.onnx_export import ExportError
from training.publish import ExportReport, export_version

VERSION_SUFFIX = "behaviour-lr"
MODEL_TYPE = "sign_constrained_logistic_regression"


def linear_reason_terms(model: Pipeline) -> dict[str, Any]:
    """The reason-code terms of an impute -> scale -> logistic regression pipeline.

    They are the pipeline's own imputer, scaler and coefficients, so the terms plus the
    intercept are exactly the model's logit.
    """
    scaler = model.named_steps["scale"]
    linear = model.named_steps["model"]
    return {
        "method": "linear",
        "fill": model.named_steps["impute"].statistics_.astype(np.float64).tolist(),
        "center": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "coef": linear.coef_[0].tolist(),
        "intercept": float(linear.intercept_[0]),
    }


def build_behaviour_card(
    result: BehaviourResult, version: str, created_at: datetime, verified: Verified
) -> dict[str, Any]:
    data = result.data
    facts = ModelFacts(
        version=version,
        kind="behaviour",
        created_at=created_at,
        trained_at=result.trained_at,
        model_type=MODEL_TYPE,
        params=result.params,
        feature_names=BEHAVIOUR_FEATURE_NAMES,
        features=[{"name": f.name, "formula": f.formula} for f in BEHAVIOUR_FEATURES],
        training_seconds=result.training_seconds,
        data=data,
    )
    return build_card(
        facts,
        verified,
        reasons=linear_reason_terms(result.model),
        metrics={
            "test": result.test,
            "origination_test": result.origination_test,
            "train": result.train,
            "calibration": result.calibration,
        },
        reference=reference_bins(result.model, result.x_train, BEHAVIOUR_FEATURE_NAMES),
        label={
            "definition": LABEL_DEFINITION,
            "horizon_months": data["horizon_months"],
            "default_days_past_due": data["default_days_past_due"],
        },
        split={
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
        origination_model={"version": result.origination_version},
    )


def behaviour_card_markdown(card: dict[str, Any]) -> str:
    """The human-readable card: label, split, and the model against the origination PD."""
    data = card["data"]
    split = card["split"]
    behaviour = card["metrics"]["test"]
    origination = card["metrics"]["origination_test"]
    body = [
        "## Data",
        "",
        f"- Source: {data['source']}, SHA-256 `{data['sha256']}`",
        f"- {data['loans']} real loans issued {data['issue_start']} to {data['issue_end']} "
        f"(seed {data['seed']}), each with a derived repayment history of "
        f"{data['history_installments']} installments (training/repayments.py)",
        f"- One observation per repayment event of installments 1-{data['months']}, replayed "
        "through flows/loan/ as the dataflow replays it: "
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
        body.append(
            f"| {name} | {fmt(m['auc'])} | {fmt(m['ks'])} | {fmt(m['gini'])} | {fmt(m['brier'])} "
            f"| {fmt(m['ece'])} | {fmt(m['mean_pd'])} |"
        )
    body += [
        "",
        f"Observed {data['horizon_months']}-month default rate on the test months: "
        f"{behaviour['bad_rate']:.2%}. The origination PD predicts default over the loan's "
        "life, not over the horizon, so its Brier score and ECE are not calibrated to this "
        "label; its AUC and KS are comparable.",
        "",
        "## Calibration (test months, PD deciles)",
        "",
        *calibration_markdown(card["metrics"]["calibration"], rows="observations"),
    ]
    return card_markdown(
        card,
        title="Behavioural model card",
        trained="including building the observations",
        facts=[
            "- Live PD from the origination PD and payment behaviour",
            f"- Origination model giving the PD at open: {card['origination_model']['version']}",
        ],
        body=body,
        check_rows="test rows",
    )


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
    return export_version(
        result.model,
        BEHAVIOUR_FEATURE_NAMES,
        result.x_test,
        models_dir / BEHAVIOUR_DIR,
        suffix=VERSION_SUFFIX,
        created_at=created_at,
        card=lambda version, verified: build_behaviour_card(result, version, created_at, verified),
        markdown=behaviour_card_markdown,
        make_current=make_current,
        kind=BEHAVIOUR_KIND,
        root=models_dir,
    )
