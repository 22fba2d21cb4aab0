"""``riskctl serve``: the HTTP decision service (flows/api) behind uvicorn."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Annotated

import typer

from cli.common import HomeOption, StoreOption, UsageError, settings, user_errors


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (env: RISKCTL_API_HOST; default 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port; 0 picks a free one (env: RISKCTL_API_PORT; default 8000)."),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Decision policy, TOML or JSON (env: RISKCTL_POLICY_FILE; default: built in).",
        ),
    ] = None,
    home: HomeOption = None,
    store: StoreOption = None,
) -> None:
    """Serve loan decisions over HTTP (approve / refer / decline), audited in the store.

    POST /v1/decisions and /v1/decisions:batch; docs at /docs. Needs RISKCTL_API_TOKEN
    (never printed); every decision is written to the `decisions` table, and a new
    models/CURRENT is picked up without a restart.
    """
    with user_errors():
        from flows.api.settings import api_settings

        cfg = settings(home, store)
        api = api_settings(host=host, port=port, policy_file=policy)
        from importlib.metadata import version

        import uvicorn

        from flows.api.app import DecisionApp, create_app
        from flows.api.audit import AuditWriter
        from flows.api.decisions import Decider
        from flows.api.reload import ModelHolder
        from flows.decision import load_policy

        rules = load_policy(api.policy_file)
        holder = ModelHolder(cfg.models_dir, cfg.model_kind)
        holder.refresh()
        if holder.current is None:
            raise UsageError(f"no {cfg.model_kind} model in {cfg.models_dir}; run `riskctl train`")
        audit = AuditWriter(
            cfg.store,
            capacity=api.audit_buffer,
            batch_rows=api.audit_batch,
            interval_s=api.audit_interval_s,
            retry_max_s=api.audit_retry_max_s,
        )
        state = DecisionApp(
            decider=Decider(rules, cfg),
            holder=holder,
            audit=audit,
            api=api,
            max_payload_bytes=cfg.max_payload_bytes,
            version=version("riskctl"),
        )
        try:
            sock = socket.create_server((api.host, api.port), reuse_port=False)
        except OSError as exc:
            raise UsageError(f"cannot listen on {api.host}:{api.port}: {exc.strerror}") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    bound_host, bound_port = sock.getsockname()[:2]
    model = holder.current.model
    typer.echo(
        f"listening on http://{bound_host}:{bound_port} (model {model.version}, "
        f"policy {rules.version})"
    )
    config = uvicorn.Config(
        create_app(state),
        http="httptools",
        loop="uvloop" if _has_uvloop() else "asyncio",
        access_log=False,  # requests are counted in /metrics; a log line each costs latency
        log_level="warning",
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run(sockets=[sock])


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def register(app: typer.Typer) -> None:
    app.command()(serve)
