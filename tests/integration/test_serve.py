"""`riskctl serve` as a real process on loopback, called over HTTP: valid and invalid
applications (every dead-letter reason), oversized, unauthenticated, idempotent retries,
batches, a model swapped mid-load and a store that is away for a while."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.events import LoanApplication
from flows.model import ScoringModel
from flows.scoring import feature_matrix
from flows.store import open_store, parse_store_url
from flows.validation import REASONS, decode_application
from tests.api_server import TOKEN, ApiServer
from training.dataset import LendingClub
from training.registry import set_current
from training.replay import ReplayPlan, application_events

pytestmark = pytest.mark.slow


def _home(source: Path, target: Path) -> Path:
    """A home of the test's own with a copy of the session's trained models."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "models", target / "models")
    return target


@pytest.fixture(scope="module")
def events(lending_club: LendingClub) -> list[bytes]:
    return list(application_events(lending_club, ReplayPlan(max_events=1200, seed=11)))


@pytest.fixture(scope="module")
def server(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    home = _home(trained_home, tmp_path_factory.mktemp("serve-home"))
    with ApiServer(home, f"chdb://{home / 'store'}") as running:
        yield running


def _event(events: list[bytes], i: int = 0, **changes: object) -> bytes:
    document = json.loads(events[i])
    for key, value in changes.items():
        if value is _DROP:
            document.pop(key)
        else:
            document[key] = value
    return json.dumps(document).encode()


_DROP = object()


def test_a_valid_application_gets_a_decision_scored_like_the_stream(
    server: ApiServer, events: list[bytes], model: ScoringModel
) -> None:
    apps = [decode_application(e, "t", 1 << 20) for e in events[:20]]
    expected = model.predict_pd(feature_matrix(apps))  # type: ignore[arg-type]
    for app, payload, pd in zip(apps, events[:20], expected, strict=True):
        answer = server.decide(payload)
        assert answer.status == 200, answer.body
        body = answer.json()
        assert isinstance(app, LoanApplication)
        assert body["loan_id"] == app.loan_id and body["event_id"] == app.event_id
        assert body["pd_lifetime"] == pytest.approx(float(pd), abs=1e-12)
        assert body["outcome"] in ("approve", "refer", "decline")
        assert body["model_version"] == model.version == answer.headers["x-model-version"]
        assert body["policy_version"] == "default-1"
        assert len(body["decision_id"]) == 32
        assert all(r["code"] and r["text"] for r in body["reasons"])
        fired = {r["name"] for r in body["rules_fired"]}
        # the outcome is the worst of what fired, and approve means nothing fired
        outcomes = {r["outcome"] for r in body["rules_fired"]}
        assert (body["outcome"] == "approve") == (not fired)
        if fired:
            assert body["outcome"] == ("decline" if "decline" in outcomes else "refer")


def _deep(events: list[bytes]) -> bytes:
    document = json.loads(events[0])
    nested: object = 1
    for _ in range(40):
        nested = [nested]
    document["revol_util"] = nested
    return json.dumps(document).encode()


def _invalid_cases(events: list[bytes]) -> dict[str, bytes]:
    return {
        "oversized": _event(events, borrower_id="b" * 64, padding="x" * 20_000),
        "invalid_utf8": events[0].replace(b'"loan_application"', b'"loan_\xff"'),
        "malformed_json": events[0][:-3],
        "not_an_object": b"[" + events[0] + b"]",
        "missing_field": _event(events, loan_id=_DROP),
        "wrong_type": _event(events, funded_amnt="lots"),
        "out_of_range": _event(events, funded_amnt=-5),
        "unknown_category": _event(events, addr_state="XX"),
        "invalid_value": _event(events, event_id="has spaces"),
        "unknown_event_type": _event(events, event_type="loan_closure"),
        "too_deep": _deep(events),
    }


def test_every_dead_letter_reason_is_a_problem_answer(
    server: ApiServer, events: list[bytes]
) -> None:
    cases = _invalid_cases(events)
    assert set(cases) == set(REASONS)  # a new reason needs a case here
    for reason, payload in cases.items():
        answer = server.decide(payload)
        assert answer.status == (413 if reason == "oversized" else 422), (reason, answer.body)
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["reason"] == reason
        assert problem["status"] == answer.status
        assert problem["type"].endswith(f"/problems/{reason}") and problem["detail"]


def test_a_huge_body_is_refused_before_it_is_read_whole(server: ApiServer) -> None:
    answer = server.decide(b"{" + b" " * (4 << 20) + b"}")
    assert answer.status == 413 and answer.json()["reason"] == "oversized"


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_bad_input_is_never_a_server_error(
    server: ApiServer, events: list[bytes], data: st.DataObject
) -> None:
    document = json.loads(events[data.draw(st.integers(0, 50))])
    field = data.draw(st.sampled_from(sorted(document)))
    document[field] = data.draw(
        st.one_of(
            st.none(), st.booleans(), st.integers(-(2**70), 2**70),
            st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=80),
            st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                 st.integers(), max_size=2),
        )
    )  # fmt: skip
    payload = json.dumps(document).encode()
    cut = data.draw(st.integers(0, len(payload)))
    if data.draw(st.booleans()):
        payload = payload[:cut]
    answer = server.decide(payload)
    assert answer.status in (200, 413, 422), answer.body
    if answer.status != 200:
        assert answer.json()["reason"] in REASONS


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"X-API-Key": "wrong"},
    ],
)
def test_a_request_without_the_token_is_refused(
    server: ApiServer, events: list[bytes], headers: dict[str, str]
) -> None:
    for method, path, body in (
        ("POST", "/v1/decisions", events[0]),
        ("POST", "/v1/decisions:batch", b'{"applications": []}'),
        ("GET", "/v1/models/current", None),
    ):
        answer = server.call(method, path, body, token=None, headers=headers)
        assert answer.status == 401, (path, headers)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["reason"] == "unauthenticated"


