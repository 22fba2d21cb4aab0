"""The origination scorecard's card sections: reason-code terms, the points table, information
values, the held-out metrics against the pricing alone, calibration and the risk bands."""

from __future__ import annotations

from typing import Any

from flows.features import FEATURE_NAMES, FEATURES
from flows.risk import band_names
from flows.settings import Bands
from training.binning import MISSING_PRIOR_ROWS
from training.card import (
    ModelFacts,
    Verified,
    build_card,
    calibration_markdown,
    card_markdown,
    fmt,
    reference_bins,
)
from training.onnx_export import POSITIVE_CLASS_INDEX
from training.reasons import reason_table
from training.scorecard import BASE_ODDS, BASE_SCORE, PDO, Scorecard
from training.scorecard_onnx import POINTS_OUTPUT
from training.train import TrainingResult


def scorecard_reason_terms(card: Scorecard) -> dict[str, Any]:
    """What scoring needs to rank reasons: each characteristic's column, its reference
    (neutral) points, and the reason table (codes and texts, present values first, then "not
    supplied")."""
    names = [b.name for b in card.characteristics]
    codes, texts = reason_table(names)
    return {
        "method": "scorecard",
        "points_output": POINTS_OUTPUT,
        "characteristics": names,
        "columns": list(card.columns),
        "reference_points": card.reference_points().tolist(),
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


def training_band_mix(result: TrainingResult, bands: Bands) -> dict[str, float]:
    """Share of training-split loans per risk band, banded as the flow bands live scores."""
    train_pd = result.model.predict_proba(result.x_train)[:, POSITIVE_CLASS_INDEX]
    names = band_names(train_pd, bands)
    return {name: names.count(name) / len(names) for name in bands.names}


def origination_card(
    result: TrainingResult, facts: ModelFacts, verified: Verified, bands: Bands
) -> dict[str, Any]:
    champion = result.champion
    model = result.model
    return build_card(
        facts,
        verified,
        reasons=scorecard_reason_terms(model),
        metrics={
            "cv": champion.cv,
            "test": champion.test,
            "calibration": result.calibration,
            "hosmer_lemeshow": result.hosmer_lemeshow,
            "benchmarks": result.benchmarks,
            "repeated": result.repeated,
        },
        reference=reference_bins(model, result.x_train, FEATURE_NAMES),
        scorecard={
            "scaling": {"base_score": BASE_SCORE, "base_odds_good_to_bad": BASE_ODDS, "pdo": PDO},
            "intercept": model.intercept,
            "points": points_table(model),
            # considered but left out: one bin after the monotone merge, or a zero coefficient
            "dropped": [{"characteristic": b.name, "iv": b.iv} for b in model.dropped],
            "information_value": {
                b.name: b.iv for b in sorted(model.all_considered(), key=lambda b: -b.iv)
            },
        },
        thresholds=list(bands.thresholds),
        bands=list(bands.names),
        candidates=[c.as_card() for c in result.candidates],
        band_mix=training_band_mix(result, bands),
    )


def origination_facts(result: TrainingResult, version: str, created_at: Any) -> ModelFacts:
    used = {b.name for b in result.model.characteristics}
    return ModelFacts(
        version=version,
        kind=result.kind,
        created_at=created_at,
        trained_at=result.trained_at,
        model_type=result.champion.model_type,
        params=result.champion.params,
        feature_names=FEATURE_NAMES,
        features=[
            {
                "name": f.name,
                "formula": f.formula,
                "direction": f.direction,
                "priced": f.priced,
                "used": f.name in used,
            }
            for f in FEATURES
        ],
        training_seconds=result.training_seconds,
        data=result.data,
    )


def origination_markdown(card: dict[str, Any]) -> str:
    """The origination card for reviewers: data, features, metrics, calibration, scorecard."""
    data = card["data"]
    test = card["metrics"]["test"]
    hl = card["metrics"]["hosmer_lemeshow"]
    body = [
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
        f"Champion on the held-out set: AUC {fmt(test['auc'])} (95% bootstrap interval "
        f"{fmt(test['auc_low'])} to {fmt(test['auc_high'])}), KS {fmt(test['ks'])}, "
        f"Gini {fmt(test['gini'])}, Brier {fmt(test['brier'])}, ECE {fmt(test['ece'])}.",
        "",
        "| candidate | CV AUC (mean ± std) | test AUC | test KS | test Gini | test Brier |",
        "|---|---|---|---|---|---|",
    ]
    for c in card["candidates"]:
        marker = " (champion)" if c["champion"] else ""
        cv_auc = c["cv"]["auc"]
        t = c["test"]
        body.append(
            f"| {c['name']} {c['model_type']}{marker} | {fmt(cv_auc['mean'])} ± "
            f"{fmt(cv_auc['std'])} | {fmt(t['auc'])} | {fmt(t['ks'])} | {fmt(t['gini'])} "
            f"| {fmt(t['brier'])} |"
        )
    body += [
        "",
        "Pricing alone on the same held-out loans (the model's lift is its AUC minus theirs):",
        "",
        "| score | held-out AUC | lift | lift, 95% paired bootstrap interval |",
        "|---|---|---|---|",
        *(
            f"| {name} alone | {fmt(b['auc'])} | {b['lift']:+.4f} "
            f"| {b['lift_low']:+.4f} to {b['lift_high']:+.4f} |"
            for name, b in card["metrics"]["benchmarks"].items()
        ),
        "",
        *repeated_markdown(card["metrics"]["repeated"]),
        "## Calibration (held-out set, PD deciles)",
        "",
        f"Mean predicted PD {fmt(test['mean_pd'])} against an observed bad rate "
        f"{fmt(test['bad_rate'])}; Hosmer-Lemeshow {hl['statistic']:.2f} on {hl['df']} df, "
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
        body.append(f"| {name} | {low:g} | {high:g} |")
    return card_markdown(
        card, title="Model card", trained="including cross-validation", body=body
    )


def repeated_markdown(rep: dict[str, Any]) -> list[str]:
    """The repeated held-out evaluation: the mean over splits with its intervals, per score."""
    def f(value: float | None, sign: str = "") -> str:
        return "-" if value is None else f"{value:{sign}.4f}"

    def row(label: str, s: dict[str, Any], default: float, sign: str = "") -> str:
        return (
            f"| {label} | {f(s['mean'], sign)} | {f(s['sem'])} | {f(s['mean_low'], sign)} to "
            f"{f(s['mean_high'], sign)} | {f(s['low'], sign)} to {f(s['high'], sign)} | "
            f"{f(s['worst'], sign)} | {f(s['best'], sign)} | {f(default, sign)} |"
        )

    default = rep["default"]
    cal = rep["calibration"]
    ratio = cal["mean_pd_to_bad_rate"]
    lines = [
        f"## Held out on {rep['repeats']} split{'s' if rep['repeats'] > 1 else ''}",
        "",
        f"The whole pipeline (binning, CV choice of settings, fit) rerun on {rep['repeats']} "
        f"stratified {1 - rep['test_share']:.0%}/{rep['test_share']:.0%} splits, seeds "
        f"{', '.join(str(s) for s in rep['seeds'])} (the first is the default split, the one "
        "the model above is trained on), each scored on its own test part beside the pricing "
        "alone on the same rows. Mean 95%: Student t with the Nadeau-Bengio correction for "
        "the loans the splits share; splits 2.5-97.5%: percentiles of the split figures.",
        "",
        "| score | mean | SEM | mean 95% | splits 2.5-97.5% | worst | best | default split |",
        "|---|---|---|---|---|---|---|---|",
        row("model AUC", rep["auc"], default["auc"]),
    ]
    for name, bench in rep["benchmarks"].items():
        lines.append(row(f"{name} alone", bench["auc"], default["benchmarks"][name]))
    for name, bench in rep["benchmarks"].items():
        lines.append(
            row(f"lift over {name} ({bench['splits_above']}/{rep['repeats']} above)",
                bench["lift"], default["auc"] - default["benchmarks"][name], "+")
        )  # fmt: skip
    lines += [
        "",
        f"Worst split: seed {rep['worst']['seed']} (AUC {rep['worst']['auc']:.4f}); best: "
        f"seed {rep['best']['seed']} (AUC {rep['best']['auc']:.4f}).",
        "",
        f"Calibration over the splits: mean PD / bad rate {ratio['mean']:.3f} (splits "
        f"{ratio['low']:.3f} to {ratio['high']:.3f}), within 10% on "
        f"{cal['splits_within_10pct']} of {rep['repeats']} splits; Hosmer-Lemeshow p > 0.05 on "
        f"{cal['splits_hl_p_above_005']}.",
        "",
    ]
    return lines


def scorecard_markdown(card: dict[str, Any]) -> list[str]:
    """Information values, the points table and the reason-code table."""
    sc = card["scorecard"]
    scaling = sc["scaling"]
    lines = [
        "## Scorecard",
        "",
        f"{scaling['base_score']:g} points at good:bad odds of {scaling['base_odds_good_to_bad']:g}"
        f":1, {scaling['pdo']:g} points to double the odds; PD falls as points rise. Points per",
        "attribute; a missing value is an attribute of its own, its weight of evidence shrunk",
        f"toward the portfolio's odds (0) by {MISSING_PRIOR_ROWS} pseudo-rows at the portfolio",
        "bad rate, so a bin of few rows stays near 0.",
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
        "Ranked by points lost against each characteristic's neutral attribute (WoE 0, the",
        "portfolio's odds): only attributes riskier than the portfolio are cited; a missing",
        "value is cited only by its own \"not supplied\" code.",
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
