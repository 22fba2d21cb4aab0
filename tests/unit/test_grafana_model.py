"""The dashboards follow grafana-clickhouse-datasource's query model: its QueryType values,
the format number that goes with each, and the pinned plugin release on every query; the
project's validator refuses anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.dashboards import (
    DASHBOARDS_DIR,
    PLUGIN_VERSION,
    QUERY_TYPES,
    DashboardError,
    load_dashboard,
    load_dashboards,
)

# From the plugin's source (src/types/queryBuilder.ts QueryType and the format map it sends).
PLUGIN_QUERY_TYPES = {"table": 1, "logs": 2, "timeseries": 0, "traces": 3}
TARGETS = [
    (d.uid, p["title"], t)
    for d in load_dashboards()
    for p in d.raw["panels"]
    if p.get("type") != "row"
    for t in p["targets"]
]


@pytest.mark.parametrize(
    ("uid", "title", "target"), TARGETS, ids=[f"{u}:{t}" for u, t, _ in TARGETS]
)
def test_every_query_uses_the_plugins_query_model(uid: str, title: str, target: dict) -> None:
    assert target["queryType"] in PLUGIN_QUERY_TYPES, (uid, title)
    assert PLUGIN_QUERY_TYPES[target["queryType"]] == target["format"], (uid, title)
    assert target["pluginVersion"] == PLUGIN_VERSION
    assert target["editorType"] == "sql"


def test_the_validator_knows_the_plugins_values() -> None:
    assert {fmt: PLUGIN_QUERY_TYPES[kind] for fmt, kind in QUERY_TYPES.items()} == {
        fmt: fmt for fmt in QUERY_TYPES
    }


def _broken(tmp_path: Path, change: str) -> Path:
    raw = json.loads((DASHBOARDS_DIR / "ops.json").read_text())
    target = next(p for p in raw["panels"] if p["type"] == "timeseries")["targets"][0]
    if change == "camel-case":
        target["queryType"] = "timeSeries"
    elif change == "no-version":
        del target["pluginVersion"]
    else:
        target["pluginVersion"] = "4.14.1"
    path = tmp_path / "ops.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("camel-case", "queryType must be 'timeseries'"),
        ("no-version", "pluginVersion must be"),
        ("other-version", "pluginVersion must be"),
    ],
)
def test_the_validator_refuses_queries_outside_the_model(
    tmp_path: Path, change: str, message: str
) -> None:
    with pytest.raises(DashboardError, match=message):
        load_dashboard(_broken(tmp_path, change))