def test_the_api_key_header_is_accepted(server: ApiServer, events: list[bytes]) -> None:
    answer = server.decide(events[1], token=None, headers={"X-API-Key": TOKEN})
    assert answer.status == 200


def test_a_retry_with_the_same_idempotency_key_gets_the_same_decision(
    server: ApiServer, events: list[bytes]
) -> None:
    key = {"Idempotency-Key": "order-77-attempt"}
    first = server.decide(events[2], headers=key)
    again = server.decide(events[2], headers=key)
    assert first.status == again.status == 200
    assert again.body == first.body
    assert again.headers["idempotent-replayed"] == "true"
    other = server.decide(events[3], headers=key)
    assert other.status == 422 and other.json()["reason"] == "idempotency_key_reused"
    fresh = server.decide(events[2], headers={"Idempotency-Key": "order-78"})
    assert fresh.json()["decision_id"] != first.json()["decision_id"]


def test_a_batch_of_a_thousand_is_decided_in_order_like_single_calls(
    server: ApiServer, events: list[bytes]
) -> None:
    answer = server.batch(events[:1000])
    assert answer.status == 200, answer.body[:500]
    body = answer.json()
    decisions = body["decisions"]
    assert [d["event_id"] for d in decisions] == [json.loads(e)["event_id"] for e in events[:1000]]
    assert len({d["decision_id"] for d in decisions}) == 1000
    for i in (0, 499, 999):
        single = server.decide(events[i]).json()
        keys = ("pd_lifetime", "outcome", "rules_fired", "reasons")
        assert [single[k] for k in keys] == [decisions[i][k] for k in keys]
    outcomes = {d["outcome"] for d in decisions}
    assert outcomes == {"approve", "refer", "decline"}  # the real loans span the policy


