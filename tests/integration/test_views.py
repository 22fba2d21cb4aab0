"""Every materialized view equals the same aggregate computed directly from its source table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flows.jobs import run_files
from flows.model import ScoringModel
from flows.settings import Settings
from flows.store import StoreURL
from tests.conftest import query_rows


@pytest.fixture
def scored_store(
    settings: Settings, model: ScoringModel, events_file: Callable[..., Path]
) -> StoreURL:
    # Two runs into one store: the views must merge states across inserts and parts.
    run_files([events_file(2500, corrupt=0.03, seed=11, name="a.jsonl")], settings, model)
    run_files([events_file(2500, corrupt=0.03, seed=12, name="b.jsonl")], settings, model)
    return settings.store


def same(url: StoreURL, from_view: str, direct: str) -> None:
    view_rows = query_rows(url, from_view)
    direct_rows = query_rows(url, direct)
    assert view_rows, "the view is empty"
    assert len(view_rows) == len(direct_rows)
    for got, want in zip(view_rows, direct_rows, strict=True):
        assert got.keys() == want.keys()
        for key in got:
            if isinstance(want[key], float):
                assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9), key
            else:
                assert got[key] == want[key], key


def test_risk_band_minute(scored_store: str) -> None:
    same(
        scored_store,
        "SELECT minute, band, model_version, sum(loans) AS loans, sum(pd_lifetime_sum) AS pd_sum,"
        " quantilesMerge(0.5, 0.9, 0.95, 0.99)(pd_lifetime_quantiles) AS q,"
        " sum(exposure) AS exposure, sum(expected_loss_lifetime) AS el"
        " FROM risk_band_minute GROUP BY minute, band, model_version"
        " ORDER BY minute, band, model_version",
        "SELECT toStartOfMinute(event_time) AS minute, band, model_version,"
        " count() AS loans, sum(pd_lifetime) AS pd_sum,"
        " quantiles(0.5, 0.9, 0.95, 0.99)(pd_lifetime) AS q,"
        " sum(exposure) AS exposure, sum(expected_loss_lifetime) AS el"
        " FROM scored_events FINAL GROUP BY minute, band, model_version"
        " ORDER BY minute, band, model_version",
    )


def test_risk_by_grade_day(scored_store: str) -> None:
    same(
        scored_store,
        "SELECT day, grade, sub_grade, band, sum(loans) AS loans, sum(pd_lifetime_sum) AS pd_sum,"
        " sum(exposure) AS exposure, sum(expected_loss_lifetime) AS el FROM risk_by_grade_day"
        " GROUP BY day, grade, sub_grade, band ORDER BY day, grade, sub_grade, band",
        "SELECT toDate(event_time) AS day, grade, sub_grade, band, count() AS loans,"
        " sum(pd_lifetime) AS pd_sum, sum(exposure) AS exposure, sum(expected_loss_lifetime) AS el"
        " FROM scored_events FINAL GROUP BY day, grade, sub_grade, band"
        " ORDER BY day, grade, sub_grade, band",
    )


def test_risk_by_state_day(scored_store: str) -> None:
    same(
        scored_store,
        "SELECT day, addr_state, band, sum(loans) AS loans, sum(pd_lifetime_sum) AS pd_sum,"
        " sum(exposure) AS exposure, sum(expected_loss_lifetime) AS el FROM risk_by_state_day"
        " GROUP BY day, addr_state, band ORDER BY day, addr_state, band",
        "SELECT toDate(event_time) AS day, addr_state, band, count() AS loans,"
        " sum(pd_lifetime) AS pd_sum, sum(exposure) AS exposure, sum(expected_loss_lifetime) AS el"
        " FROM scored_events FINAL GROUP BY day, addr_state, band ORDER BY day, addr_state, band",
    )


def test_watchlist_is_each_loans_latest_score(scored_store: str) -> None:
    same(
        scored_store,
        "SELECT loan_id, pd_12m, band, reason_codes FROM watchlist ORDER BY pd_12m DESC, loan_id",
        "SELECT loan_id, argMax(pd_12m, event_time) AS pd_12m, argMax(band, event_time) AS band,"
        " argMax(reason_codes, event_time) AS reason_codes"
        " FROM scored_events FINAL GROUP BY loan_id ORDER BY pd_12m DESC, loan_id",
    )


def test_dead_letters_minute(scored_store: str) -> None:
    same(
        scored_store,
        "SELECT minute, reason, sum(dead_letters) AS n FROM dead_letters_minute"
        " GROUP BY minute, reason ORDER BY minute, reason",
        "SELECT toStartOfMinute(received_at) AS minute, reason, count() AS n"
        " FROM dead_letters FINAL GROUP BY minute, reason ORDER BY minute, reason",
    )
