"""Export a trained model as an ONNX model version with its model card.

The ONNX graph is what the dataflow runs, so nothing is published unless ONNX Runtime
reproduces the fitted model's probabilities on every held-out row within ``PARITY_TOLERANCE``.
The card carries what scoring needs besides the graph (feature order, the graph's inputs,
outputs and SHA-256, reason-code terms and texts) and what a model-risk reviewer asks for (data
and its hash, CV and held-out metrics, calibration with Hosmer-Lemeshow, the lift over the
pricing, information values, the points table, band thresholds, training-set reference
distributions for drift checks).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from flows.errors import RiskctlError
from flows.features import FEATURE_NAMES, FEATURES
from flows.model import io_spec, open_session
from flows.scoring import band_names
from flows.settings import Bands
from training import metrics
from training.reasons import reason_table
from training.registry import Change, publish_version, record, unique_version, version_name
from training.scorecard import BASE_ODDS, BASE_SCORE, PDO, Scorecard
from training.scorecard_onnx import POINTS_OUTPUT, scorecard_onnx
from training.train import TrainingResult

ONNX_INPUT = "features"
ONNX_PROBABILITIES = "probabilities"
POSITIVE_CLASS_INDEX = 1
PARITY_TOLERANCE = 1e-5
# Opsets every onnxruntime the project accepts (>= 1.17) can run.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
_LOGIT_CLIP = 1e-6


class ExportError(RiskctlError):
    """The champion cannot be exported as a model version."""


class ParityError(ExportError):
    """ONNX Runtime and scikit-learn disagree on the held-out set beyond the tolerance."""


@dataclass(frozen=True)
class ExportReport:
    version: str
    path: Path
    parity_max_diff: float
    score_us_per_row: float
    card: dict[str, Any]


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


def _session(onnx_bytes: bytes) -> ort.InferenceSession:
    return open_session(onnx_bytes)  # single-threaded, as the scoring workers run it


def onnx_pd(onnx_bytes: bytes, features: np.ndarray) -> np.ndarray:
    session = _session(onnx_bytes)
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
    session = _session(onnx_bytes)
    matrix = np.ascontiguousarray(features, dtype=np.float32)
    feeds = {ONNX_INPUT: matrix}
    session.run([ONNX_PROBABILITIES], feeds)  # first run allocates; not part of steady state
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        session.run([ONNX_PROBABILITIES], feeds)
        best = min(best, time.perf_counter() - started)
    return best / len(matrix) * 1e6


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


def scorecard_reason_terms(card: Scorecard) -> dict[str, Any]:
    """What scoring needs to rank reasons: each characteristic's column, its best attainable
    points, and the reason table (codes and texts, present values first, then "not
    supplied")."""
    names = [b.name for b in card.characteristics]
    codes, texts = reason_table(names)
    return {
        "method": "scorecard",
        "points_output": POINTS_OUTPUT,
        "characteristics": names,
        "columns": list(card.columns),
        "best_points": card.best_points().tolist(),
        "codes": codes,
        "texts": texts,
    }


def points_table(card: Scorecard) -> list[dict[str, Any]]:
    """Every characteristic's attributes (bins and the missing bin) with counts, bad rate,
    weight of evidence and points: the scorecard a reviewer reads."""
    direction = {f.name: f.direction for f in FEATURES}
    rows = []
    for c, binning in enumerate(card.characteristics):
        bins, missing = card.attribute_points(c)
        attributes = [
            {
                "attribute": label,
                "count": count,
                "bads": bads,
                "bad_rate": bads / count if count else None,
                "woe": woe,
                "points": float(points),
            }
            for label, count, bads, woe, points in zip(
                binning.labels(), binning.counts, binning.bads, binning.woe, bins, strict=True
            )
        ]
        attributes.append(
            {
                "attribute": "missing",
                "count": binning.missing_count,
                "bads": binning.missing_bads,
                "bad_rate": binning.missing_bads / binning.missing_count
                if binning.missing_count
                else None,
                "woe": binning.missing_woe,
                "points": missing,
            }
        )
        rows.append(
            {
                "characteristic": binning.name,
                "direction": direction[binning.name],
                "coef": card.coef[c],
                "iv": binning.iv,
                "attributes": attributes,
            }
        )
    return rows


def reason_terms(result: TrainingResult) -> dict[str, Any]:
    """The reason-code terms of the model: a scorecard's points (:func:`scorecard_reason_terms`),
    or for a scikit-learn model fill, center, scale, coef with
    coef * (fill_nan(x) - center) / scale = log-odds push.

    For logistic regression these are :func:`linear_reason_terms`. A tree model has no such
    decomposition: a linear surrogate is fitted to its logit on the training split and its fit
    (R^2) is recorded so a reviewer knows how far to trust the reasons.
    """
    model = result.model
    if isinstance(model, Scorecard):
        return scorecard_reason_terms(model)
    if result.reasons_method == "linear":
        return linear_reason_terms(model)
    imputer = model.named_steps["impute"]
    fill = imputer.statistics_.astype(np.float64)
    filled = imputer.transform(result.x_train)
    scaler = StandardScaler().fit(filled)
    p = np.clip(
        model.predict_proba(result.x_train)[:, POSITIVE_CLASS_INDEX], _LOGIT_CLIP, 1 - _LOGIT_CLIP
    )
    logit = np.log(p / (1.0 - p))
    standardized = scaler.transform(filled)
    surrogate = LinearRegression().fit(standardized, logit)
    return {
        "method": "surrogate_linear",
        "fill": fill.tolist(),
        "center": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "coef": surrogate.coef_.tolist(),
        "intercept": float(surrogate.intercept_),
        "surrogate_r2": float(surrogate.score(standardized, logit)),
    }


def reference_bins(
    model: Pipeline | Scorecard, x_train: np.ndarray, feature_names: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """Training-split decile bins of every feature and of the model's PD."""
    reference = {
        name: metrics.reference_distribution(x_train[:, j]) for j, name in enumerate(feature_names)
    }
    train_pd = model.predict_proba(x_train)[:, POSITIVE_CLASS_INDEX]
    reference["pd"] = metrics.reference_distribution(train_pd)
    return reference


def reference_distributions(result: TrainingResult) -> dict[str, dict[str, Any]]:
    """Training-split decile bins of every feature and of the champion's PD."""
    return reference_bins(result.model, result.x_train, FEATURE_NAMES)


def training_band_mix(result: TrainingResult, bands: Bands) -> dict[str, float]:
    """Share of training-split loans per risk band, banded as the flow bands live scores."""
    train_pd = result.model.predict_proba(result.x_train)[:, POSITIVE_CLASS_INDEX]
    names = band_names(train_pd, bands)
    return {name: names.count(name) / len(names) for name in bands.names}


def iso_utc(moment: datetime) -> str:
    """``2026-01-02T03:04:05Z``: the card's timestamp format."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def build_card(
    result: TrainingResult,
    *,
    version: str,
    created_at: datetime,
    bands: Bands,
    parity: float,
    score_us: float,
) -> dict[str, Any]:
    champion = result.champion
    model = result.model
    used = {b.name for b in model.characteristics}
    return {
        "version": version,
        "kind": result.kind,
        "created_at": iso_utc(created_at),
        "trained_at": result.trained_at,
        "model_type": champion.model_type,
        "params": champion.params,
        "feature_names": list(FEATURE_NAMES),
        "features": [
            {
                "name": f.name,
                "formula": f.formula,
                "direction": f.direction,
                "priced": f.priced,
                "used": f.name in used,
            }
            for f in FEATURES
        ],
        "scorecard": {
            "scaling": {"base_score": BASE_SCORE, "base_odds_good_to_bad": BASE_ODDS, "pdo": PDO},
            "intercept": model.intercept,
            "points": points_table(model),
            # considered but left out: one bin after the monotone merge, or a zero coefficient
            "dropped": [{"characteristic": b.name, "iv": b.iv} for b in model.dropped],
            "information_value": {
                b.name: b.iv for b in sorted(model.all_considered(), key=lambda b: -b.iv)
            },
        },
        "onnx": {
            "input": ONNX_INPUT,
            "output": ONNX_PROBABILITIES,
            "positive_class_index": POSITIVE_CLASS_INDEX,
            "dtype": "float32",
            "opset": TARGET_OPSET,
        },
        "reasons": reason_terms(result),
        "metrics": {
            "cv": champion.cv,
            "test": champion.test,
            "calibration": result.calibration,
            "hosmer_lemeshow": result.hosmer_lemeshow,
            "benchmarks": result.benchmarks,
        },
        "thresholds": list(bands.thresholds),
        "bands": list(bands.names),
        "data": result.data,
        "training_seconds": result.training_seconds,
        "candidates": [c.as_card() for c in result.candidates],
        "parity": {
            "max_abs_diff": parity,
            "tolerance": PARITY_TOLERANCE,
            "rows": len(result.x_test),
        },
        "scoring": {"onnx_batch_us_per_row": score_us, "batch_rows": len(result.x_test)},
        "reference": reference_distributions(result),
        "band_mix": training_band_mix(result, bands),
    }


def _f(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def calibration_markdown(table: list[dict[str, float]], rows: str = "loans") -> list[str]:
    """A calibration table (:func:`training.metrics.calibration_table`) as markdown lines;
    ``rows`` names what a row counts."""
    return [
        f"| bin | {rows} | bads | PD range | mean predicted PD | observed bad rate |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['bin']} | {r['count']} | {r['bads']} | {_f(r['pd_min'])}–{_f(r['pd_max'])} "
            f"| {_f(r['predicted'])} | {_f(r['observed'])} |"
            for r in table
        ),
    ]


def card_markdown(card: dict[str, Any]) -> str:
    """The human-readable card: what was trained on what, and how well it does."""
    data = card["data"]
    test = card["metrics"]["test"]
    lines = [
        f"# Model card: {card['version']}",
        "",
        f"- Model: {card['kind']} {card['model_type']} {json.dumps(card['params'])}",
        f"- Created: {card['created_at']} (trained {card['trained_at']}, "
        f"{card['training_seconds']:.1f} s including cross-validation)",
        f"- Reason codes: {card['reasons']['method']}",
        "",
        "## Data",
        "",
        f"- Source: {data['source']}",
        f"- SHA-256: `{data['sha256']}`",
        f"- Rows: {data['rows']} ({data['bads']} bad, bad rate {data['bad_rate']:.2%}); "
        f"train {data['train_rows']}, held-out test {data['test_rows']} "
        f"({data['split']}, seed {data['seed']}); {data['folds']}-fold CV on the train part",
        "",
        "## Features",
        "",
        "Direction: + means a higher value never lowers PD, - never raises it; every used",
        "feature's points follow it by construction (monotone bins, non-negative coefficients).",
        "",
        "| feature | formula | direction | used |",
        "|---|---|---|---|",
        *(
            f"| {f['name']} | {f['formula'].replace('|', '/')} | "
            f"{'+' if f['direction'] > 0 else '-'} | {'yes' if f['used'] else 'no'} |"
            for f in card["features"]
        ),
        "",
        "## Metrics",
        "",
        f"Champion on the held-out set: AUC {_f(test['auc'])}, KS {_f(test['ks'])}, "
        f"Gini {_f(test['gini'])}, Brier {_f(test['brier'])}, ECE {_f(test['ece'])}.",
        "",
        "| candidate | CV AUC (mean ± std) | test AUC | test KS | test Gini | test Brier |",
        "|---|---|---|---|---|---|",
    ]
    for c in card["candidates"]:
        marker = " (champion)" if c["champion"] else ""
        cv_auc = c["cv"]["auc"]
        t = c["test"]
        lines.append(
            f"| {c['name']} {c['model_type']}{marker} | {_f(cv_auc['mean'])} ± {_f(cv_auc['std'])}"
            f" | {_f(t['auc'])} | {_f(t['ks'])} | {_f(t['gini'])} | {_f(t['brier'])} |"
        )
    hl = card["metrics"]["hosmer_lemeshow"]
    lines += [
        "",
        "Pricing alone on the same held-out loans (the model's lift is its AUC minus theirs):",
        "",
        "| score | held-out AUC | lift |",
        "|---|---|---|",
        *(
            f"| {name} alone | {_f(b['auc'])} | {b['lift']:+.4f} |"
            for name, b in card["metrics"]["benchmarks"].items()
        ),
        "",
        "## Calibration (held-out set, PD deciles)",
        "",
        f"Mean predicted PD {_f(test['mean_pd'])} against an observed bad rate "
        f"{_f(test['bad_rate'])}; Hosmer-Lemeshow {hl['statistic']:.2f} on {hl['df']} df, "
        f"p = {hl['p_value']:.3f}.",
        "",
        *calibration_markdown(card["metrics"]["calibration"]),
        "",
        *scorecard_markdown(card),
        "",
        "## Risk bands",
        "",
        "| band | PD from | PD below |",
        "|---|---|---|",
    ]
    bounds = [0.0, *card["thresholds"], 1.0]
    for name, low, high in zip(card["bands"], bounds, bounds[1:], strict=False):
        lines.append(f"| {name} | {low:g} | {high:g} |")
    parity = card["parity"]
    lines += [
        "",
        "## Export",
        "",
        f"- ONNX input `{card['onnx']['input']}` float32 [n, {len(card['feature_names'])}], "
        f"output `{card['onnx']['output']}` column {card['onnx']['positive_class_index']}",
        f"- Parity with scikit-learn on {parity['rows']} held-out rows: max |diff| "
        f"{parity['max_abs_diff']:.2e} (tolerance {parity['tolerance']:.0e})",
        f"- Batch scoring: {card['scoring']['onnx_batch_us_per_row']:.2f} µs per row",
        "",
    ]
    return "\n".join(lines)


def scorecard_markdown(card: dict[str, Any]) -> list[str]:
    """Information values, the points table and the reason-code table."""
    sc = card["scorecard"]
    scaling = sc["scaling"]
    lines = [
        "## Scorecard",
        "",
        f"{scaling['base_score']:g} points at good:bad odds of {scaling['base_odds_good_to_bad']:g}"
        f":1, {scaling['pdo']:g} points to double the odds; PD falls as points rise. Points per",
        "attribute; a missing value is an attribute of its own (with too few missing rows in",
        "training to estimate it, it scores as the riskiest attribute).",
        "",
        "| characteristic | information value | in the model |",
        "|---|---|---|",
    ]
    used = {row["characteristic"] for row in sc["points"]}
    for name, iv in sc["information_value"].items():
        lines.append(f"| {name} | {iv:.4f} | {'yes' if name in used else 'no'} |")
    for row in sc["points"]:
        lines += [
            "",
            f"### {row['characteristic']} (direction {'+' if row['direction'] > 0 else '-'}, "
            f"IV {row['iv']:.4f})",
            "",
            "| attribute | loans | bads | bad rate | WoE | points |",
            "|---|---|---|---|---|---|",
        ]
        for a in row["attributes"]:
            rate = "-" if a["bad_rate"] is None else f"{a['bad_rate']:.4f}"
            lines.append(
                f"| {a['attribute']} | {a['count']} | {a['bads']} | {rate} | {a['woe']:.4f} "
                f"| {a['points']:.1f} |"
            )
    reasons = card["reasons"]
    lines += [
        "",
        "## Reason codes",
        "",
        "Ranked by points lost against the best attainable attribute of each characteristic;",
        "a missing value is cited only by its own \"not supplied\" code.",
        "",
        "| code | text |",
        "|---|---|",
        *(
            f"| {code} | {text} |"
            for code, text in zip(reasons["codes"], reasons["texts"], strict=True)
        ),
        "",
    ]
    return lines


def verified_onnx(
    model: Pipeline | Scorecard,
    feature_names: tuple[str, ...],
    version: str,
    check_rows: np.ndarray,
) -> tuple[bytes, float]:
    """The pipeline as ONNX bytes and its parity with scikit-learn on ``check_rows``.

    Raises :class:`ParityError` beyond :data:`PARITY_TOLERANCE`: the graph is what the
    dataflow runs, so a graph that scores differently from the fitted model is never published.
    """
    proto = convert(model, len(feature_names))
    onnx.helper.set_model_props(
        proto, {"riskctl_version": version, "feature_names": ",".join(feature_names)}
    )
    onnx_bytes = proto.SerializeToString()
    parity = parity_max_diff(model, onnx_bytes, check_rows)
    if not parity <= PARITY_TOLERANCE:
        raise ParityError(
            f"ONNX and scikit-learn disagree on the held-out set: max |PD diff| {parity:.3g} "
            f"> {PARITY_TOLERANCE:g}; nothing was exported"
        )
    return onnx_bytes, parity


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
    version = unique_version(models_dir, version_name(created_at, result.champion.name))
    onnx_bytes, parity = verified_onnx(result.model, FEATURE_NAMES, version, result.x_test)
    score_us = batch_score_us_per_row(onnx_bytes, result.x_test)
    card = build_card(
        result,
        version=version,
        created_at=created_at,
        bands=bands,
        parity=parity,
        score_us=score_us,
    )
    path = publish_model(
        models_dir,
        version,
        onnx_bytes,
        card,
        card_markdown(card),
        make_current=make_current,
        kind=result.kind,
    )
    return ExportReport(
        version=version, path=path, parity_max_diff=parity, score_us_per_row=score_us, card=card
    )
