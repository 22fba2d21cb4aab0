"""Drift: PSI against hand-computed values, SQL binning equal to the training binning, and real
loans replayed as they are (no alert) or with incomes halved (alert, exit code 3).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from cli.drift_cmd import ALERT_EXIT_CODE
from cli.main import app
from flows.clock import utc_now
from flows.drift import (
    DriftResult,
    Reference,
    card_references,
    compare,
    live_bins_sql,
    live_counts,
    measure,
    psi,
    status_of,
)
from flows.features import FEATURE_NAMES
from flows.jobs import run_files
from flows.model import ScoringModel
from flows.settings import DriftSettings, Settings
from flows.store import Store, StoreURL, open_store
from flows.times import Window
from tests.conftest import query_rows
from training import metrics
from training.dataset import LendingClub, application_record, iter_rows

runner = CliRunner()
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# The scored populations are processed from this moment on (the processing_clock fixture).
PROCESSING_EPOCH = datetime(2024, 5, 2, 9, 0, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("processing_clock")


# --- PSI and windows, by hand ------------------------------------------------------------------


def test_psi_by_hand() -> None:
    # Bins (reference -> live): 0.5 -> 0.3, 0.3 -> 0.3, 0.2 -> 0.3, missing 0 (floored) -> 0.1
    expected = (
        (0.3 - 0.5) * math.log(0.3 / 0.5)
        + 0.0
        + (0.3 - 0.2) * math.log(0.3 / 0.2)
        + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    )
    assert expected == pytest.approx(0.83280, abs=1e-5)
    assert psi([0.5, 0.3, 0.2, 0.0], [0.3, 0.3, 0.3, 0.1]) == pytest.approx(expected, rel=1e-12)
    assert psi([0.25] * 4, [0.25] * 4) == 0.0


def test_status_thresholds_are_inclusive() -> None:
    t = DriftSettings(watch=0.1, alert=0.25)
    assert [status_of(v, t) for v in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == [
        "ok", "ok", "watch", "watch", "alert", "alert",
    ]  # fmt: skip


def test_sql_binning_by_hand(store: Store) -> None:
    """Ten rows on edges [-inf, 1, 2, inf]: values on an edge fall in the bin it closes, NaN is
    its own bin, and rows outside the window or (for the PD) of another model are left out."""
    values = [0.5, 1.0, 1.5, 2.0, 2.0, 3.0, 3.0, 3.0, math.nan, 0.0]
    times = [T0 + timedelta(minutes=i) for i in range(len(values))]
    rows = {
        "event_id": [f"e{i}" for i in range(12)],
        "event_time": [*times, T0 - timedelta(seconds=1), T0 + timedelta(hours=1)],
        "model_version": ["m1"] * 9 + ["m0"] + ["m1", "m1"],
        "interest_rate": [*values, 0.5, 0.5],
        # the applicant model's PD, stored under its horizon's name (migration 0120)
        "pd_lifetime": [0.01, 0.03, 0.05, 0.07, 0.2, 0.2, 0.3, 0.01, 0.01, 0.9, 0.5, 0.5],
    }
    store.insert_arrow(
        "scored_events",
        pa.table(
            {
                **{k: v for k, v in rows.items() if k != "event_time"},
                "event_time": pa.array(rows["event_time"], pa.timestamp("ms", tz="UTC")),
            }
        ),
    )
    ref = Reference(edges=(-math.inf, 1.0, 2.0, math.inf), proportions=(0.5, 0.3, 0.2))
    pd_ref = Reference(edges=(-math.inf, 0.04, math.inf), proportions=(0.5, 0.5))
    refs = {"interest_rate": ref, "pd": pd_ref}
    window = Window(T0, T0 + timedelta(hours=1))
    counts = live_counts(
        store.query_arrow(live_bins_sql(refs, None), {**window.params(), "model_version": "m1"})
    )
    assert counts["interest_rate"] == {0: 3, 1: 3, 2: 3, -1: 1}
    # PD of the nine m1 rows in the window: 0.01, 0.03, 0.01, 0.01 <= 0.04 < the other five.
    assert counts["pd"] == {0: 4, 1: 5}
    rows_out, skipped = compare(refs, None, counts, DriftSettings(min_rows=5))
    by_name = {r.name: r for r in rows_out}
    assert by_name["interest_rate"].psi == pytest.approx(0.83280, abs=1e-5)
    assert by_name["interest_rate"].status == "alert"
    assert by_name["interest_rate"].live_shares == pytest.approx([0.3, 0.3, 0.3, 0.1])
    # PD: reference [0.5, 0.5, missing 0] vs live [4/9, 5/9, 0]
    pd_psi = (4 / 9 - 0.5) * math.log(8 / 9) + (5 / 9 - 0.5) * math.log(10 / 9)
    assert by_name["pd"].psi == pytest.approx(pd_psi, rel=1e-9)
    assert any("band_mix" in s for s in skipped)


# --- Real loans: as trained, and with incomes halved -------------------------------------------


def loan_events(
    data: LendingClub, n: int, *, seed: int, income_scale: float = 1.0, tag: str = ""
) -> Iterator[bytes]:
    """``n`` real loans as application events ending about now. ``income_scale`` != 1 is a
    deliberate, labelled change of the real data: every applicant's annual income scaled."""
    rows = list(iter_rows(data))
    random.Random(seed).shuffle(rows)
    start = utc_now().replace(microsecond=0) - timedelta(minutes=10)
    encoder = msgspec.json.Encoder()
    for i, (number, row) in enumerate(rows[:n]):
        scaled = {**row, "annual_inc": float(row["annual_inc"]) * income_scale}
        when = start + timedelta(milliseconds=100 * i)
        yield encoder.encode(application_record(scaled, f"LC{number:05d}{tag}", when))


