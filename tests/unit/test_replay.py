"""Replay: real LendingClub rows as reproducible, valid, timestamped events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from flows.events import LoanApplication
from flows.validation import DeadLetter, decode_application
from training.dataset import LendingClub
from training.replay import ReplayPlan, application_events

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_same_seed_same_bytes(lending_club: LendingClub) -> None:
    plan = ReplayPlan(max_events=300, seed=3, start=START, corrupt_share=0.1)
    assert list(application_events(lending_club, plan)) == list(
        application_events(lending_club, plan)
    )
    other = ReplayPlan(max_events=300, seed=4, start=START, corrupt_share=0.1)
    assert list(application_events(lending_club, plan)) != list(
        application_events(lending_club, other)
    )


def test_events_are_valid_real_loans_spaced_in_event_time(lending_club: LendingClub) -> None:
    plan = ReplayPlan(max_events=500, start=START, spacing=timedelta(seconds=2))
    apps = [
        msgspec.json.decode(e, type=LoanApplication) for e in application_events(lending_club, plan)
    ]
    assert len(apps) == 500
    assert [a.event_time for a in apps] == [START + timedelta(seconds=2 * i) for i in range(500)]
    assert len({a.event_id for a in apps}) == 500
    by_loan = lending_club.frame.set_index("rownames")
    for app in apps[:50]:
        row = by_loan.loc[int(app.loan_id.removeprefix("LC"))]
        assert app.funded_amnt == row["funded_amnt"]
        assert app.annual_inc == row["annual_inc"]
        assert app.sub_grade == row["sub_grade"]


def test_more_events_than_loans_repeat_under_new_ids(lending_club: LendingClub) -> None:
    n = len(lending_club) + 20
    ids = [
        msgspec.json.decode(e, type=LoanApplication).loan_id
        for e in application_events(lending_club, ReplayPlan(max_events=n, start=START))
    ]
    assert len(ids) == len(set(ids)) == n
    assert sum(i.endswith("-r1") for i in ids) == 20


def test_broken_twins_are_all_dead_letters(lending_club: LendingClub) -> None:
    plan = ReplayPlan(max_events=2000, start=START, corrupt_share=0.2)
    results = [decode_application(e, "t", 16384) for e in application_events(lending_club, plan)]
    dead = [r for r in results if isinstance(r, DeadLetter)]
    assert len(results) - len(dead) == 2000
    assert 300 < len(dead) < 500
    assert {d.reason for d in dead} == {
        "out_of_range", "unknown_category", "missing_field", "wrong_type", "malformed_json",
        "invalid_utf8",
    }  # fmt: skip
