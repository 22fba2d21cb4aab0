"""The promotion gate: a challenger replaces the champion only if it is no worse on the same data.

Origination models are compared on rows neither has trained on: the challenger's held-out part,
rebuilt from the real data by the selection, split seed and test share its card records (the
rebuilt rows must hash to the card's data SHA-256, or the gate refuses: the data changed under
it), less any row the champion trained on (rebuilt from the champion's card the same way). Both
models score those rows with their ONNX graphs, as the flow scores. The challenger passes when

- its AUC is at least the champion's plus ``margins.auc`` (a negative margin tolerates a drop),
- its Brier score is at most the champion's plus ``margins.brier`` (calibration),

and the rows hold at least :data:`MIN_BADS` defaults, below which an AUC difference is noise.

Behavioural models are evaluated out of time on repayment histories derived from the data, a
seed and the origination model's PDs; rebuilding them takes a full training run. So the gate
compares the test figures their cards record, and only when both were measured on the same
observations (identical ``data`` and origination model); otherwise it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flows.errors import RiskctlError
from flows.features import FEATURE_NAMES
from flows.model import ScoringModel
from flows.model_registry import BEHAVIOUR_KIND, ModelEntry
from training import metrics
from training.dataset import LendingClub, load_lending_club
from training.matrix import Matrix, application_matrix
from training.periods import PeriodError, reselect
from training.train import holdout_split

MIN_BADS = 30


class GateError(RiskctlError):
    """The two models cannot be compared on the same data."""


@dataclass(frozen=True)
class Margins:
    auc: float = 0.0
    brier: float = 0.0


DEFAULT_MARGINS = Margins()

@dataclass(frozen=True)
class Verdict:
    passed: bool
    failures: tuple[str, ...]
    rows: int
    bads: int
    challenger: dict[str, float]
    champion: dict[str, float]
    margins: Margins
    evaluation: str

    def as_record(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failures": list(self.failures),
            "rows": self.rows,
            "bads": self.bads,
            "challenger": self.challenger,
            "champion": self.champion,
            "margins": {"auc": self.margins.auc, "brier": self.margins.brier},
            "evaluation": self.evaluation,
        }


def judge(
    challenger: dict[str, float],
    champion: dict[str, float],
    margins: Margins,
    rows: int,
    bads: int,
    evaluation: str,
) -> Verdict:
    """Pass or fail, with every reason to fail."""
    failures = []
    if bads < MIN_BADS:
        failures.append(f"only {bads} defaults in the evaluation rows (at least {MIN_BADS})")
    if not challenger["auc"] >= champion["auc"] + margins.auc:
        failures.append(
            f"AUC {challenger['auc']:.4f} is below the champion's {champion['auc']:.4f} "
            f"{margins.auc:+.4f}"
        )
    if not challenger["brier"] <= champion["brier"] + margins.brier:
        failures.append(
            f"Brier {challenger['brier']:.4f} is above the champion's {champion['brier']:.4f} "
            f"{margins.brier:+.4f}"
        )
    return Verdict(
        passed=not failures,
        failures=tuple(failures),
        rows=rows,
        bads=bads,
        challenger=challenger,
        champion=champion,
        margins=margins,
        evaluation=evaluation,
    )


@dataclass(frozen=True)
class Split:
    matrix: Matrix
    train_ids: frozenset[str]
    test_ids: frozenset[str]


def rebuild_split(card: dict[str, Any], data: LendingClub) -> Split:
    """The training and held-out rows a card's model was made with, from the full data."""
    recorded = card.get("data")
    if not isinstance(recorded, dict) or not {"sha256", "seed", "test_size"} <= set(recorded):
        raise GateError(f"model {card.get('version')} records no data split to rebuild")
    try:
        rows = reselect(data, recorded.get("selection"))
    except (PeriodError, KeyError, TypeError) as exc:
        raise GateError(f"model {card.get('version')} records an unusable selection") from exc
    if rows.sha256 != recorded["sha256"]:
        raise GateError(
            f"the data model {card.get('version')} was trained on has changed (SHA-256 "
            f"{rows.sha256[:12]}..., card says {str(recorded['sha256'])[:12]}...): "
            "cannot rebuild its held-out part"
        )
    matrix = application_matrix(rows)
    idx_train, idx_test = holdout_split(
        matrix.labels, float(recorded["test_size"]), int(recorded["seed"])
    )
    return Split(
        matrix=matrix,
        train_ids=frozenset(matrix.loan_ids[idx_train].tolist()),
        test_ids=frozenset(matrix.loan_ids[idx_test].tolist()),
    )


