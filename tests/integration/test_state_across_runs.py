"""A loan's state outlives a file run: repayments in a later run (another file, no recovery
directory) find the applications an earlier run stored, and repayments that waited in an
earlier run are scored when their application arrives in a later one. Either split ends with
the same live scores and month states as one run over everything.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.jobs import RunOptions, run_files
from flows.loan import snapshot as snapshot_module
from flows.loan.book import BookEntry
from flows.model import ScoringModel, load_live_model
from flows.runner import Recovery
from flows.settings import Settings
from flows.steps.loan_history import LoanHistory
from flows.store import open_store
from flows.validation import is_repayment
from tests.conftest import query_rows
from training.dataset import LendingClub
from training.repayments import mixed_events
from training.replay import ReplayPlan

SCORES = (
    "SELECT event_id, pd_12m, origination_pd_lifetime, days_past_due, outstanding_balance,"
    " expected_loss_12m,"
    " dpd_bucket FROM repayment_scores FINAL ORDER BY event_id"
)
MONTHS = "SELECT month, loan_id, dpd_bucket, balance FROM loan_month_end ORDER BY ALL"


@pytest.fixture(scope="module")
def lines(lending_club: LendingClub) -> list[bytes]:
    plan = ReplayPlan(max_events=300, seed=21, start=datetime(2024, 2, 5, tzinfo=UTC))
    return list(mixed_events(lending_club, plan, months=6))


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many loans a run encoded for snapshots (the real encoding, counted)."""
    count = [0]
    real = snapshot_module.encode_entry

    def counted(entry: BookEntry) -> bytes:
        count[0] += 1
        return real(entry)

    monkeypatch.setattr(snapshot_module, "encode_entry", counted)
    return count


@pytest.fixture
def history_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times runs looked up stored history for loans they met (the real lookup)."""
    count = [0]
    real = LoanHistory.events

    def counted(self: LoanHistory, loan_ids: set[str]) -> tuple[list[object], set[str]]:
        count[0] += 1
        return real(self, loan_ids)  # type: ignore[return-value]

    monkeypatch.setattr(LoanHistory, "events", counted)
    return count


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("repayments_first", "recovery"), [(False, False), (True, False), (False, True)]
)
def test_a_loan_split_over_two_file_runs_scores_as_one_run(
    settings: Settings,
    model: ScoringModel,
    behaviour_model_home: Path,
    lines: list[bytes],
    tmp_path: Path,
    repayments_first: bool,
    recovery: bool,
    encoded: list[int],
    history_reads: list[int],
) -> None:
    """With a recovery directory too: the second run's other file resumes nothing of the
    first's snapshots (Bytewax stopped such a run before, on its routing map). Only a run
    with a recovery directory encodes loans for snapshots. A run into a store that held no
    loans never looks for history: only the second run of the split does."""
    live_model = load_live_model(behaviour_model_home / "models")
    options = RunOptions(live_model=live_model)
    split_options = replace(options, recovery=Recovery(tmp_path / "recovery") if recovery else None)
    repayments = [x for x in lines if is_repayment(x)]
    applications = [x for x in lines if not is_repayment(x)]
    whole = run_files([write(tmp_path / "all.jsonl", lines)], settings, model, options)
    assert whole.pending_repayments == 0 and len(repayments) > 5 * len(applications)
    assert encoded[0] == 0
    assert history_reads[0] == 0

    split = settings.with_overrides(store_url=f"chdb://{tmp_path / 'split'}")
    parts = [applications, repayments]
    if repayments_first:
        parts.reverse()
    first = run_files([write(tmp_path / "first.jsonl", parts[0])], split, model, split_options)
    assert history_reads[0] == 0
    second = run_files([write(tmp_path / "second.jsonl", parts[1])], split, model, split_options)
    assert (encoded[0] > 0) == recovery
    assert history_reads[0] > 0
    if repayments_first:
        assert first.pending_repayments == len(repayments)
        assert second.pending_repayments == -len(repayments)
    else:
        assert first.pending_repayments == second.pending_repayments == 0
    assert first.sent + second.sent + first.pending_repayments + second.pending_repayments == len(
        lines
    )
    for sql in (SCORES, MONTHS):
        assert query_rows(split.store, sql) == query_rows(settings.store, sql)
    [row] = query_rows(split.store, "SELECT count() AS n FROM repayment_scores")
    assert row["n"] == len(repayments)


def test_repayments_stored_without_their_live_scores_are_scored_by_the_rerun(
    settings: Settings,
    behaviour_model_home: Path,
    model: ScoringModel,
    lines: list[bytes],
    tmp_path: Path,
) -> None:
    """A run that stored a loan's raw repayments but died before their live scores were written
    leaves them unobserved; the rerun meets the loan, replays its history from the store and
    scores exactly those again, ending with the scores one clean run gives."""
    options = RunOptions(live_model=load_live_model(behaviour_model_home / "models"))
    path = write(tmp_path / "all.jsonl", lines)
    run_files([path], settings, model, options)
    whole = query_rows(settings.store, SCORES)
    db = open_store(settings.store)
    try:
        # every fifth loan's live scores, as if the run had died before writing them
        db.command(
            "ALTER TABLE repayment_scores DELETE WHERE cityHash64(loan_id) % 5 = 0"
            " SETTINGS mutations_sync = 2"
        )
    finally:
        db.close()

    lost = len(whole) - len(query_rows(settings.store, SCORES))
    assert lost > 0
    rerun = run_files([path], settings, model, options)
    # every line was read again and stored already; only the lost scores are new
    assert (rerun.sent, rerun.duplicates, rerun.scored) == (len(lines), len(lines), 0)
    assert rerun.restored == lost
    assert query_rows(settings.store, SCORES) == whole
