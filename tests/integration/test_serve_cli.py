"""`riskctl serve` and `riskctl bench --api` refuse what they cannot use with one error line."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.integration.test_cli import assert_one_line_error, invoke
from tests.services import free_port


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKCTL_API_TOKEN", "cli-test-token")


def test_serve_needs_a_token(monkeypatch: pytest.MonkeyPatch, trained_home: Path) -> None:
    monkeypatch.delenv("RISKCTL_API_TOKEN")
    code, out = invoke("serve", "--home", str(trained_home))
    assert code == 2
    assert_one_line_error(out, "RISKCTL_API_TOKEN")


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("policy.toml", "approve_below = ", "does not parse"),
        ("policy.toml", 'version = "v"\napprove_below = 0.5\ndecline_from = 0.1\n', "must not"),
        ("policy.ini", "", ".toml or .json"),
    ],
)
def test_serve_refuses_a_bad_policy(
    tmp_path: Path, trained_home: Path, name: str, text: str, fragment: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    code, out = invoke("serve", "--home", str(trained_home), "--policy", str(path))
    assert code == 2
    assert_one_line_error(out, fragment)


def test_serve_without_a_model_says_to_train(tmp_path: Path) -> None:
    code, out = invoke("serve", "--home", str(tmp_path / "empty"))
    assert code == 2
    assert_one_line_error(out, "riskctl train")


def test_serve_on_a_port_in_use_is_one_line(trained_home: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = invoke(
            "serve", "--home", str(trained_home), "--store", f"chdb://{tmp_path / 's'}",
            "--port", str(port),
        )  # fmt: skip
    assert code == 2
    assert_one_line_error(out, f"cannot listen on 127.0.0.1:{port}")


def test_a_bad_port_setting_is_one_line(
    monkeypatch: pytest.MonkeyPatch, trained_home: Path
) -> None:
    monkeypatch.setenv("RISKCTL_API_PORT", "eighty")
    code, out = invoke("serve", "--home", str(trained_home))
    assert code == 2
    assert_one_line_error(out, "RISKCTL_API_PORT")


def test_bench_api_needs_the_token_and_a_service(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, out = invoke("bench", "--api", "--url", url)
    assert code == 1
    assert_one_line_error(out, f"no decision service answers at {url}")
    monkeypatch.delenv("RISKCTL_API_TOKEN")
    code, out = invoke("bench", "--api", "--url", url)
    assert code == 2
    assert_one_line_error(out, "RISKCTL_API_TOKEN")