@dataclass(frozen=True)
class Population:
    url: StoreURL
    result: DriftResult


def _score_and_measure(
    tmp: Path, name: str, events: Iterator[bytes], home: Path, model: ScoringModel
) -> Population:
    path = tmp / f"{name}.jsonl"
    path.write_bytes(b"".join(e + b"\n" for e in events))
    cfg = Settings(home=home, store_url=f"chdb://{tmp / name}", batch_size=1000)
    run_files([path], cfg, model)
    db = open_store(cfg.store)
    try:
        result = measure(db, model.card, Window(T0, utc_now()), DriftSettings())
    finally:
        db.close()
    return Population(cfg.store, result)


@pytest.fixture(scope="module")
def populations(
    processing_clock: datetime,
    tmp_path_factory: pytest.TempPathFactory,
    lending_club: LendingClub,
    trained_home: Path,
    model: ScoringModel,
) -> dict[str, Population]:
    tmp = tmp_path_factory.mktemp("drift")
    return {
        "as_trained": _score_and_measure(
            tmp, "as_trained", loan_events(lending_club, 3000, seed=5), trained_home, model
        ),
        "income_halved": _score_and_measure(
            tmp,
            "income_halved",
            loan_events(lending_club, 3000, seed=5, income_scale=0.5, tag="-inc50"),
            trained_home,
            model,
        ),
    }


def _psi(result: DriftResult) -> dict[str, float]:
    return {row.name: row.psi for row in result.rows}


def test_training_distribution_replayed_raises_no_alert(populations: dict[str, Population]) -> None:
    result = populations["as_trained"].result
    assert result.live_rows == 3000
    assert {row.name for row in result.rows} == {*FEATURE_NAMES, "pd", "band_mix"}
    assert result.status == "ok", _psi(result)
    assert max(_psi(result).values()) < 0.02, _psi(result)


