"""The training matrix, built through the same path a streamed application takes.

Each LendingClub row becomes a JSON loan-application event, is decoded and validated by the
event schema exactly as the dataflow decodes Kafka payloads, and then goes through
:func:`flows.features.application_features`. Training therefore never sees a feature the
stream would compute differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import numpy as np

from flows.events import LoanApplication
from flows.features import FEATURE_NAMES, application_features
from training.dataset import (
    DatasetError,
    LendingClub,
    application_record,
    iter_rows,
    loan_id_for,
)

# Origination features do not depend on event time; one fixed instant keeps the matrix
# reproducible byte for byte.
TRAINING_EVENT_TIME = datetime(2018, 1, 1, tzinfo=UTC)


class TrainingDataError(DatasetError):
    """A dataset row does not make a valid loan-application event."""


@dataclass(frozen=True)
class Matrix:
    features: np.ndarray  # (n, len(FEATURE_NAMES)) float64, NaN where a field was absent
    labels: np.ndarray  # (n,) int8, 1 = bad
    loan_ids: np.ndarray  # (n,) str

    def __len__(self) -> int:
        return len(self.labels)


def application_matrix(data: LendingClub) -> Matrix:
    """Features, labels and loan ids of every row, in dataset order."""
    decoder = msgspec.json.Decoder(LoanApplication)
    rows: list[tuple[float, ...]] = []
    loan_ids: list[str] = []
    for row_number, row in iter_rows(data):
        loan_id = loan_id_for(row_number)
        payload = msgspec.json.encode(application_record(row, loan_id, TRAINING_EVENT_TIME))
        try:
            application = decoder.decode(payload)
        except msgspec.ValidationError as exc:
            raise TrainingDataError(
                f"dataset row {row_number} is not a valid application: {exc}"
            ) from exc
        rows.append(application_features(application))
        loan_ids.append(loan_id)
    features = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))
    return Matrix(features=features, labels=data.labels, loan_ids=np.asarray(loan_ids))
