"""The decision service's reasons as Python lists are the stream's reasons, row for row."""

from __future__ import annotations

import numpy as np

from flows.model import ScoringModel
from flows.scoring import feature_matrix
from flows.validation import decode_application
from training.dataset import LendingClub
from training.replay import ReplayPlan, application_events


def test_explain_rows_gives_what_explain_gives(
    model: ScoringModel, lending_club: LendingClub
) -> None:
    events = list(application_events(lending_club, ReplayPlan(max_events=400, seed=5)))
    apps = [decode_application(e, "t", 1 << 20) for e in events]
    matrix = feature_matrix(apps)  # type: ignore[arg-type]
    # missing values take the "not supplied" codes: make sure some rows have them
    matrix[::7, 5:12] = np.nan
    for rows in (matrix[:1], matrix[:3], matrix):
        for top in (1, 3, 5):
            pd, codes, texts = model.explain(rows, top)
            pd_rows, code_rows, text_rows = model.explain_rows(rows, top)
            assert np.array_equal(pd, pd_rows)
            assert codes.to_pylist() == code_rows
            assert texts.to_pylist() == text_rows
    assert any("not_supplied" in c for row in code_rows for c in row)
    empty = model.explain_rows(matrix[:0], 3)
    assert (len(empty[0]), empty[1], empty[2]) == (0, [], [])
