"""One horizon, named (migration 0120): every PD and expected-loss column says whether it is a
lifetime or a 12-month figure, a store migrated before keeps its rows under the new names, and
the latest score per loan, the watchlist and current expected loss are on 12 months."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flows.loan.behaviour import BEHAVIOUR_FEATURE_NAMES
from flows.store import Store, StoreURL, open_store
from flows.store.migrations import MIGRATIONS_DIR, applied, discover, migrate

AT = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
_COMMON = {"band": "high", "grade": "C", "sub_grade": "C2", "addr_state": "TX",
           "exposure": 10_000.0, "lgd": 0.45, "model_version": "v1"}  # fmt: skip


def _twelve_month(pd: float, term: int) -> float:
    """The documented conversion: a constant monthly hazard over the term."""
    return 1.0 - (1.0 - pd) ** (min(12, term) / term)


def _copy_migrations(to: Path, up_to: int) -> Path:
    to.mkdir(exist_ok=True)
    for migration in discover():
        if migration.version <= up_to:
            shutil.copy(migration.path, to / migration.path.name)
    return to


def _columns(store: Store) -> list[tuple[str, str]]:
    rows = store.query_arrow(
        "SELECT table, name FROM system.columns WHERE database = currentDatabase()"
    ).to_pylist()
    return [(r["table"], r["name"]) for r in rows]


def test_a_store_migrated_to_0040_keeps_its_scores_under_the_named_columns(
    tmp_path: Path,
) -> None:
    db = open_store(StoreURL.embedded_at(tmp_path / "store"))
    try:
        migrate(db, _copy_migrations(tmp_path / "old", 40))
        assert max(applied(db)) == 40
        # rows written by the code of that time: `pd` and `expected_loss` on both tables
        db.insert_arrow(
            "scored_events",
            pa.Table.from_pylist(
                [
                    {
                        **_COMMON,
                        "event_id": "a1",
                        "loan_id": "ORIG",
                        "event_time": AT,
                        "pd": 0.30,
                        "expected_loss": 1350.0,
                        "term_months": 36,
                    },
                    {
                        **_COMMON,
                        "event_id": "a2",
                        "loan_id": "LIVE",
                        "event_time": AT,
                        "pd": 0.20,
                        "expected_loss": 900.0,
                        "term_months": 60,
                    },
                ]
            ),
        )
        db.insert_arrow(
            "repayment_scores",
            pa.Table.from_pylist(
                [
                    {
                        **_COMMON,
                        "event_id": "r1",
                        "loan_id": "LIVE",
                        "installment_number": 1,
                        "event_time": AT + timedelta(days=30),
                        "pd": 0.05,
                        "expected_loss": 225.0,
                        "origination_pd": 0.20,
                        "term_months": 60,
                    }
                ]
            ),
        )
        before = db.query_arrow("SELECT loan_id, pd FROM watchlist ORDER BY loan_id").to_pylist()
        # the mixed horizons the migration removes: ORIG shows its lifetime PD
        assert before == [{"loan_id": "LIVE", "pd": 0.05}, {"loan_id": "ORIG", "pd": 0.30}]

        assert [m.version for m in migrate(db)] == [m.version for m in discover() if m.version > 40]
        assert migrate(db) == []

        scored = db.query_arrow(
            "SELECT loan_id, pd_lifetime, pd_12m, expected_loss_lifetime, expected_loss_12m"
            " FROM scored_events ORDER BY loan_id"
        ).to_pylist()
        orig_12m, live_12m = _twelve_month(0.30, 36), _twelve_month(0.20, 60)
        assert [r["pd_lifetime"] for r in scored] == [0.20, 0.30]
        assert [r["expected_loss_lifetime"] for r in scored] == [900.0, 1350.0]
        assert [r["pd_12m"] for r in scored] == pytest.approx([live_12m, orig_12m], rel=1e-12)
        assert [r["expected_loss_12m"] for r in scored] == pytest.approx(
            [live_12m * 4500.0, orig_12m * 4500.0], rel=1e-12
        )
        [live] = db.query_arrow(
            "SELECT pd_12m, expected_loss_12m, origination_pd_lifetime FROM repayment_scores"
        ).to_pylist()
        assert live == {"pd_12m": 0.05, "expected_loss_12m": 225.0,
                        "origination_pd_lifetime": 0.20}  # fmt: skip
        # the application aggregates keep what they summed, under lifetime names
        [sums] = db.query_arrow(
            "SELECT sum(pd_lifetime_sum) AS pd, sum(expected_loss_lifetime) AS el,"
            " sum(loans) AS loans FROM risk_segment_minute"
        ).to_pylist()
        assert sums == {"pd": pytest.approx(0.5), "el": pytest.approx(2250.0), "loans": 2}

        # the latest score per loan is rebuilt on 12 months
        watch = db.query_arrow("SELECT loan_id, pd_12m FROM watchlist").to_pylist()
        assert watch == [{"loan_id": "ORIG", "pd_12m": pytest.approx(orig_12m)},
                         {"loan_id": "LIVE", "pd_12m": 0.05}]  # fmt: skip
        [current] = db.query_arrow(
            "SELECT sum(expected_loss_12m) AS el, sum(loans) AS loans FROM expected_loss_current"
        ).to_pylist()
        assert current == {"el": pytest.approx(orig_12m * 4500.0 + 225.0), "loans": 2}

        # and new scores flow through the recreated materialized views
        db.insert_arrow(
            "scored_events",
            pa.Table.from_pylist(
                [
                    {
                        **_COMMON,
                        "event_id": "a3",
                        "loan_id": "NEW",
                        "event_time": AT,
                        "pd_lifetime": 0.60,
                        "expected_loss_lifetime": 2700.0,
                        "term_months": 36,
                    }
                ]
            ),
        )
        [new] = db.query_arrow(
            "SELECT pd_12m, expected_loss_12m FROM watchlist WHERE loan_id = 'NEW'"
        ).to_pylist()
        assert new["pd_12m"] == pytest.approx(_twelve_month(0.60, 36))
        assert new["expected_loss_12m"] == pytest.approx(_twelve_month(0.60, 36) * 4500.0)
    finally:
        db.close()


# Behavioural features are model inputs, named once in flows/loan/behaviour.py: the logit of the
# lifetime origination PD is one of them.
_FEATURES = set(BEHAVIOUR_FEATURE_NAMES)
_PD_OR_EL = re.compile(r"(^|_)pd($|_)|expected_loss|(^|_)el($|_)")
_HORIZON = re.compile(r"lifetime|12m")


def test_every_pd_and_expected_loss_column_names_its_horizon(store: Store) -> None:
    unnamed = [
        (table, name)
        for table, name in _columns(store)
        if _PD_OR_EL.search(name) and not _HORIZON.search(name) and name not in _FEATURES
    ]
    assert unnamed == []
    # the check sees what it is meant to: the migrated store has PD columns of both horizons
    names = {name for _, name in _columns(store)}
    assert {"pd_lifetime", "pd_12m", "expected_loss_12m", "origination_pd_lifetime"} <= names


@pytest.mark.parametrize("term", [6, 12, 36, 60])
def test_the_12_month_pd_is_the_documented_conversion(store: Store, term: int) -> None:
    pds = np.concatenate([[0.0, 1e-9, 0.5, 1.0 - 1e-9, 1.0], np.linspace(0.001, 0.999, 97)])
    store.insert_arrow(
        "scored_events",
        pa.table(
            {
                "event_id": [f"e{i}" for i in range(len(pds))],
                "loan_id": [f"L{i}" for i in range(len(pds))],
                "event_time": pa.array([AT] * len(pds), pa.timestamp("ms", "UTC")),
                "pd_lifetime": pds,
                "term_months": pa.array([term] * len(pds), pa.uint8()),
                "exposure": np.full(len(pds), 1000.0),
                "lgd": np.full(len(pds), 0.45),
            }
        ),
    )
    got = store.query_arrow(
        "SELECT pd_lifetime, pd_12m, expected_loss_12m FROM scored_events ORDER BY pd_lifetime"
    ).to_pydict()
    want = [_twelve_month(p, term) for p in got["pd_lifetime"]]
    np.testing.assert_allclose(got["pd_12m"], want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got["expected_loss_12m"], np.array(want) * 450.0, rtol=1e-12)
    twelve = np.array(got["pd_12m"])
    lifetime = np.array(got["pd_lifetime"])
    # a probability, never above the lifetime one, and ordered as the lifetime PDs are
    assert ((twelve >= 0) & (twelve <= lifetime + 1e-15)).all()
    assert (np.diff(twelve) >= 0).all()
    if term <= 12:
        np.testing.assert_allclose(twelve, lifetime, rtol=0, atol=1e-15)


def test_the_migration_is_in_the_package_directory() -> None:
    assert (MIGRATIONS_DIR / "0120_pd_horizons.sql").is_file()
