"""Experiment history: every training run, appended to ``<models_dir>/runs.jsonl``.

One JSON line per run of ``riskctl train``, ``train-behaviour`` and ``retrain``: its kind, when
it started and how long it took, its parameters (seed, folds, grid, the chosen entry), its
cross-validated and held-out metrics, the data it saw (SHA-256, rows, selection), the version it
produced (none when only staged) and the stage that version reached. Appended the way the stage
log is (:func:`training.registry.append_lines`: whole file renamed into place, under the
registry's lock), never rewritten.

Why not MLflow: its tracking store would bring a web server, SQLAlchemy, alembic, Flask and
their dependencies, and a second place that names models, to record one line per run; the
version directories with their cards already hold the artefacts, and ``riskctl models runs``
reads this file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from flows.errors import RiskctlError
from training.behaviour import BehaviourResult
from training.registry import append_lines, locked
from training.train import TrainingResult

RUNS_FILE = "runs.jsonl"


class RunsError(RiskctlError):
    """The experiment history cannot be read."""


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def training_run(result: TrainingResult, version: str | None, stage: str) -> dict[str, Any]:
    """An origination training run as its history line."""
    test = result.champion.test
    return {
        "kind": result.kind,
        "started_at": result.trained_at,
        "duration_s": round(result.training_seconds, 3),
        "params": {
            "seed": result.seed,
            "folds": result.data["folds"],
            "test_size": result.data["test_size"],
            "grid": [dict(row["params"]) for row in result.champion.grid],
            "chosen": dict(result.champion.params),
            "characteristics": [b.name for b in result.model.characteristics],
        },
        "metrics": {
            "cv_auc": result.champion.cv["auc"]["mean"],
            "cv_auc_std": result.champion.cv["auc"]["std"],
            "test_auc": test["auc"],
            "test_ks": test["ks"],
            "test_brier": test["brier"],
            "hl_p_value": _finite(result.hosmer_lemeshow["p_value"]),
        },
        "data": {
            "sha256": result.data["sha256"],
            "rows": result.data["rows"],
            "selection": result.data.get("selection"),
        },
        "version": version,
        "stage": stage,
    }


def behaviour_run(result: BehaviourResult, version: str | None, stage: str) -> dict[str, Any]:
    """A behavioural training run as its history line."""
    return {
        "kind": "behaviour",
        "started_at": result.trained_at,
        "duration_s": round(result.training_seconds, 3),
        "params": {
            "seed": result.seed,
            "months": result.data["months"],
            "model": dict(result.params),
            "origination_version": result.origination_version,
        },
        "metrics": {
            "train_auc": result.train["auc"],
            "test_auc": result.test["auc"],
            "test_ks": result.test["ks"],
            "test_brier": result.test["brier"],
        },
        "data": {
            "sha256": result.data["sha256"],
            "rows": result.data["observations"],
            "selection": None,
        },
        "version": version,
        "stage": stage,
    }


def record_run(models_dir: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Append one run; its ``run`` number is its line number."""
    with locked(models_dir):
        numbered = {"run": len(read_runs(models_dir)) + 1, **run}
        append_lines(models_dir / RUNS_FILE, [numbered])
    return numbered


def read_runs(models_dir: Path) -> list[dict[str, Any]]:
    """Every recorded run, oldest first."""
    path = models_dir / RUNS_FILE
    if not path.is_file():
        return []
    runs = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            run = json.loads(line)
        except ValueError as exc:
            raise RunsError(f"{path} line {number} is not JSON") from exc
        if not isinstance(run, dict):
            raise RunsError(f"{path} line {number} is not a run")
        runs.append(run)
    return runs