def test_incomes_halved_raise_the_alert(populations: dict[str, Population]) -> None:
    psis = _psi(populations["income_halved"].result)
    statuses = {row.name: row.status for row in populations["income_halved"].result.rows}
    for income_driven in ("annual_income_log", "loan_to_income", "installment_to_income"):
        assert statuses[income_driven] == "alert", psis
    assert psis["annual_income_log"] > 1.0
    # What income does not enter stays where training had it.
    for untouched in ("interest_rate", "sub_grade_rank", "inquiries_6m", "loan_amount_log"):
        assert statuses[untouched] == "ok", psis
    # The PD distribution moves with them (its PSI rises well above the unshifted one).
    assert psis["pd"] > 0.02 > _psi(populations["as_trained"].result)["pd"]


def test_sql_bins_equal_training_bins_on_real_scores(
    populations: dict[str, Population], model: ScoringModel
) -> None:
    """The live shares ClickHouse computes equal numpy's bin_shares on the same values and
    edges, for every feature and the PD."""
    table = query_rows(
        populations["as_trained"].url,
        f"SELECT {', '.join(FEATURE_NAMES)}, pd_lifetime AS pd FROM scored_events",
    )
    refs = card_references(model.card)
    by_name = {row.name: row for row in populations["as_trained"].result.rows}
    for name, ref in refs.items():
        values = np.array([row[name] for row in table], dtype=np.float64)
        shares, nan_share = metrics.bin_shares(values, list(ref.edges))
        expected = [s * (1.0 - nan_share) for s in shares] + [nan_share]
        assert by_name[name].live_shares == pytest.approx(expected, abs=1e-12), name


# --- The command ---------------------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_drift_command_exit_codes_table_and_report(
    populations: dict[str, Population], trained_home: Path, tmp_path: Path
) -> None:
    # A report is named by its window end and model, so each store gets a directory of its own.
    common = ["--since", "1h", "--home", str(trained_home)]
    code, out = invoke(
        "drift", *common, "--report-dir", str(tmp_path / "a"), "--store",
        populations["as_trained"].url.reveal(),
    )  # fmt: skip
    assert code == 0, out
    assert "ok:" in out and "3,000 scored events" in out
    code, out = invoke(
        "drift", *common, "--report-dir", str(tmp_path / "b"), "--store",
        populations["income_halved"].url.reveal(),
    )  # fmt: skip
    assert code == ALERT_EXIT_CODE, out
    assert "in alert:" in out and "annual_income_log" in out

    recorded = query_rows(
        populations["income_halved"].url,
        "SELECT feature, kind, status, psi, watch_threshold, alert_threshold, live_rows "
        "FROM drift_psi ORDER BY feature",
    )
    assert len(recorded) == len(FEATURE_NAMES) + 2
    income = next(r for r in recorded if r["feature"] == "annual_income_log")
    assert income["status"] == "alert" and income["alert_threshold"] == 0.25
    assert {r["kind"] for r in recorded} == {"feature", "score", "band_mix"}

    reports_json = sorted(tmp_path.glob("*/drift-*.json"))
    assert len(reports_json) == 2
    for path in reports_json:
        report = json.loads(path.read_text())
        assert report["model_version"]
        html = path.with_suffix(".html").read_text()
        assert html.count("<svg") == len(report["results"])
        assert "annual_income_log" in html


def test_drift_command_errors_are_one_line(trained_home: Path, tmp_path: Path) -> None:
    args = ["--home", str(trained_home), "--store", f"chdb://{tmp_path / 'store'}"]
    code, out = invoke("drift", "--since", "1h", "--report-dir", str(tmp_path), *args)
    assert code == 1 and "only 0 scored events" in out, out
    assert out.count("\n") == 1 and "Traceback" not in out
    code, out = invoke("drift", "--since", "5x", *args)
    assert code == 2 and "duration" in out, out
    code, out = invoke("drift", "--since", "1h", "--watch", "0.3", "--alert", "0.2", *args)
    assert code == 2 and "watch < alert" in out, out
