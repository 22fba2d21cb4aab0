"""The ASGI app of `riskctl serve` (Starlette): routes, authentication, problem details,
idempotent retries, metrics, the audit writer and the model reload loop, wired together.

Scoring runs on the event loop itself: one decision is ~0.1 ms of CPU, less than handing it to
a thread would cost, and ONNX Runtime is single-threaded here (workers scale by process).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NoReturn, cast

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from flows.api.audit import AuditRow, AuditWriter
from flows.api.decisions import BatchTooLarge, Decider, split_batch, validate
from flows.api.idempotency import IdempotencyStore, Kept
from flows.api.metrics import Metrics
from flows.api.reload import Loaded, ModelHolder
from flows.api.schema import (
    BatchAnswer,
    DecisionAnswer,
    ItemProblem,
    ModelAnswer,
    Problem,
    openapi,
)
from flows.api.settings import ApiSettings
from flows.errors import RiskctlError
from flows.events import LoanApplication

log = logging.getLogger("riskctl.api")

Handler = Callable[[Request], Awaitable[Response]]

_JSON = "application/json"
_PROBLEM = "application/problem+json"
_ENCODER = msgspec.json.Encoder()
# Room for the batch envelope around max_batch applications of the largest allowed size.
_ENVELOPE_BYTES = 64 * 1024
_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    404: "Not found",
    405: "Method not allowed",
    413: "Content too large",
    422: "Invalid application",
    500: "Internal error",
    503: "Service unavailable",
}


class _Refused(Exception):
    """Ends a request with a problem-details answer."""

    def __init__(self, status: int, reason: str, detail: str, errors: list[ItemProblem]) -> None:
        self.problem = Problem(
            type=f"https://riskctl.dev/problems/{reason}",
            title=_TITLES.get(status, "Error"),
            status=status,
            detail=detail,
            reason=reason,
            errors=errors,
        )


def refuse(
    status: int, reason: str, detail: str, errors: list[ItemProblem] | None = None
) -> NoReturn:
    raise _Refused(status, reason, detail, errors or [])


def problem_response(problem: Problem) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return Response(
        _ENCODER.encode(problem), problem.status, headers=headers, media_type=_PROBLEM
    )


def _invalid(problems: list[ItemProblem], batch: bool) -> NoReturn:
    """422 with every problem (413 when the only trouble is size), reasons as dead letters'."""
    status = 413 if all(p.reason == "oversized" for p in problems) else 422
    first = problems[0]
    where = f"application {first.index}: " if batch and first.index >= 0 else ""
    refuse(status, first.reason, where + first.detail, problems if batch else None)


