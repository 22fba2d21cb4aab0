"""``riskctl grafana push`` through grafana-client against a stand-in Grafana on loopback.

No Grafana server runs here, so a small HTTP server implements the few API endpoints the push
uses, with Grafana's own rules: bearer-token auth, dashboards keyed by uid, ``overwrite``
updating in place with a new version and the same id, and 404/412 answers where Grafana
gives them.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from flows.dashboards import DASHBOARDS_DIR, PLUGIN_TYPE, load_dashboards

TOKEN = "glsa_test_token_7f3c"
runner = CliRunner()


@dataclass
class GrafanaState:
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 1


def handler_for(state: GrafanaState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorized(self) -> bool:
            state.requests.append((self.command, self.path))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.reply(401, {"message": "Unauthorized"})
                return False
            return True

        def body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self) -> None:
            if not self.authorized():
                return
            path = self.path.split("?")[0]
            if path == "/api/frontend/settings":
                self.reply(200, {"buildInfo": {"version": "11.3.0", "edition": "Open Source"}})
            elif match := re.fullmatch(r"/api/datasources/uid/([\w-]+)", path):
                found = state.datasources.get(match.group(1))
                if found:
                    self.reply(200, found)
                else:
                    self.reply(404, {"message": "Data source not found"})
            elif match := re.fullmatch(r"/api/folders/([\w-]+)", path):
                found = state.folders.get(match.group(1))
                if found:
                    self.reply(200, found)
                else:
                    self.reply(404, {"message": "folder not found"})
            elif match := re.fullmatch(r"/api/dashboards/uid/([\w-]+)", path):
                found = state.dashboards.get(match.group(1))
                if found is None:
                    self.reply(404, {"message": "Dashboard not found"})
                else:
                    self.reply(200, {"dashboard": found["dashboard"], "meta": found["meta"]})
            else:
                self.reply(404, {"message": "Not found"})

        def do_POST(self) -> None:
            if not self.authorized():
                return
            body = self.body()
            if self.path == "/api/folders":
                uid = body.get("uid") or f"f{len(state.folders)}"
                if uid in state.folders:
                    self.reply(409, {"message": "a folder with the same uid already exists"})
                    return
                state.folders[uid] = {"uid": uid, "title": body["title"], "id": len(state.folders)}
                self.reply(200, state.folders[uid])
            elif self.path == "/api/dashboards/db":
                self.save_dashboard(body)
            else:
                self.reply(404, {"message": "Not found"})

        def save_dashboard(self, body: dict[str, Any]) -> None:
            dashboard = dict(body["dashboard"])
            folder = body.get("folderUid", "")
            if folder and folder not in state.folders:
                self.reply(400, {"message": "folder not found"})
                return
            uid = dashboard["uid"]
            stored = state.dashboards.get(uid)
            if stored is None:
                if dashboard.get("id") is not None:
                    self.reply(404, {"message": "Dashboard not found"})
                    return
                dashboard_id, version = state.next_id, 1
                state.next_id += 1
            else:
                current = stored["dashboard"]
                if not body.get("overwrite") and dashboard.get("version") != current["version"]:
                    self.reply(412, {"status": "version-mismatch", "message": "changed"})
                    return
                dashboard_id, version = current["id"], current["version"] + 1
            dashboard.update(id=dashboard_id, version=version)
            slug = re.sub(r"[^a-z0-9]+", "-", dashboard["title"].lower()).strip("-")
            state.dashboards[uid] = {
                "dashboard": dashboard,
                "meta": {"folderUid": folder, "slug": slug, "url": f"/d/{uid}/{slug}"},
            }
            self.reply(
                200,
                {
                    "id": dashboard_id,
                    "uid": uid,
                    "url": f"/d/{uid}/{slug}",
                    "status": "success",
                    "version": version,
                    "slug": slug,
                },
            )

    return Handler


@pytest.fixture
def grafana() -> Iterator[tuple[str, GrafanaState]]:
    state = GrafanaState()
    state.datasources["riskctl-clickhouse"] = {
        "uid": "riskctl-clickhouse",
        "name": "ClickHouse (riskctl)",
        "type": PLUGIN_TYPE,
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def push(url: str, *extra: str, token: str | None = TOKEN) -> tuple[int, str]:
    args = ["grafana", "push", "--url", url, *extra]
    if token is not None:
        args += ["--token", token]
    result = runner.invoke(app, args, env={"GRAFANA_TOKEN": "", "GRAFANA_URL": ""})
    return result.exit_code, result.output


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert TOKEN not in output
    return lines[0]


def test_push_creates_then_updates_in_place_by_uid(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    code, out = push(url)
    assert code == 0, out
    assert out.count("created ") == 2 and "version 1" in out
    assert f"{url}/d/riskctl-business/" in out
    ids = {uid: d["dashboard"]["id"] for uid, d in state.dashboards.items()}
    assert set(ids) == {"riskctl-business", "riskctl-ops"}

    code, out = push(url)
    assert code == 0, out
    assert out.count("updated ") == 2 and "version 2" in out
    # Same dashboards, same ids, new versions: updated in place, no copies.
    assert {uid: d["dashboard"]["id"] for uid, d in state.dashboards.items()} == ids
    assert {d["dashboard"]["version"] for d in state.dashboards.values()} == {2}
    assert list(state.folders) == ["riskctl"]
    assert state.requests.count(("POST", "/api/folders")) == 1
    assert all(d["meta"]["folderUid"] == "riskctl" for d in state.dashboards.values())
    assert TOKEN not in out

    # What Grafana stores is the repository's dashboard, panel for panel.
    for dashboard in load_dashboards():
        stored = state.dashboards[dashboard.uid]["dashboard"]
        assert stored["panels"] == dashboard.raw["panels"]
        assert stored["title"] == dashboard.title


def test_push_points_the_panels_at_another_datasource(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    state.datasources["ch-prod"] = {"uid": "ch-prod", "name": "prod", "type": PLUGIN_TYPE}
    code, out = push(url, "--datasource-uid", "ch-prod", "--folder", "risk")
    assert code == 0, out
    for stored in state.dashboards.values():
        (variable,) = [
            v for v in stored["dashboard"]["templating"]["list"] if v["type"] == "datasource"
        ]
        assert variable["current"]["value"] == "ch-prod"
        assert stored["meta"]["folderUid"] == "risk"
    assert json.loads((DASHBOARDS_DIR / "ops.json").read_text())["id"] is None


def test_token_can_come_from_the_environment(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    result = runner.invoke(
        app, ["grafana", "push"], env={"GRAFANA_URL": url, "GRAFANA_TOKEN": TOKEN}
    )
    assert result.exit_code == 0, result.output
    assert len(state.dashboards) == 2
    assert TOKEN not in result.output


def test_a_missing_datasource_stops_before_uploading(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    code, out = push(url, "--datasource-uid", "nope")
    assert code == 1
    assert "no datasource with uid 'nope'" in one_error_line(out)
    assert state.dashboards == {} and state.folders == {}


def test_a_datasource_of_another_type_is_refused(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    state.datasources["pg"] = {"uid": "pg", "name": "pg", "type": "postgres"}
    code, out = push(url, "--datasource-uid", "pg")
    assert code == 1
    assert "'postgres', not grafana-clickhouse-datasource" in one_error_line(out)


def test_a_wrong_token_is_one_line_without_the_token(grafana: tuple[str, GrafanaState]) -> None:
    url, state = grafana
    code, out = push(url, token="glsa_wrong_secret")
    assert code == 1
    line = one_error_line(out)
    assert "rejected the credentials (401)" in line and "glsa_wrong_secret" not in out
    assert state.dashboards == {}


def test_unreachable_grafana_is_one_line() -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out = push(f"http://127.0.0.1:{port}", "--timeout", "2")
    assert code == 1
    assert "Grafana at http://127.0.0.1" in one_error_line(out)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--url", "ftp://x"], "--url must be an http(s) URL"),
        (["--url", "http://localhost:3000"], "give --token"),
    ],
)
def test_bad_push_options_are_usage_errors(args: list[str], fragment: str) -> None:
    result = runner.invoke(
        app, ["grafana", "push", *args], env={"GRAFANA_TOKEN": "", "GRAFANA_URL": ""}
    )
    assert result.exit_code == 2
    assert fragment in one_error_line(result.output)