def test_a_bad_batch_names_every_bad_application_and_decides_none(
    server: ApiServer, events: list[bytes]
) -> None:
    before = _decided(server)
    bad = [
        events[0], _event(events, 1, funded_amnt=-1), events[2], _event(events, 3, term_months=7)
    ]
    answer = server.batch(bad)
    assert answer.status == 422
    problem = answer.json()
    assert [(e["index"], e["reason"]) for e in problem["errors"]] == [
        (1, "out_of_range"), (3, "unknown_category"),
    ]  # fmt: skip
    too_many = server.batch(events[:1] * 1001)
    assert too_many.status == 413 and too_many.json()["reason"] == "batch_too_large"
    for body, reason in (
        (b'{"applications": []}', "empty_batch"),
        (b"[1]", "wrong_type"),
        (b'{"applications": [1', "malformed_json"),
        (b'{"apps": []}', "missing_field"),
        (b'{"applications": ["\xff"]}', "invalid_utf8"),
    ):
        refused = server.call("POST", "/v1/decisions:batch", body)
        assert refused.status == 422 and refused.json()["reason"] == reason, body
    assert _decided(server) == before  # nothing was decided, so nothing recorded


def _decided(server: ApiServer) -> float:
    return sum(
        server.metric("riskctl_api_decisions_total", f'outcome="{outcome}"')
        for outcome in ("approve", "refer", "decline")
    )