class DecisionApp:
    """State shared by the routes of one app."""

    def __init__(
        self,
        *,
        decider: Decider,
        holder: ModelHolder,
        audit: AuditWriter,
        api: ApiSettings,
        max_payload_bytes: int,
        version: str,
    ) -> None:
        self.decider = decider
        self.holder = holder
        self.audit = audit
        self.api = api
        self.max_bytes = max_payload_bytes
        self.metrics = Metrics()
        self.idempotency = IdempotencyStore(api.idempotency_keys)
        self.version = version
        self._token = api.token.reveal().encode()
        self.openapi = _ENCODER.encode(openapi(version))
        self.docs = _docs_page(openapi(version))
        if holder.current is not None:
            self.metrics.set_model(holder.current.model.version, holder.current.model.kind)

    # --- plumbing -------------------------------------------------------------------------

    def observed(self, route: str, handler: Handler) -> Handler:
        requests, latency = self.metrics.requests, self.metrics.latency.labels(route)

        async def run(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except _Refused as refused:
                response = problem_response(refused.problem)
            latency.observe(time.perf_counter() - started)
            requests.labels(route, str(response.status_code)).inc()
            return response

        return run

    def authenticate(self, request: Request) -> None:
        headers = request.headers
        given = headers.get("x-api-key")
        if given is None:
            scheme, _, credentials = headers.get("authorization", "").partition(" ")
            given = credentials.strip() if scheme.lower() == "bearer" else None
        if given is None or not hmac.compare_digest(given.encode(), self._token):
            refuse(401, "unauthenticated", "send the API token as `Authorization: Bearer TOKEN`")

    async def body(self, request: Request, limit: int) -> bytes:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            refuse(413, "oversized", f"payload of {length} bytes exceeds {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                refuse(413, "oversized", f"payload of more than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def model(self) -> Loaded:
        loaded = self.holder.current
        if loaded is None:
            refuse(503, "no_model", "no model is loaded yet")
        return loaded

    def replayed(self, request: Request, body: bytes) -> Response | None:
        key = request.headers.get("idempotency-key")
        if key is None:
            return None
        kept = self.idempotency.get(key)
        if kept is None:
            return None
        if kept.body_sha256 != IdempotencyStore.digest(body):
            refuse(422, "idempotency_key_reused", "this Idempotency-Key came with another body")
        return Response(
            kept.content, kept.status, media_type=_JSON, headers={"Idempotent-Replayed": "true"}
        )

    def answer(
        self,
        request: Request,
        body: bytes,
        payloads: list[bytes],
        started: float,
        encode: Callable[[list[DecisionAnswer], Loaded], bytes],
        batch: bool,
    ) -> Response:
        loaded = self.model()
        checked = validate(payloads, self.max_bytes)
        # validate returns problems only or applications only: the first item says which
        if checked and type(checked[0]) is ItemProblem:
            _invalid(cast("list[ItemProblem]", checked), batch)
        if not self.audit.ready:
            refuse(503, "audit_buffer_full", "decisions cannot be recorded now; retry later")
        apps = cast("list[LoanApplication]", checked)
        answers = self.decider.decide(apps, loaded.model, datetime.now(UTC))
        content = encode(answers, loaded)
        key = request.headers.get("idempotency-key", "")
        latency_us = int((time.perf_counter() - started) * 1e6)
        rows = [
            AuditRow(
                answer=answer,
                event_time=app.event_time,
                borrower_id=app.borrower_id,
                request=payload,
                response=content if not batch else _ENCODER.encode(answer),
                idempotency_key=key,
                latency_us=latency_us,
            )
            for answer, app, payload in zip(answers, apps, payloads, strict=True)
        ]
        if not self.audit.offer(rows):
            refuse(503, "audit_buffer_full", "decisions cannot be recorded now; retry later")
        outcomes = self.metrics.decisions
        for answer in answers:
            outcomes.labels(answer.outcome).inc()
        if key:
            self.idempotency.put(key, Kept(IdempotencyStore.digest(body), 200, content))
        return Response(
            content, media_type=_JSON, headers={"X-Model-Version": loaded.model.version}
        )

    # --- routes ---------------------------------------------------------------------------

    async def decide_one(self, request: Request) -> Response:
        started = time.perf_counter()
        self.authenticate(request)
        body = await self.body(request, self.max_bytes)
        replay = self.replayed(request, body)
        if replay is not None:
            return replay
        return self.answer(
            request, body, [body], started, lambda a, _loaded: _ENCODER.encode(a[0]), False
        )

    async def decide_batch(self, request: Request) -> Response:
        started = time.perf_counter()
        self.authenticate(request)
        limit = self.api.max_batch * self.max_bytes + _ENVELOPE_BYTES
        body = await self.body(request, limit)
        replay = self.replayed(request, body)
        if replay is not None:
            return replay
        try:
            payloads = split_batch(body, self.api.max_batch)
        except BatchTooLarge as exc:
            refuse(413, "batch_too_large", str(exc))
        if isinstance(payloads, ItemProblem):
            refuse(422, payloads.reason, payloads.detail)
        if not payloads:
            refuse(422, "empty_batch", "a batch needs at least one application")
        policy = self.decider.policy.version

        def encode(answers: list[DecisionAnswer], loaded: Loaded) -> bytes:
            return _ENCODER.encode(BatchAnswer(answers, loaded.model.version, policy))

        return self.answer(request, body, payloads, started, encode, True)

    async def current_model(self, request: Request) -> Response:
        self.authenticate(request)
        loaded = self.model()
        model = loaded.model
        metrics = model.card.get("metrics")
        test = metrics.get("test", {}) if isinstance(metrics, dict) else {}
        auc = test.get("auc") if isinstance(test, dict) else None
        answer = ModelAnswer(
            version=model.version,
            kind=model.kind,
            reasons_method=model.reasons_method,
            test_auc=auc if isinstance(auc, float) else None,
            loaded_at=loaded.loaded_at,
            policy_version=self.decider.policy.version,
        )
        return Response(_ENCODER.encode(answer), media_type=_JSON)

    async def healthz(self, request: Request) -> Response:
        return Response("ok\n", media_type="text/plain")

    async def readyz(self, request: Request) -> Response:
        problems = []
        if self.holder.current is None:
            problems.append("no model loaded")
        if not self.audit.ready:
            problems.append(
                f"audit buffer full ({self.audit.pending} decisions waiting for the store)"
            )
        if problems:
            return Response("not ready: " + "; ".join(problems) + "\n", 503,
                            media_type="text/plain")  # fmt: skip
        return Response("ready\n", media_type="text/plain")

    async def metrics_text(self, request: Request) -> Response:
        audit = self.audit
        content = self.metrics.render(lambda: (audit.pending, audit.written, audit.failures))
        return Response(content, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi_json(self, request: Request) -> Response:
        return Response(self.openapi, media_type=_JSON)

    async def docs_page(self, request: Request) -> Response:
        return HTMLResponse(self.docs)

    # --- background work -------------------------------------------------------------------

    async def watch_model(self) -> None:
        """Swap in a new model version when the pointer file names one."""
        while True:
            await asyncio.sleep(self.api.reload_interval_s)
            try:
                swapped = await asyncio.to_thread(self.holder.refresh)
            except RiskctlError as exc:
                self.metrics.reloads.labels("failed").inc()
                log.warning("model not reloaded, keeping the loaded one: %s", exc)
                continue
            if swapped and self.holder.current is not None:
                model = self.holder.current.model
                self.metrics.reloads.labels("ok").inc()
                self.metrics.set_model(model.version, model.kind)
                log.info("now answering with model %s (%s)", model.version, model.kind)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self.audit.start()
        watcher = asyncio.create_task(self.watch_model())
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            lost = await asyncio.to_thread(self.audit.stop, 30.0)
            if lost:
                log.error("%d decisions could not be written to the audit table", lost)


def create_app(state: DecisionApp) -> Starlette:
    routes = [
        Route("/v1/decisions", state.observed("decisions", state.decide_one), methods=["POST"]),
        Route(
            "/v1/decisions:batch", state.observed("batch", state.decide_batch), methods=["POST"]
        ),
        Route("/v1/models/current", state.observed("model", state.current_model)),
        Route("/healthz", state.healthz),
        Route("/readyz", state.readyz),
        Route("/metrics", state.metrics_text),
        Route("/openapi.json", state.openapi_json),
        Route("/docs", state.docs_page),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        reason = "not_found" if status == 404 else "http_error" if status < 500 else "internal"
        detail = str(getattr(exc, "detail", "")) or _TITLES.get(status, "error")
        if status == 500:
            log.exception("unexpected error answering %s", request.url.path, exc_info=exc)
            detail = "an internal error; it has been logged"
        return problem_response(
            Problem(type=f"https://riskctl.dev/problems/{reason}",
                    title=_TITLES.get(status, "Error"), status=status, detail=detail,
                    reason=reason)
        )  # fmt: skip

    return Starlette(
        routes=routes,
        lifespan=state.lifespan,
        exception_handlers={HTTPException: http_error, Exception: http_error},
    )


def _docs_page(spec: dict[str, Any]) -> str:
    """A self-contained page of the endpoints and schemas (no script from elsewhere)."""
    rows = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                f"</code></td><td>{html.escape(op['summary'])}</td></tr>"
            )
    schemas = html.escape(json.dumps(spec["components"]["schemas"], indent=2))
    return (
        "<!doctype html><meta charset=utf-8><title>riskctl decision service</title>"
        "<h1>riskctl decision service</h1><p>Machine-readable: <a href=/openapi.json>"
        "/openapi.json</a> (OpenAPI 3.1). Send the token as <code>Authorization: Bearer "
        "TOKEN</code>.</p><table>" + "".join(rows) + f"</table><h2>Schemas</h2><pre>{schemas}"
        "</pre>"
    )
