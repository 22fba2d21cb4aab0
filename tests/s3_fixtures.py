"""S3 for the archive tests: moto's server, a real HTTP S3 endpoint on loopback.

CI starts one server for the whole run and exports S3_ENDPOINT_URL (with AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and AWS_DEFAULT_REGION); without it the session starts its own on a
free port. Every test asks for a bucket of its own, so tests never see each other's objects.
"""

from __future__ import annotations

import http.client
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from moto.server import ThreadedMotoServer

from flows.archive import make_client
from flows.settings import S3Settings


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    configured = os.environ.get("S3_ENDPOINT_URL")
    if configured:
        yield configured
        return
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_settings(s3_endpoint: str) -> S3Settings:
    return S3Settings(
        endpoint_url=s3_endpoint,
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )


class FlakyProxy(ThreadingHTTPServer):
    """A loopback HTTP proxy in front of the S3 endpoint that answers the first ``fail_puts``
    PUT requests with 503 SlowDown, as S3 does under load, and forwards everything else."""

    def __init__(self, upstream: str, fail_puts: int) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.failures_left = fail_puts
        self.failed = 0
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FlakyProxy

    def log_message(self, format: str, *args: object) -> None:
        pass  # the test output is no place for an access log

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():
                pass  # trailers
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

    def _forward(self) -> None:
        body = self._body()
        if self.command == "PUT" and self.server.failures_left > 0:
            self.server.failures_left -= 1
            self.server.failed += 1
            error = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                b"<Message>Please reduce your request rate.</Message></Error>"
            )
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(error)))
            self.end_headers()
            self.wfile.write(error)
            return
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("transfer-encoding", "expect")
        }
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length", "date"):
                self.send_header(key, value)
        # A HEAD answer carries the object's length without its body.
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward


@pytest.fixture(scope="session")
def new_bucket(s3_settings: S3Settings) -> Callable[[], str]:
    """Create an empty bucket with a unique name and return the name."""
    client = make_client(s3_settings)

    def create() -> str:
        name = f"riskctl-test-{uuid.uuid4().hex[:16]}"
        client.create_bucket(Bucket=name)
        return name

    return create
