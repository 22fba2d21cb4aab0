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


def test_bench_probe_times_writes_with_and_without_the_prefilter(trained_home: Path) -> None:
    code, out = invoke(
        "bench", "--probe", "-n", "6000", "--batch-size", "1000", "--home", str(trained_home)
    )
    assert code == 0, out
    number = r"\s*([\d,.]+) │"
    rows = re.findall(r"│\s*([\d,]+) │" + number * 4, out)
    stored = [int(r[0].replace(",", "")) for r in rows]
    # samples from the empty store on, each after more rows, every check and write timed
    assert len(rows) >= 2 and stored[0] == 0 and stored == sorted(set(stored))
    assert all(float(ms.replace(",", "")) > 0 for r in rows for ms in r[1:])
    text = " ".join(out.split())
    found = re.search(r"key set load at 6,000 rows: ([\d.]+) s, ([\d,]+) key hashes", text)
    assert found, out
    # every event's id in raw_events and scored_events
    assert int(found.group(2).replace(",", "")) == 2 * 6000


def test_bench_latency_reports_ordered_percentiles_from_the_ops_rows(
    trained_home: Path, kafka_bootstrap: str
) -> None:
    code, out = invoke(
        "bench", "--latency", "--rate", "400", "--seconds", "2", "--partitions", "2",
        "--brokers", kafka_bootstrap, "--home", str(trained_home),
    )  # fmt: skip
    assert code == 0, out
    text = " ".join(out.split())
    found = re.search(
        r"400 events/s offered for 2 s on Kafka, ([\d,]+) events in ([\d,]+) writes; "
        r"event -> queryable p50 ([\d,]+) ms, p95 ([\d,]+) ms, p99 ([\d,]+) ms",
        text,
    )
    assert found, out
    events, writes, p50, p95, p99 = (int(g.replace(",", "")) for g in found.groups())
    assert events == 800 and 0 < writes <= events
    assert 0 < p50 <= p95 <= p99


def test_bench_latency_refuses_a_rate_of_zero(trained_home: Path) -> None:
    code, out = invoke("bench", "--latency", "--rate", "0", "--home", str(trained_home))
    assert code == 2
    assert_one_line_error(out, "--rate and --seconds must be positive")
