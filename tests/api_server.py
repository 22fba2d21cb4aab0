"""`riskctl serve` as a real process on a free loopback port, and a small HTTP client for it.

The server picks its own port (``--port 0``) and prints it, so no port is guessed and raced
for. Every wait is bounded; :meth:`ApiServer.stop` sends SIGTERM (which flushes the audit
buffer) and kills the process if it has not exited in time.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

TOKEN = "test-token-5be1c0ffee"
_LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ApiServer:
    def __init__(
        self, home: Path, store_url: str, *, env: dict[str, str] | None = None,
        args: tuple[str, ...] = (), start_timeout_s: float = 120.0,
    ) -> None:  # fmt: skip
        self.home = home
        self.store_url = store_url
        self.log_path = home / "serve.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RISKCTL_")}
        self._env = {**clean, "RISKCTL_API_TOKEN": TOKEN, **(env or {})}
        self._args = args
        self._start_timeout = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.stdout = b""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        command = [
            sys.executable, "-m", "cli.main", "serve", "--port", "0", "--home", str(self.home),
            "--store", self.store_url, *self._args,
        ]  # fmt: skip
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, env=self._env, cwd=self.home
        )
        log.close()
        first: list[bytes] = []
        reader = threading.Thread(target=lambda: first.append(self.process.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(self._start_timeout)
        match = _LISTENING.search(first[0]) if first else None
        if match is None:
            self.stop()
            raise RuntimeError(f"riskctl serve did not start: {self.log_path.read_text()[-2000:]}")
        self.stdout = first[0]
        self.port = int(match.group(1))

    def stop(self, timeout_s: float = 60.0) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        assert process.stdout is not None
        self.stdout += process.stdout.read()
        process.stdout.close()
        self.process = None
        return process.returncode

    def logs(self) -> bytes:
        return self.stdout + self.log_path.read_bytes()

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
        connection: http.client.HTTPConnection | None = None,
    ) -> Answer:
        own = connection is None
        conn = connection or self.connection()
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            if own:
                conn.close()

    def decide(self, payload: bytes, **kwargs: Any) -> Answer:
        return self.call("POST", "/v1/decisions", payload, **kwargs)

    def batch(self, payloads: list[bytes], **kwargs: Any) -> Answer:
        body = b'{"applications": [' + b",".join(payloads) + b"]}"
        return self.call("POST", "/v1/decisions:batch", body, **kwargs)

    def wait_for(self, path: str, status: int, timeout_s: float) -> Answer:
        """Poll ``path`` until it answers ``status`` (bounded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self.call("GET", path)
            if answer.status == status or time.monotonic() > deadline:
                return answer
            time.sleep(0.2)

    def metric(self, name: str, labels: str = "") -> float:
        text = self.call("GET", "/metrics").body.decode()
        pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+-]+)"
        found = re.search(pattern, text)
        return float(found.group(1)) if found else 0.0

    def wait_for_metric(self, name: str, timeout_s: float, labels: str = "") -> float:
        """Poll a metric until it is above zero (bounded); its last value."""
        deadline = time.monotonic() + timeout_s
        while (value := self.metric(name, labels)) <= 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        return value
