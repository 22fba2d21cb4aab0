"""Session fixtures: one real training run on the LendingClub loans, exported into a home.

Training takes ~15 s, so the whole session shares one run; tests that need to break or redo
an export use a models directory of their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.settings import Bands
from training.dataset import LendingClub
from training.export import ExportReport, export_model
from training.train import TrainingResult, save_staged, train


@pytest.fixture(scope="session")
def training_result(lending_club: LendingClub) -> TrainingResult:
    return train(lending_club)


@pytest.fixture(scope="session")
def export_report(
    tmp_path_factory: pytest.TempPathFactory, training_result: TrainingResult
) -> ExportReport:
    home = tmp_path_factory.mktemp("trained-home")
    save_staged(training_result, home)
    return export_model(training_result, home / "models", Bands())


@pytest.fixture(scope="session")
def trained_home(export_report: ExportReport) -> Path:
    """A home with the champion staged and exported as the current model."""
    return export_report.path.parent.parent
