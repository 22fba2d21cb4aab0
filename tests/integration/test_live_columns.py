"""The live scorer's rows carry their own loan's terms and segment: it reads them once per loan
in a batch, so rows of many loans interleaved, from several books, must each still get
exactly what their own observation holds."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

from flows.events import LoanApplication, LoanRepayment, epoch_ms
from flows.live_scoring import LiveScorer
from flows.loan.book import BookOutcome, LoanBook, LoanEvent, Opened, Repaid, shard_of
from flows.model import load_live_model
from flows.settings import Settings
from flows.validation import decode_event
from training.dataset import LendingClub
from training.repayments import mixed_events
from training.replay import ReplayPlan

RECEIVED_US = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp() * 1_000_000)


def test_each_row_has_its_own_loans_terms_and_segment(
    settings: Settings, behaviour_model_home: Path, lending_club: LendingClub
) -> None:
    plan = ReplayPlan(max_events=1_500, seed=9, start=datetime(2025, 1, 1, tzinfo=UTC))
    rng = random.Random(4)
    events: list[LoanEvent] = []
    for raw in mixed_events(lending_club, plan):
        event = decode_event(raw, "t", 1 << 16)
        if isinstance(event, LoanApplication):
            # PDs and model versions that differ between loans, so a mix-up shows
            events.append(Opened(event, rng.uniform(0.01, 0.4), f"v{rng.randrange(5)}"))
        elif isinstance(event, LoanRepayment):
            events.append(Repaid(event, "t", RECEIVED_US, RECEIVED_US // 1000))
    outcomes = []
    for part in range(3):  # each loan in one of three books, as the shards keep them
        mine = [e for e in events if int(shard_of(_loan(e))) % 3 == part]
        outcomes.append(BookOutcome(LoanBook().apply(mine)))
    observed = [o for outcome in outcomes for o in outcome.observed]
    assert len({o.state.loan_id for o in observed}) > 50

    live = LiveScorer(load_live_model(behaviour_model_home / "models"), settings)
    [batch] = live(outcomes)
    rows = batch.repayments.to_pylist()
    assert len(rows) == len(observed)
    for row, o in zip(rows, observed, strict=True):
        state, segment = o.state, o.segment
        assert row["loan_id"] == state.loan_id == o.repaid.event.loan_id
        assert (
            epoch_ms(row["event_time"]) == o.repaid.event_ms == epoch_ms(o.repaid.event.event_time)
        )
        assert row["origination_pd_lifetime"] == state.origination_pd
        assert row["origination_date"] == state.origination_date
        assert row["term_months"] == state.term_months
        assert row["installment"] == state.installment
        assert row["funded_amnt"] == state.funded_amnt
        assert row["grade"] == segment.grade
        assert row["sub_grade"] == segment.sub_grade
        assert row["addr_state"] == segment.addr_state
        assert row["origination_model_version"] == segment.origination_version


def _loan(event: LoanEvent) -> str:
    return event.app.loan_id if isinstance(event, Opened) else event.event.loan_id