def test_health_model_metrics_and_openapi(server: ApiServer, model: ScoringModel) -> None:
    assert server.call("GET", "/healthz", token=None).status == 200
    assert server.call("GET", "/readyz", token=None).body == b"ready\n"
    current = server.call("GET", "/v1/models/current").json()
    assert current["version"] == model.version and current["kind"] == "applicant"
    metrics = server.call("GET", "/metrics", token=None).body.decode()
    assert f'riskctl_api_model_info{{kind="applicant",version="{model.version}"}} 1.0' in metrics
    assert 'riskctl_api_requests_total{route="decisions",status="200"}' in metrics
    assert "riskctl_api_request_seconds_bucket" in metrics
    assert server.metric("riskctl_api_decisions_total", 'outcome="decline"') > 0
    spec = server.call("GET", "/openapi.json", token=None).json()
    assert {"/v1/decisions", "/v1/decisions:batch", "/v1/models/current"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["LoanApplication"]["required"][:3] == ["schema_version", "event_type",
                                                          "event_id"]  # fmt: skip
    assert "outcome" in schemas["DecisionAnswer"]["properties"]
    assert b"/v1/decisions:batch" in server.call("GET", "/docs", token=None).body
    missing = server.call("GET", "/v2/nothing")
    assert missing.status == 404 and missing.json()["reason"] == "not_found"


def test_the_token_is_never_logged(server: ApiServer, events: list[bytes]) -> None:
    server.decide(events[0], token="not-the-token")
    assert TOKEN.encode() not in server.logs()


def _publish_copy(models: Path, version: str, new_version: str) -> None:
    """A second model version: the same trained graph under a new version name."""
    target = models / new_version
    shutil.copytree(models / version, target)
    card = json.loads((target / "card.json").read_text())
    card["version"] = new_version
    (target / "card.json").write_text(json.dumps(card))


def test_a_new_model_is_picked_up_mid_load_without_a_failed_request(
    trained_home: Path, tmp_path: Path, events: list[bytes], model: ScoringModel
) -> None:
    home = _home(trained_home, tmp_path / "home")
    new_version = f"{model.version}-next"
    seen: list[list[str]] = [[] for _ in range(3)]
    failures: list[object] = []
    swapped = threading.Event()
    with ApiServer(home, f"chdb://{home / 'store'}",
                   env={"RISKCTL_API_RELOAD_INTERVAL_S": "0.2"}) as server:  # fmt: skip

        def load(n: int) -> None:
            conn = server.connection()
            deadline = time.monotonic() + 90
            # until some requests after the swap, bounded in count and time
            for i in range(5000):
                answer = server.decide(events[(n * 97 + i) % len(events)], connection=conn)
                if answer.status != 200:
                    failures.append((answer.status, answer.body))
                    return
                seen[n].append(answer.json()["model_version"])
                if (swapped.is_set() and seen[n].count(new_version) >= 50) or (
                    time.monotonic() > deadline
                ):
                    return
            conn.close()

        threads = [threading.Thread(target=load, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        _publish_copy(home / "models", model.version, new_version)
        set_current(home / "models", new_version, "applicant")
        swapped.set()
        for thread in threads:
            thread.join(120)
        current = server.call("GET", "/v1/models/current").json()["version"]
    assert not failures
    assert current == new_version
    for versions in seen:
        assert versions[0] == model.version and versions[-1] == new_version
        # once a client saw the new model it never got the old one again
        first_new = versions.index(new_version)
        assert set(versions[first_new:]) == {new_version}


_HOLD = """
import sys
from flows.store import open_store, parse_store_url
store = open_store(parse_store_url(sys.argv[1]))
print("held", flush=True)
sys.stdin.readline()
store.close()
"""


def test_decisions_made_while_the_store_is_away_are_all_stored_later(
    trained_home: Path, tmp_path: Path, events: list[bytes]
) -> None:
    home = _home(trained_home, tmp_path / "home")
    url = f"chdb://{tmp_path / 'store'}"
    # The embedded store belongs to one process at a time: while this one holds it, the
    # service cannot open it, as it could not reach a server that is down.
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with ApiServer(home, url, env={"RISKCTL_API_AUDIT_BUFFER": "1000"}) as server:
            answered = [server.decide(e).json()["decision_id"] for e in events[:10]]
            batch = server.batch(events[10:1000])
            assert batch.status == 200
            answered += [d["decision_id"] for d in batch.json()["decisions"]]
            assert server.metric("riskctl_api_audit_pending") == 1000
            assert server.wait_for_metric("riskctl_api_audit_failures", 30) > 0
            # the buffer is full: not ready, and no decision that could not be recorded
            ready = server.call("GET", "/readyz")
            assert ready.status == 503 and b"audit buffer full" in ready.body
            refused = server.decide(events[1000])
            assert refused.status == 503 and refused.json()["reason"] == "audit_buffer_full"
            holder.stdin.write(b"release\n")  # type: ignore[union-attr]
            holder.stdin.flush()  # type: ignore[union-attr]
            holder.wait(30)
            assert server.wait_for("/readyz", 200, timeout_s=60).status == 200
            later = server.decide(events[1001])
            assert later.status == 200
            answered.append(later.json()["decision_id"])
            code = server.stop()
        # uvicorn re-raises the SIGTERM it handled once shut down, as a daemon should
        assert code in (0, -signal.SIGTERM)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
    store = open_store(parse_store_url(url))
    try:
        rows = store.query_arrow(
            "SELECT decision_id, request, response FROM decisions FINAL"
        ).to_pylist()
    finally:
        store.close()
    assert sorted(r["decision_id"] for r in rows) == sorted(answered)
    by_id = {r["decision_id"]: r for r in rows}
    first = by_id[answered[0]]
    assert first["request"].encode() == events[0]
    assert json.loads(first["response"])["decision_id"] == answered[0]
    assert np.isfinite([json.loads(r["response"])["pd_lifetime"] for r in rows]).all()


def test_bench_api_drives_the_service_and_reports_every_load(
    server: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_cli import invoke

    monkeypatch.setenv("RISKCTL_API_TOKEN", TOKEN)
    before = _decided(server)
    code, out = invoke(
        "bench", "--api", "--url", f"http://127.0.0.1:{server.port}", "--rate", "50",
        "--duration", "1", "--api-batch", "100", "--clients", "1",
    )  # fmt: skip
    assert code == 0, out
    text = " ".join(out.split())
    assert "single at 50/s" in text and "batch of 100" in text
    # the warm-up (1 s at 50/s) and the single run (50) and at least one batch were decided
    assert _decided(server) >= before + 50 + 50 + 100
