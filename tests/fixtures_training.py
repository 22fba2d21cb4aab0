"""Shared fixtures: one real training run of each origination model kind on the LendingClub
loans, both exported into a home (the applicant model current, as by default), and one
behavioural model trained on that home's origination model and exported beside it.

Training takes ~5 s a kind (the behavioural model ~5 s more), so every test of a run shares one
run of each; tests that need to break or redo an export use a models directory of their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.model import load_model
from flows.settings import Bands
from training.behaviour import BehaviourResult, train_behaviour
from training.behaviour_export import export_behaviour
from training.dataset import LendingClub
from training.export import export_model
from training.publish import ExportReport
from training.staging import save_staged
from training.train import TrainingResult, train

# Enough splits for the repeated evaluation to have a spread; riskctl train runs 20.
FIXTURE_REPEATS = 3


@pytest.fixture(scope="session")
def training_result(lending_club: LendingClub) -> TrainingResult:
    """The applicant model's run (the default kind), held out on three splits."""
    return train(lending_club, kind="applicant", repeats=FIXTURE_REPEATS)


@pytest.fixture(scope="session")
def priced_result(lending_club: LendingClub) -> TrainingResult:
    return train(lending_club, kind="priced", repeats=FIXTURE_REPEATS)


@pytest.fixture(scope="session")
def export_report(
    tmp_path_factory: pytest.TempPathFactory,
    training_result: TrainingResult,
    priced_result: TrainingResult,
) -> ExportReport:
    """The applicant model's export; the priced model is exported beside it."""
    home = tmp_path_factory.mktemp("trained-home")
    for result in (priced_result, training_result):
        save_staged(result, home)
    export_model(priced_result, home / "models", Bands())
    return export_model(training_result, home / "models", Bands())


@pytest.fixture(scope="session")
def trained_home(export_report: ExportReport) -> Path:
    """A home with the champion staged and exported as the current model."""
    return export_report.path.parent.parent


@pytest.fixture(scope="session")
def behaviour_result(lending_club: LendingClub, trained_home: Path) -> BehaviourResult:
    """The full behavioural training run (every real loan, default seed and months)."""
    return train_behaviour(lending_club, load_model(trained_home / "models"))


@pytest.fixture(scope="session")
def behaviour_export_report(behaviour_result: BehaviourResult, trained_home: Path) -> ExportReport:
    return export_behaviour(behaviour_result, trained_home / "models")


@pytest.fixture(scope="session")
def behaviour_model_home(trained_home: Path, behaviour_export_report: ExportReport) -> Path:
    """``trained_home`` with the behavioural model exported as current under
    ``models/behaviour``."""
    return trained_home