def _figures(y: np.ndarray, pd: np.ndarray) -> dict[str, float]:
    summary = metrics.summary(y, pd)
    return {
        "auc": summary["auc"],
        "brier": summary["brier"],
        "ks": summary["ks"],
        "mean_pd": summary["mean_pd"],
        "hl_p_value": metrics.hosmer_lemeshow(y, pd)["p_value"],
    }


def evaluate_origination(
    challenger: ModelEntry, champion: ModelEntry, data: LendingClub, margins: Margins
) -> Verdict:
    """Both ONNX models on the challenger's held-out rows that the champion never trained on."""
    mine = rebuild_split(challenger.card, data)
    theirs = rebuild_split(champion.card, data)
    keep = np.array(
        [i in mine.test_ids and i not in theirs.train_ids for i in mine.matrix.loan_ids.tolist()]
    )
    x = mine.matrix.features[keep]
    y = mine.matrix.labels[keep]
    bads = int(y.sum())
    if bads == 0 or bads == len(y):
        raise GateError("the evaluation rows hold one class only; no AUC to compare")
    scores = [ScoringModel(m.path, FEATURE_NAMES).predict_pd(x) for m in (challenger, champion)]
    evaluation = (
        f"held-out part of {challenger.version}'s data ({len(mine.test_ids)} rows), less the rows "
        f"{champion.version} trained on"
    )
    return judge(_figures(y, scores[0]), _figures(y, scores[1]), margins, len(y), bads, evaluation)


def evaluate_behaviour(challenger: ModelEntry, champion: ModelEntry, margins: Margins) -> Verdict:
    """The recorded out-of-time figures, when both were measured on the same observations."""

    def identity(card: dict[str, Any]) -> tuple[Any, Any]:
        return card.get("data"), (card.get("origination_model") or {}).get("version")

    if identity(challenger.card) != identity(champion.card):
        raise GateError(
            f"{challenger.version} and {champion.version} were not tested on the same "
            "observations (data or origination model differ); promote with --force and a reason"
        )
    figures = []
    for entry in (challenger, champion):
        test = entry.card.get("metrics", {}).get("test", {})
        if not all(isinstance(test.get(k), float) for k in ("auc", "brier")):
            raise GateError(f"model {entry.version} records no test AUC and Brier")
        figures.append({k: float(v) for k, v in test.items() if isinstance(v, float)})
    data = challenger.card["data"]
    return judge(
        figures[0],
        figures[1],
        margins,
        int(data.get("test_rows", 0)),
        int(data.get("test_bads", 0)),
        "the out-of-time test observations both cards record",
    )


def evaluate(
    challenger: ModelEntry,
    champion: ModelEntry,
    margins: Margins,
    data: LendingClub | None = None,
) -> Verdict:
    """The gate's verdict on two models of one kind (``data``: the full real data, loaded when
    not given)."""
    if challenger.kind != champion.kind:
        raise GateError(f"{challenger.version} is a {challenger.kind} model, "
                        f"{champion.version} a {champion.kind} one")  # fmt: skip
    if challenger.kind == BEHAVIOUR_KIND:
        return evaluate_behaviour(challenger, champion, margins)
    return evaluate_origination(challenger, champion, data or load_lending_club(), margins)
