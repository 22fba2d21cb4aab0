"""The chaos run (tests/chaos.py) at a size that fits the suite: three SIGKILLs and a SIGTERM at
random points, then a run to the end, on Kafka with recovery and on files without; every table,
view and per-loan month state equals an undisturbed run's. The large run is a command."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.settings import Settings
from tests.chaos import chaos


@pytest.mark.slow
@pytest.mark.parametrize("source", ["file", "kafka"])
def test_kills_and_a_stop_at_random_points_end_equal_to_an_undisturbed_run(
    source: str,
    behaviour_model_home: Path,
    kafka_settings: Settings,
    tmp_path: Path,
) -> None:
    report = chaos(
        source,
        loans=300,
        seed=11,
        home=behaviour_model_home,
        workdir=tmp_path / "chaos",
        brokers=kafka_settings.kafka.brokers,
        max_batches=6,
        batch_size=200,
    )
    assert [d.signal for d in report.disturbances].count("SIGKILL") == 3
    assert all(d.landed for d in report.disturbances), report.disturbances
    assert report.mismatches == []
    assert report.compared["loan_month_end"] > 3000
    assert report.compared["repayment_scores"] > 3000
