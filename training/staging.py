"""A training run staged for a later ``riskctl export``: written atomically under the home,
read back only by the version of the code (stage format and features) that wrote it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import joblib

from flows.features import FEATURE_NAMES
from training.train import STAGE_FORMAT, TrainingError, TrainingResult

STAGING_DIR = Path("training") / "latest"


class StagedRunError(TrainingError):
    """There is no usable staged training run to export."""


def staged_path(home: Path, kind: str) -> Path:
    return home / STAGING_DIR / f"{kind}.joblib"


def save_staged(result: TrainingResult, home: Path) -> Path:
    """Stage a training run for a later export; replaces the kind's previous run atomically."""
    target = staged_path(home, result.kind)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".run-", suffix=".tmp")
    os.close(fd)
    try:
        joblib.dump(result, tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def load_staged(home: Path, kind: str) -> TrainingResult:
    target = staged_path(home, kind)
    if not target.is_file():
        raise StagedRunError(
            f"no staged training run in {target.parent}; run `riskctl train` first"
        )
    try:
        result = joblib.load(target)
    except Exception as exc:  # a truncated or foreign file: say so instead of a traceback
        raise StagedRunError(f"cannot read the staged training run {target}: {exc}") from exc
    if (
        not isinstance(result, TrainingResult)
        or result.stage_format != STAGE_FORMAT
        or result.kind != kind
    ):
        raise StagedRunError(f"{target} is not a training run this version can export; retrain")
    if tuple(result.feature_names) != FEATURE_NAMES:
        raise StagedRunError(
            "the staged run was trained on different features than this code computes; retrain"
        )
    return result
