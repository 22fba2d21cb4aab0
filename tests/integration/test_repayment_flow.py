"""Repayments through the dataflow: per-loan state, live PD, and the delinquency views, on
repayment histories derived from real LendingClub loans."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from itertools import pairwise
from pathlib import Path

import msgspec
import pytest

from flows.events import LoanApplication, LoanRepayment
from flows.jobs import RunOptions, run_files
from flows.loan.labels import dpd_bucket
from flows.loan.schedule import add_months
from flows.model import ScoringModel, load_live_model
from flows.runner import Recovery
from flows.settings import Settings
from flows.store import StoreURL
from flows.validation import is_repayment
from tests.conftest import query_rows
from tests.unit.test_month_end import direct_positions
from training.dataset import LendingClub
from training.repayments import mixed_events
from training.replay import ReplayPlan

START = datetime(2025, 1, 6, tzinfo=UTC)
_APPLICATION = msgspec.json.Decoder(LoanApplication)
_REPAYMENT = msgspec.json.Decoder(LoanRepayment)


@pytest.fixture
def live_model(behaviour_model_home: Path) -> ScoringModel:
    model = load_live_model(behaviour_model_home / "models")
    assert model is not None
    return model


@pytest.fixture(scope="module")
def mixed_lines(lending_club: LendingClub) -> list[bytes]:
    plan = ReplayPlan(max_events=1500, seed=5, start=START, corrupt_share=0.01)
    return list(mixed_events(lending_club, plan, months=12))


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


@pytest.fixture
def mixed_store(
    settings: Settings,
    model: ScoringModel,
    live_model: ScoringModel,
    mixed_lines: list[bytes],
    tmp_path: Path,
) -> str:
    stats = run_files(
        [write(tmp_path / "mixed.jsonl", mixed_lines)], settings, model,
        RunOptions(live_model=live_model),
    )  # fmt: skip
    repayments = sum(1 for line in mixed_lines if is_repayment(line))
    assert stats.sent == len(mixed_lines)
    assert stats.scored + stats.dead_lettered == len(mixed_lines)
    assert stats.pending_repayments == 0
    [row] = query_rows(settings.store, "SELECT count() AS n FROM repayment_scores")
    assert row["n"] == repayments
    return settings.store


def test_every_repayment_gets_a_live_score(mixed_store: StoreURL, settings: Settings) -> None:
    rows = query_rows(
        mixed_store,
        "SELECT pd_12m AS pd, origination_pd_lifetime AS origination_pd, model_version,"
        " origination_model_version, exposure, lgd, expected_loss_12m AS expected_loss,"
        " outstanding_balance, dpd_bucket, days_past_due, reason_codes"
        " FROM repayment_scores",
    )
    assert rows
    for row in rows:
        assert 0 <= row["pd"] <= 1 and 0 < row["origination_pd"] < 1
        assert row["model_version"] != row["origination_model_version"]
        assert row["exposure"] == row["outstanding_balance"]
        assert row["expected_loss"] == pytest.approx(row["pd"] * row["exposure"] * settings.lgd)
        assert row["dpd_bucket"] in {"current", "1-29", "30-59", "60-89", "90+"}
    assert {r["dpd_bucket"] for r in rows} >= {"current", "30-59", "90+"}


def test_live_pd_rises_when_payments_are_missed(mixed_store: StoreURL) -> None:
    # Falls after cures are checked on constructed histories in test_behaviour.py: the derived
    # histories here cure only within a few days, before any event sees them delinquent.
    rows = query_rows(
        mixed_store,
        "SELECT loan_id, installment_number, days_past_due, pd_12m AS pd FROM repayment_scores"
        " ORDER BY loan_id, event_time, installment_number",
    )
    history: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        history[row["loan_id"]].append(row)
    rises = 0
    for events in history.values():
        for before, after in pairwise(events):
            if before["days_past_due"] == 0 and after["days_past_due"] >= 30:
                assert after["pd"] > before["pd"]
                rises += 1
    assert rises >= 10


def test_watchlist_follows_the_latest_event_of_each_loan(mixed_store: StoreURL) -> None:
    latest = query_rows(
        mixed_store,
        "SELECT loan_id, argMax(pd_12m, (event_time, n)) AS pd_12m FROM ("
        " SELECT loan_id, event_time, 0 AS n, pd_12m FROM scored_events UNION ALL"
        " SELECT loan_id, event_time, installment_number AS n, pd_12m FROM repayment_scores)"
        " GROUP BY loan_id ORDER BY loan_id",
    )
    shown = query_rows(mixed_store, "SELECT loan_id, pd_12m FROM watchlist ORDER BY loan_id")
    assert shown == latest


def _loans(lines: list[bytes]) -> dict[str, tuple[LoanApplication, list[LoanRepayment]]]:
    """Each valid application with its repayments, decoded as the flow decodes them."""
    apps: dict[str, LoanApplication] = {}
    repaid: dict[str, list[LoanRepayment]] = defaultdict(list)
    for line in lines:
        for decoder in (_REPAYMENT, _APPLICATION):
            try:
                event = decoder.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
                continue
            if isinstance(event, LoanRepayment):
                repaid[event.loan_id].append(event)
            else:
                apps.setdefault(event.loan_id, event)
            break
    return {loan: (apps[loan], events) for loan, events in repaid.items()}


@pytest.fixture(scope="module")
def month_end_positions(mixed_lines: list[bytes]) -> dict[tuple[str, date], tuple[int, float]]:
    return direct_positions(_loans(mixed_lines))


def test_delinquency_buckets_are_month_end_positions(
    mixed_store: StoreURL, month_end_positions: dict
) -> None:
    """Every loan on book at every month end, in the bucket of its days past due then."""
    loans: Counter[tuple[date, str]] = Counter()
    balance: dict[tuple[date, str], float] = defaultdict(float)
    for (_, end), (dpd, owed) in month_end_positions.items():
        key = (end.replace(day=1), dpd_bucket(dpd))
        loans[key] += 1
        balance[key] += owed
    view = query_rows(
        mixed_store, "SELECT month, dpd_bucket, loans, balance FROM delinquency_monthly"
    )
    assert {(r["month"], r["dpd_bucket"]): r["loans"] for r in view} == dict(loans)
    for r in view:
        assert r["balance"] == pytest.approx(balance[(r["month"], r["dpd_bucket"])])
    assert len({r["month"] for r in view}) > 12
    assert {r["dpd_bucket"] for r in view} == {"current", "1-29", "30-59", "60-89", "90+"}


def test_roll_rates_are_shares_of_month_end_transitions(
    mixed_store: StoreURL, month_end_positions: dict
) -> None:
    by_loan = {(loan, end.replace(day=1)): dpd_bucket(d) for (loan, end), (d, _) in
               month_end_positions.items()}  # fmt: skip
    counts: Counter[tuple[date, str, str]] = Counter()
    totals: Counter[tuple[date, str]] = Counter()
    for (loan, month), bucket in by_loan.items():
        following = add_months(month, 1)
        if (loan, following) in by_loan:
            counts[(month, bucket, by_loan[(loan, following)])] += 1
            totals[(month, bucket)] += 1
    view = query_rows(
        mixed_store, "SELECT month, from_bucket, to_bucket, loans, rate FROM roll_rates"
    )
    assert {(r["month"], r["from_bucket"], r["to_bucket"]): r["loans"] for r in view} == counts
    for r in view:
        assert 0.0 <= r["rate"] <= 1.0
        assert r["rate"] == pytest.approx(r["loans"] / totals[(r["month"], r["from_bucket"])])
    moves = {(r["from_bucket"], r["to_bucket"]) for r in view}
    # loans fall behind, cure back to current, and roll on to 90+
    assert {("current", "1-29"), ("30-59", "current"), ("60-89", "90+")} <= moves
    # 30-59 does not roll to 60-89 with certainty: some cure, some stay
    rolled = [r["rate"] for r in view if (r["from_bucket"], r["to_bucket"]) == ("30-59", "60-89")]
    assert rolled and min(rolled) < 1.0


def latest_12m_expected_loss(store: str) -> dict[str, tuple[str, float]]:
    """Each loan's band and 12-month expected loss from its latest score, in Python: a live
    score as stored; an origination (lifetime) PD over the term converted to 12 months."""
    rows = query_rows(
        store,
        "SELECT loan_id, event_time, 0 AS n, band, pd_lifetime AS pd,"
        " expected_loss_lifetime AS expected_loss, term_months FROM scored_events UNION ALL"
        " SELECT loan_id, event_time, installment_number AS n, band, pd_12m AS pd,"
        " expected_loss_12m AS expected_loss, term_months FROM repayment_scores",
    )
    latest: dict[str, dict] = {}
    for row in rows:
        key = (row["event_time"], row["n"])
        if row["loan_id"] not in latest or key > latest[row["loan_id"]]["key"]:
            latest[row["loan_id"]] = {**row, "key": key}
    out = {}
    for loan, row in latest.items():
        el = row["expected_loss"]
        if row["n"] == 0 and row["pd"] > 0:
            el *= (1 - (1 - row["pd"]) ** (12 / row["term_months"])) / row["pd"]
        out[loan] = (row["band"], el)
    return out


def test_expected_loss_is_on_one_12_month_horizon(mixed_store: StoreURL) -> None:
    direct: dict[str, list[float]] = defaultdict(list)
    for band, el in latest_12m_expected_loss(mixed_store).values():
        direct[band].append(el)
    view = query_rows(
        mixed_store,
        "SELECT band, sum(expected_loss_12m) AS el, sum(loans) AS loans FROM expected_loss_current"
        " GROUP BY band ORDER BY band",
    )
    assert [(r["band"], r["loans"]) for r in view] == sorted(
        (band, len(els)) for band, els in direct.items()
    )
    for r in view:
        assert r["el"] == pytest.approx(sum(direct[r["band"]]))


def _loan_of(line: bytes) -> str:
    try:
        return str(msgspec.json.decode(line).get("loan_id", ""))
    except (msgspec.DecodeError, UnicodeDecodeError, AttributeError):
        return ""  # a deliberately broken event


def _split(lines: list[bytes], loan: str) -> Iterator[list[bytes]]:
    mine = [x for x in lines if _loan_of(x) == loan]
    yield [x for x in mine if is_repayment(x)]
    yield [x for x in mine if not is_repayment(x)]


def test_repayments_before_their_application_wait_across_a_restart(
    settings: Settings,
    model: ScoringModel,
    live_model: ScoringModel,
    mixed_lines: list[bytes],
    tmp_path: Path,
) -> None:
    loan = next(_loan_of(x) for x in mixed_lines if is_repayment(x))
    repayments, application = _split(mixed_lines, loan)
    options = RunOptions(live_model=live_model, recovery=Recovery(tmp_path / "recovery"))
    stream = write(tmp_path / "stream.jsonl", repayments)
    first = run_files([stream], settings, model, options)
    assert first.pending_repayments == len(repayments) > 3
    [kept] = query_rows(
        settings.store,
        f"SELECT (SELECT count() FROM raw_events WHERE loan_id = '{loan}') AS raw,"
        f" (SELECT count() FROM repayment_scores WHERE loan_id = '{loan}') AS scored,"
        " (SELECT sum(pending_repayments) FROM ops_batches) AS reported",
    )
    assert kept == {"raw": len(repayments), "scored": 0, "reported": len(repayments)}
    # The application arrives later in the same stream; the restarted flow resumes after what
    # it read, and its restored state applies what was waiting.
    with stream.open("ab") as tail:
        tail.write(b"".join(line + b"\n" for line in application))
    second = run_files([stream], settings, model, options)
    assert second.sent == 1 + len(repayments)
    assert second.pending_repayments == -len(repayments)
    [row] = query_rows(
        settings.store, f"SELECT count() AS n FROM repayment_scores WHERE loan_id = '{loan}'"
    )
    assert row["n"] == len(repayments)
