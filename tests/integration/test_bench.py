"""``riskctl bench`` runs every measurement it reports, on real loans, embedded and on Kafka.

The figures themselves are machine-dependent and are not asserted; that each line is there,
counts every event and reports a positive rate is.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.test_cli import assert_one_line_error, invoke

EVENTS = 2000


def end_to_end_lines(output: str) -> dict[str, tuple[float, int]]:
    """``{label: (events/s, events)}`` for each end-to-end line of the output."""
    text = " ".join(output.split())  # the console wraps long lines
    found = re.findall(r"((?:mixed )?end-to-end)[^:]*: ([\d,]+) events/s \(([\d,]+) events", text)
    return {
        label: (float(rate.replace(",", "")), int(n.replace(",", ""))) for label, rate, n in found
    }


def test_bench_measures_every_stage_and_both_streams(behaviour_model_home: Path) -> None:
    code, out = invoke("bench", "-n", str(EVENTS), "--home", str(behaviour_model_home))
    assert code == 0, out
    for stage in ("parse + validate", "features", "ONNX PD", "batch scoring", "store write"):
        assert stage in out
    lines = end_to_end_lines(out)
    assert set(lines) == {"end-to-end", "mixed end-to-end"}
    for rate, events in lines.values():
        assert rate > 0 and events == EVENTS


def test_bench_kafka_measures_both_streams_from_filled_topics(
    behaviour_model_home: Path, kafka_bootstrap: str
) -> None:
    code, out = invoke(
        "bench", "--kafka", "--brokers", kafka_bootstrap, "--partitions", "2",
        "-n", str(EVENTS), "--home", str(behaviour_model_home),
    )  # fmt: skip
    assert code == 0, out
    assert "bare confluent-kafka consumer" in out and "produce" in out
    lines = end_to_end_lines(out)
    assert set(lines) == {"end-to-end", "mixed end-to-end"}
    for rate, events in lines.values():
        assert rate > 0 and events == EVENTS


def test_bench_refuses_too_few_events(behaviour_model_home: Path) -> None:
    code, out = invoke("bench", "-n", "10", "--home", str(behaviour_model_home))
    assert code != 0
    assert_one_line_error(out, "at least 1000")
